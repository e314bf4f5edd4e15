// Fused CPU clustered-attention kernel; see clustered_attention_cpu.h.
//
// Per cluster (Cq query slots, Ck key slots of one row r and one hash h):
//   pass 1: gather the real queries (scaled), the keys transposed (W x W blocks in registers) and
//           the values into 64-byte aligned scratch that stays in L1/L2; dummy and masked keys
//           read a zero row instead of their (possibly NaN) data;
//   pass 2: S = Q K^T with a register-blocked micro-kernel (MR rows x NV vectors of keys);
//   pass 3: per query row: max, P = exp(S - max) (masked keys 0), sum, lse = max + log(sum);
//           with dropout, P's entries are then dropped (the sum and lse are of the undropped P)
//           by the counter-based draw of clustered_kernel_parts.h and the rest scaled by 1/(1-p);
//   pass 4: O = P V with the same micro-kernel (P unnormalised; 1/sum is applied in pass 5);
//   pass 5: write O / sum into the query's output row (first hash), or merge it with what earlier
//           hashes gave the row: a two-term log-sum-exp on lse and the matching weights.
// While a cluster computes, the rows of the next one are prefetched one cache line at a time,
// paced through the two products: the gathers are random rows of q/k/v/out, and waiting on them
// was a third of the time before that.
//
// Parallelism: for_each_cluster_range (clustered_kernel_parts.h), whole rows per thread when there
// are enough of them, else the clusters of one (row, hash) split over the threads.
//
// Instruction sets: the micro-kernel is written once with GCC/Clang vector extensions and
// instantiated for AVX-512 (16 floats), AVX2+FMA (8) and a portable 16-byte build (SSE2 on
// x86-64, NEON on Arm); clustered_attention_forward_cpu picks the widest the CPU supports at run
// time (__builtin_cpu_supports), or the one the caller names (tests run every available one).
#include "core/attention/clustered_attention_cpu.h"

#include "core/attention/clustered_kernel_parts.h"

namespace smyrf {
namespace clustered_detail {

// Per-thread scratch of one cluster. Padding (rows past the real queries, key columns past Ck,
// value columns past E) is zero from the start and never written with anything else.
template <typename T>
struct Scratch {
  int64_t rows_pad, keys_pad, vals_pad;
  std::unique_ptr<T[], AlignedFree> q, kt, v, s, o, keep, row_lse, row_inv_sum;
  std::unique_ptr<T[], AlignedFree> zero_row;  // [max(D, E)]
  std::vector<int64_t> q_tokens;
  std::vector<int64_t> k_tokens;  // [keys_pad]: the key token of each slot (>= M: none)
  std::vector<const T*> k_rows;   // [keys_pad]: the source row of each key slot
  Scratch(const ClusterArgs& a, int64_t mr)
      : rows_pad(round_up(a.Cq, mr)),
        keys_pad(round_up(a.Ck, kAlignBytes / static_cast<int64_t>(sizeof(T)))),
        vals_pad(round_up(a.E, kAlignBytes / static_cast<int64_t>(sizeof(T)))),
        q(aligned_zeros<T>(rows_pad * a.D)),       // [rows_pad, D]
        kt(aligned_zeros<T>(a.D * keys_pad)),      // [D, keys_pad]
        v(aligned_zeros<T>(keys_pad * vals_pad)),  // [keys_pad, vals_pad]
        s(aligned_zeros<T>(rows_pad * keys_pad)),  // [rows_pad, keys_pad]: scores, then exp
        o(aligned_zeros<T>(rows_pad * vals_pad)),  // [rows_pad, vals_pad]
        keep(aligned_zeros<T>(keys_pad)),          // 1 for a real key, 0 otherwise
        row_lse(aligned_zeros<T>(rows_pad)),
        row_inv_sum(aligned_zeros<T>(rows_pad)),
        zero_row(aligned_zeros<T>(std::max(a.D, a.E))),
        q_tokens(static_cast<size_t>(a.Cq)),
        k_tokens(static_cast<size_t>(keys_pad)),
        k_rows(static_cast<size_t>(keys_pad)) {}
};

// Pass 3 of attend_cluster: the first n_q rows of S become unnormalised probabilities (masked keys
// 0, then dropout), with each row's 1/sum and lse.
template <typename T, class Blk>
SMYRF_INLINE void softmax_rows(const ClusterArgs& a, int64_t row, int64_t hash, int64_t n_q, bool any_masked,
                               Scratch<T>& w) {
  const int64_t keys_pad = w.keys_pad;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  constexpr int W = Blk::kBytes / static_cast<int>(sizeof(T));
  const T* keep = w.keep.get();
  typedef T V __attribute__((vector_size(Blk::kBytes)));
  for (int64_t i = 0; i < n_q; ++i) {
    T* s = w.s.get() + i * keys_pad;
    T row_max;
    {
      V vmax = neg_inf - V{};
      for (int64_t j = 0; j < keys_pad; j += W) {
        V x;
        std::memcpy(&x, s + j, sizeof x);
        if (any_masked) {
          V kp;
          std::memcpy(&kp, keep + j, sizeof kp);
          x = kp != T(0) ? x : neg_inf - V{};
        }
        vmax = vmax > x ? vmax : x;
      }
      row_max = vmax[0];
      for (int l = 1; l < W; ++l) row_max = std::max(row_max, static_cast<T>(vmax[l]));
    }
    T row_sum = T(0);
    if (any_masked) {
#pragma omp simd reduction(+ : row_sum)
      for (int64_t j = 0; j < keys_pad; ++j) {
        const T p = keep[j] != T(0) ? exp_of(s[j] - row_max) : T(0);
        s[j] = p;
        row_sum += p;
      }
    } else {
#pragma omp simd reduction(+ : row_sum)
      for (int64_t j = 0; j < keys_pad; ++j) {
        const T p = exp_of(s[j] - row_max);
        s[j] = p;
        row_sum += p;
      }
    }
    w.row_inv_sum[i] = T(1) / row_sum;
    w.row_lse[i] = row_max + std::log(row_sum);
    if (a.dropout > 0) drop_row(a, row, hash, w.q_tokens[i], w.k_tokens.data(), s, keys_pad);
  }
}

// Pass 5 of attend_cluster: each query's cluster output written into its row of out (first hash, or
// a row no earlier hash reached) or merged with what earlier hashes gave it.
template <typename T>
SMYRF_INLINE void write_or_merge(const ClusterArgs& a, int64_t n_q, bool first_hash, T* __restrict__ out,
                                 T* __restrict__ lse, Scratch<T>& w) {
  const int64_t E = a.E, vals_pad = w.vals_pad;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t token = w.q_tokens[i];
    const T* o = w.o.get() + i * vals_pad;
    T* out_row = out + token * E;
    const T cluster_lse = w.row_lse[i];
    const T old_lse = first_hash ? neg_inf : lse[token];
    if (old_lse == neg_inf) {
      const T c = w.row_inv_sum[i];
#pragma omp simd
      for (int64_t e = 0; e < E; ++e) out_row[e] = o[e] * c;
      lse[token] = cluster_lse;
      continue;
    }
    // two-term log-sum-exp: with d = exp(lo - hi) <= 1, lse = hi + log1p(d) and the weights of
    // the two terms are 1 / (1 + d) and d / (1 + d)
    const bool old_is_hi = old_lse >= cluster_lse;
    const T hi = old_is_hi ? old_lse : cluster_lse, lo = old_is_hi ? cluster_lse : old_lse;
    const T d = std::exp(lo - hi), w_hi = T(1) / (T(1) + d), w_lo = d * w_hi;
    const T keep_old = old_is_hi ? w_hi : w_lo, take_new = (old_is_hi ? w_lo : w_hi) * w.row_inv_sum[i];
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) out_row[e] = out_row[e] * keep_old + o[e] * take_new;
    lse[token] = hi + std::log1p(d);
  }
}

// One cluster: gather, scores, masked softmax with lse, P V, and the write or merge into out/lse.
// On the first hash (hash == 0) out/lse of these queries hold nothing yet (they are written, not
// merged). row and hash key the dropout draws.
template <typename T, class Blk>
SMYRF_INLINE void attend_cluster(const ClusterArgs& a, const T* __restrict__ q, const T* __restrict__ k,
                                 const T* __restrict__ v, const bool* key_keep, const int64_t* q_slots,
                                 const int64_t* k_slots, int64_t row, int64_t hash, T* __restrict__ out, T* __restrict__ lse,
                                 Scratch<T>& w, LinePrefetch& prefetch) {
  const int64_t D = a.D, E = a.E, Cq = a.Cq, Ck = a.Ck;
  const int64_t keys_pad = w.keys_pad, vals_pad = w.vals_pad;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const bool first_hash = hash == 0;
  // pass 1: gather
  const T scale = static_cast<T>(a.scale);
  int64_t n_q = 0;
  for (int64_t i = 0; i < Cq; ++i) {
    const int64_t token = q_slots[i];
    if (token >= a.N) continue;  // dummy slot
    w.q_tokens[n_q] = token;
    const T* src = q + token * a.qs.token;
    T* dst = w.q.get() + n_q * D;
#pragma omp simd
    for (int64_t d = 0; d < D; ++d) dst[d] = src[d] * scale;
    ++n_q;
  }
  if (n_q == 0) return;
  const int64_t rows = round_up(n_q, Blk::kRows);
  if (rows > n_q) std::memset(w.q.get() + n_q * D, 0, sizeof(T) * (rows - n_q) * D);
  // keys: row pointers (a zero row for dummy, masked and padding slots), values copied
  int64_t n_real_keys = 0;
  for (int64_t j = 0; j < keys_pad; ++j) {
    const int64_t token = j < Ck ? k_slots[j] : a.M;
    const bool real = token < a.M && (key_keep == nullptr || key_keep[token]);
    w.keep[j] = real ? T(1) : T(0);
    w.k_rows[j] = real ? k + token * a.ks.token : w.zero_row.get();
    w.k_tokens[j] = token;
    n_real_keys += real;
    if (j >= Ck) continue;
    T* v_row = w.v.get() + j * vals_pad;
    const T* vs = real ? v + token * a.vs.token : w.zero_row.get();
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) v_row[e] = vs[e];
  }
  if (n_real_keys == 0) {
    // nothing to attend to in this cluster: its queries keep what earlier hashes gave them, or
    // (first hash) get the empty-softmax convention, out 0 and lse -inf
    if (first_hash) {
      for (int64_t i = 0; i < n_q; ++i) {
        const int64_t token = w.q_tokens[i];
        std::fill(out + token * E, out + (token + 1) * E, T(0));
        lse[token] = neg_inf;
      }
    }
    return;
  }
  transpose_keys<T, Blk::kBytes>(w.k_rows.data(), keys_pad, D, w.kt.get());
  const bool any_masked = n_real_keys < keys_pad;  // dummies, masked keys or padding columns
  // pass 2: scores
  constexpr int W = Blk::kBytes / static_cast<int>(sizeof(T));
  prefetch.pace(gemm_k_steps<Blk>(rows, keys_pad / W, D) + gemm_k_steps<Blk>(rows, vals_pad / W, keys_pad));
  gemm<T, Blk>(w.q.get(), D, w.kt.get(), keys_pad, w.s.get(), keys_pad, rows, keys_pad, D, prefetch);
  // pass 3: softmax rows (unnormalised), with lse
  softmax_rows<T, Blk>(a, row, hash, n_q, any_masked, w);
  // padded rows of S hold Q's zero rows times K: finite; their outputs are never read
  // pass 4: O = P V
  gemm<T, Blk>(w.s.get(), keys_pad, w.v.get(), vals_pad, w.o.get(), vals_pad, rows, vals_pad, keys_pad, prefetch);
  // pass 5: write or merge
  write_or_merge(a, n_q, first_hash, out, lse, w);
}

// What one call works on: the tensors' data and the (row, hash, cluster) ranges.
template <typename T>
struct KernelData {
  const T* q;
  const T* k;
  const T* v;
  const bool* keep;   // [R, M] or null
  const int64_t* pq;  // [R, U, L*Cq]
  const int64_t* pk;  // [R, U, L*Ck]
  T* out;
  T* lse;
};

// Clusters [c_begin, c_end) of hashes [h_begin, h_end) of rows [r_begin, r_end), in that nesting.
template <typename T, class Blk>
SMYRF_INLINE void attend_ranges(const ClusterArgs& a, const KernelData<T>& t, int64_t r_begin, int64_t r_end,
                                int64_t h_begin, int64_t h_end, int64_t c_begin, int64_t c_end) {
  Scratch<T> w(a, Blk::kRows);
  LinePrefetch prefetch;
  const int64_t lines_per_row = (std::max(a.D, a.E) * static_cast<int64_t>(sizeof(T)) + 63) / 64 + 1;
  prefetch.lines.reserve(static_cast<size_t>(2 * (a.Cq + a.Ck) * lines_per_row));
  const int64_t n_c = c_end - c_begin, n_h = h_end - h_begin;
  const int64_t n_items = (r_end - r_begin) * n_h * n_c;
  // item -> (row, hash, cluster), clusters innermost
  const auto locate = [&](int64_t item, int64_t& r, int64_t& h, int64_t& c) {
    c = c_begin + item % n_c;
    h = h_begin + (item / n_c) % n_h;
    r = r_begin + item / (n_c * n_h);
  };
  for (int64_t item = 0; item < n_items; ++item) {
    int64_t r, h, c;
    locate(item, r, h, c);
    const int64_t* q_slots = t.pq + (r * a.n_hashes + h) * (a.L * a.Cq) + c * a.Cq;
    const int64_t* k_slots = t.pk + (r * a.n_hashes + h) * (a.L * a.Ck) + c * a.Ck;
    prefetch.reset();
    if (item + 1 < n_items) {
      // the lines of the next cluster's real queries (q and out rows) and keys (k and v rows)
      int64_t r1, h1, c1;
      locate(item + 1, r1, h1, c1);
      const int64_t* next_q = t.pq + (r1 * a.n_hashes + h1) * (a.L * a.Cq) + c1 * a.Cq;
      const int64_t* next_k = t.pk + (r1 * a.n_hashes + h1) * (a.L * a.Ck) + c1 * a.Ck;
      for (int64_t i = 0; i < a.Cq; ++i) {
        const int64_t token = next_q[i];
        if (token >= a.N) continue;
        prefetch.add_row(t.q + a.qs.row(r1, a.H) + token * a.qs.token, a.D);
        prefetch.add_row(t.out + (r1 * a.N + token) * a.E, a.E);
      }
      for (int64_t j = 0; j < a.Ck; ++j) {
        const int64_t token = next_k[j];
        if (token >= a.M) continue;
        prefetch.add_row(t.k + a.ks.row(r1, a.H) + token * a.ks.token, a.D);
        prefetch.add_row(t.v + a.vs.row(r1, a.H) + token * a.vs.token, a.E);
      }
    }
    attend_cluster<T, Blk>(a, t.q + a.qs.row(r, a.H), t.k + a.ks.row(r, a.H), t.v + a.vs.row(r, a.H),
                           t.keep ? t.keep + r * a.M : nullptr, q_slots, k_slots, r, h, t.out + r * a.N * a.E,
                           t.lse + r * a.N, w, prefetch);
    prefetch.flush();  // whatever the products did not get to (or all of it, for a skipped cluster)
  }
}

SMYRF_DEFINE_KERNEL_VARIANTS(attend, attend_ranges, KernelData)

template <typename T>
void run_kernel(const ClusterArgs& a, const KernelData<T>& t, int64_t R, KernelIsa isa) {
  const auto fn = attend_fn(isa, T());
  for_each_cluster_range(R, a.n_hashes, a.L, [&](int64_t r0, int64_t r1, int64_t h0, int64_t h1, int64_t c0,
                                                 int64_t c1) { fn(a, t, r0, r1, h0, h1, c0, c1); });
}

}  // namespace clustered_detail

float fast_expf(float x) { return clustered_detail::exp_poly(x); }

bool kernel_isa_available(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kBest:
    case KernelIsa::kPortable: return true;
#if SMYRF_KERNEL_X86
    case KernelIsa::kAvx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case KernelIsa::kAvx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
             __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
             kernel_isa_available(KernelIsa::kAvx2);
#endif
    default: return false;
  }
}

const char* kernel_isa_name(KernelIsa isa) {
  switch (isa) {
    case KernelIsa::kBest: return "best";
    case KernelIsa::kAvx512: return "avx512";
    case KernelIsa::kAvx2: return "avx2";
    case KernelIsa::kPortable: return "portable";
  }
  return "?";
}

KernelIsa best_kernel_isa() {
  static const KernelIsa best = kernel_isa_available(KernelIsa::kAvx512) ? KernelIsa::kAvx512
                                : kernel_isa_available(KernelIsa::kAvx2) ? KernelIsa::kAvx2
                                                                         : KernelIsa::kPortable;
  return best;
}

namespace clustered_detail {

// The row strides of a [R, L, X] or [B, H, L, X] input whose last dim is contiguous; its heads.
RowStrides input_strides(const char* who, const char* name, const at::Tensor& x, int64_t& heads) {
  TORCH_CHECK(x.dim() == 3 || x.dim() == 4, who, ": ", name, " must be [R, L, X] or [B, H, L, X], got ",
              shape_string(x.sizes()));
  TORCH_CHECK(x.stride(-1) == 1 && x.device().is_cpu(), who, ": ", name,
              " must be a CPU tensor whose last dim is contiguous");
  RowStrides s;
  s.token = x.stride(-2);
  if (x.dim() == 4) {
    s.b = x.stride(0);
    s.h = x.stride(1);
    heads = x.size(1);
  } else {
    s.h = x.stride(0);
    heads = x.size(0);
  }
  return s;
}

// Checks a call's tensors and returns its sizes (shared with the backward's entry point).
ClusterArgs checked_args(const char* who, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                         const ClusteredCall& c) {
  ClusterArgs args{};
  int64_t q_heads = 0, k_heads = 0, v_heads = 0;
  args.qs = input_strides(who, "q", q, q_heads);
  args.ks = input_strides(who, "k", k, k_heads);
  args.vs = input_strides(who, "v", v, v_heads);
  const int64_t R = q.numel() == 0 ? 0 : q.numel() / (q.size(-2) * q.size(-1));
  TORCH_CHECK(k.dim() == q.dim() && v.dim() == q.dim() && k.sizes().slice(0, q.dim() - 2) == q.sizes().slice(0, q.dim() - 2) &&
                  v.sizes().slice(0, q.dim() - 1) == k.sizes().slice(0, q.dim() - 1) && k.size(-1) == q.size(-1),
              who, ": q, k, v have shapes ", shape_string(q.sizes()), ", ", shape_string(k.sizes()), ", ",
              shape_string(v.sizes()), "; they must share the leading dims, k the last with q, and v the token dim with k");
  args.H = q_heads;
  args.N = q.size(-2);
  args.M = k.size(-2);
  args.D = q.size(-1);
  args.E = v.size(-1);
  TORCH_CHECK(c.q_cluster_size >= 1 && c.k_cluster_size >= 1, who, ": cluster sizes must be >= 1");
  SMYRF_CHECK_SHAPE(c.perm_q_RUN, "perm_q_RUN", R, -1, -1);
  args.n_hashes = c.perm_q_RUN.size(1);
  args.L = c.perm_q_RUN.size(2) / c.q_cluster_size;
  SMYRF_CHECK_SHAPE(c.perm_q_RUN, "perm_q_RUN", R, args.n_hashes, args.L * c.q_cluster_size);
  SMYRF_CHECK_SHAPE(c.perm_k_RUM, "perm_k_RUM", R, args.n_hashes, args.L * c.k_cluster_size);
  for (const at::Tensor* t : {&c.perm_q_RUN, &c.perm_k_RUM})
    TORCH_CHECK(t->is_contiguous() && t->device().is_cpu() && t->scalar_type() == at::kLong, who,
                ": perm_q_RUN and perm_k_RUM must be contiguous int64 CPU tensors");
  TORCH_CHECK(k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
                  (q.scalar_type() == at::kFloat || q.scalar_type() == at::kDouble),
              who, ": q, k and v must all be float32 or all float64");
  TORCH_CHECK(kernel_isa_available(c.isa), who, ": this CPU cannot run the ", kernel_isa_name(c.isa), " kernel");
  TORCH_CHECK(c.dropout >= 0.0 && c.dropout < 1.0, who, ": dropout must be in [0, 1), got ", c.dropout);
  if (c.key_keep_RM.defined()) {
    SMYRF_CHECK_SHAPE(c.key_keep_RM, "key_keep_RM", R, args.M);
    TORCH_CHECK(c.key_keep_RM.scalar_type() == at::kBool && c.key_keep_RM.is_contiguous(), "key_keep_RM: contiguous bool");
  }
  args.Cq = c.q_cluster_size;
  args.Ck = c.k_cluster_size;
  args.scale = c.scale;
  args.dropout = c.dropout;
  args.drop_threshold = dropout_threshold(c.dropout);
  args.drop_seed = c.dropout_seed;
  return args;
}

void check_output(const char* name, const at::Tensor& t, const at::Tensor& like, int64_t R, int64_t L, int64_t X) {
  TORCH_CHECK(t.defined() && t.dim() >= 2 && t.numel() == R * L * X && t.size(-1) == X && t.size(-2) == L, name,
              " must hold [", R, ", ", L, ", ", X, "], got ", t.defined() ? shape_string(t.sizes()) : std::string("undefined"));
  TORCH_CHECK(t.is_contiguous() && t.device().is_cpu() && t.scalar_type() == like.scalar_type(), name,
              " must be a contiguous CPU tensor of q's dtype");
}

}  // namespace clustered_detail

void clustered_attention_forward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                     const ClusteredCall& call, at::Tensor& out_RNE, at::Tensor& lse_RN) {
  using namespace clustered_detail;
  const ClusterArgs args = checked_args("clustered_attention_forward_cpu", q_RND, k_RMD, v_RME, call);
  const int64_t R = call.perm_q_RUN.size(0);
  check_output("out_RNE", out_RNE, q_RND, R, args.N, args.E);
  check_output("lse_RN", lse_RN, q_RND, 1, R, args.N);
  if (args.n_hashes == 0 || args.L == 0) {
    out_RNE.zero_();
    lse_RN.fill_(-std::numeric_limits<double>::infinity());
    return;
  }
  const KernelIsa isa = call.isa == KernelIsa::kBest ? best_kernel_isa() : call.isa;
  const bool* keep = call.key_keep_RM.defined() ? call.key_keep_RM.data_ptr<bool>() : nullptr;
  const int64_t* pq = call.perm_q_RUN.data_ptr<int64_t>();
  const int64_t* pk = call.perm_k_RUM.data_ptr<int64_t>();
  AT_DISPATCH_FLOATING_TYPES(q_RND.scalar_type(), "clustered_attention_forward_cpu", [&] {
    const KernelData<scalar_t> t{q_RND.data_ptr<scalar_t>(), k_RMD.data_ptr<scalar_t>(), v_RME.data_ptr<scalar_t>(),
                                 keep, pq, pk, out_RNE.data_ptr<scalar_t>(), lse_RN.data_ptr<scalar_t>()};
    run_kernel(args, t, R, isa);
  });
}

at::Tensor clustered_dropout_factors(const ClusteredCall& call, int64_t N, int64_t M, at::ScalarType dtype) {
  using namespace clustered_detail;
  const int64_t R = call.perm_q_RUN.size(0), n_hashes = call.perm_q_RUN.size(1);
  const int64_t Cq = call.q_cluster_size, Ck = call.k_cluster_size, L = call.perm_q_RUN.size(2) / Cq;
  const at::Tensor pq = call.perm_q_RUN.contiguous().cpu(), pk = call.perm_k_RUM.contiguous().cpu();
  at::Tensor factors = at::empty({R * n_hashes, L, Cq, Ck}, at::kDouble);
  const int64_t* q_tokens = pq.data_ptr<int64_t>();
  const int64_t* k_tokens = pk.data_ptr<int64_t>();
  double* f = factors.data_ptr<double>();
  const uint32_t threshold = dropout_threshold(call.dropout);
  const double kept = 1.0 / (1.0 - call.dropout);
  at::parallel_for(0, R * n_hashes * L, 1, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {  // item = (r * # + h) * L + c
      const int64_t rh = item / L, c = item % L, r = rh / n_hashes, h = rh % n_hashes;
      for (int64_t i = 0; i < Cq; ++i) {
        const int64_t query = q_tokens[rh * L * Cq + c * Cq + i];
        const uint64_t qkey = dropout_query_key(call.dropout_seed, r, h, query);
        double* row = f + (item * Cq + i) * Ck;
        for (int64_t j = 0; j < Ck; ++j) {
          const int64_t key = k_tokens[rh * L * Ck + c * Ck + j];
          row[j] = query >= N || key >= M ? 1.0 : dropout_bits(qkey, key) >= threshold ? kept : 0.0;
        }
      }
    }
  });
  return factors.to(dtype);
}

}  // namespace smyrf
