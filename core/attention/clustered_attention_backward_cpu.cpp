// Fused CPU backward of clustered attention; the formulas are in clustered_attention_cpu.h.
//
// Per cluster (Cq query slots, Ck key slots of row r and hash h):
//   gather: the real queries (scaled) Q [rows, Dp] and their dO [rows, Ep], lse, and dlse - delta
//           with delta = dO . out computed here (no [R, N] buffer, dO read through its strides);
//           the keys transposed Kt [D, Kp] and row-major K [Kp, Dp], the values transposed
//           Vt [E, Kp]; dummy and masked keys read a zero row;
//   S = Q Kt, G = dO Vt (two products with the forward's register-blocked micro-kernel);
//   per query row: P = exp(S - lse) (masked keys 0), Z the forward's dropout factors (the same
//           counter-based draws), then S <- P.Z and G <- P.(Z.G - delta + dlse) = dS;
//   dV_c = S^T dO and dK_c = dS^T Q (the micro-kernel reading A transposed), dQ_c = dS K;
//   add scale dQ_c, dK_c and dV_c into the rows of dq, dk and dv.
// Padded query rows of S and dS are zeroed, so they add nothing to dV_c and dK_c. Queries whose
// merged lse is -inf (no real key in any hash) are skipped: their output is the constant 0.
// The work is spread like the forward's (for_each_cluster_range): a thread owns whole rows, or the
// disjoint tokens of one hash's clusters, so the adds into dq/dk/dv need no atomics (clusters whose
// keys repeat, ClusteredCall::shared_keys, are only ever split by rows).
// Tested by tests/test_smyrf_backward.cpp against the LibTorch twin's gradients, float64 finite
// differences and dense attention at one cluster, for every instruction set.
#include "core/attention/clustered_attention_cpu.h"
#include "core/attention/clustered_kernel_parts.h"

namespace smyrf {
namespace clustered_detail {

// Per-thread scratch of one cluster; padding columns are zero from the start and never written.
template <typename T>
struct BackwardScratch {
  int64_t rows_pad, keys_pad, d_pad, e_pad;
  std::unique_ptr<T[], AlignedFree> q, dout, kt, k, vt, s, g, dq, dk, dv, keep, row_lse, row_shift, zero_row;
  std::vector<int64_t> q_tokens, k_tokens;
  std::vector<const T*> k_rows, v_rows;
  BackwardScratch(const ClusterArgs& a, int64_t mr)
      : rows_pad(round_up(a.Cq, mr)),
        keys_pad(round_up(a.Ck, kAlignBytes / static_cast<int64_t>(sizeof(T)))),
        d_pad(round_up(a.D, kAlignBytes / static_cast<int64_t>(sizeof(T)))),
        e_pad(round_up(a.E, kAlignBytes / static_cast<int64_t>(sizeof(T)))),
        q(aligned_zeros<T>(rows_pad * d_pad)),      // [rows_pad, d_pad], scaled
        dout(aligned_zeros<T>(rows_pad * e_pad)),   // [rows_pad, e_pad]
        kt(aligned_zeros<T>(a.D * keys_pad)),       // [D, keys_pad]
        k(aligned_zeros<T>(keys_pad * d_pad)),      // [keys_pad, d_pad]
        vt(aligned_zeros<T>(a.E * keys_pad)),       // [E, keys_pad]
        s(aligned_zeros<T>(rows_pad * keys_pad)),   // scores, then P.Z
        g(aligned_zeros<T>(rows_pad * keys_pad)),   // dO V^T, then dS
        dq(aligned_zeros<T>(rows_pad * d_pad)),
        dk(aligned_zeros<T>(keys_pad * d_pad)),
        dv(aligned_zeros<T>(keys_pad * e_pad)),
        keep(aligned_zeros<T>(keys_pad)),
        row_lse(aligned_zeros<T>(rows_pad)),
        row_shift(aligned_zeros<T>(rows_pad)),      // dlse - delta
        zero_row(aligned_zeros<T>(std::max(a.D, a.E))),
        q_tokens(static_cast<size_t>(a.Cq)),
        k_tokens(static_cast<size_t>(keys_pad)),
        k_rows(static_cast<size_t>(keys_pad)),
        v_rows(static_cast<size_t>(keys_pad)) {}
};

template <typename T>
struct BackwardData {
  const T* q;
  const T* k;
  const T* v;
  const bool* keep;  // [R, M] or null
  const int64_t* pq;
  const int64_t* pk;
  const T* out;
  const T* dout;                  // element (r, n, e) at r * dout_sr + n * dout_sn + e * dout_se
  int64_t dout_sr, dout_sn, dout_se;  // (an expanded gradient, such as out.sum()'s, has stride 0)
  const T* lse;
  const T* dlse;  // or null
  T* dq;
  T* dk;
  T* dv;
};

// Gathers the cluster's queries that have a gradient; returns how many.
template <typename T>
SMYRF_INLINE int64_t gather_queries(const ClusterArgs& a, const BackwardData<T>& t, int64_t r, const int64_t* q_slots,
                       BackwardScratch<T>& w) {
  const T scale = static_cast<T>(a.scale);
  int64_t n_q = 0;
  for (int64_t i = 0; i < a.Cq; ++i) {
    const int64_t token = q_slots[i];
    if (token >= a.N) continue;  // dummy slot
    const int64_t at = r * a.N + token;
    if (t.lse[at] == -std::numeric_limits<T>::infinity()) continue;
    w.q_tokens[n_q] = token;
    const T* q_src = t.q + a.qs.row(r, a.H) + token * a.qs.token;
    const T* o_src = t.out + at * a.E;
    const T* do_src = t.dout + r * t.dout_sr + token * t.dout_sn;
    T* q_dst = w.q.get() + n_q * w.d_pad;
    T* do_dst = w.dout.get() + n_q * w.e_pad;
#pragma omp simd
    for (int64_t d = 0; d < a.D; ++d) q_dst[d] = q_src[d] * scale;
    T delta = 0;  // dO . out: the softmax's Jacobian applied to dO, once per query (and hash)
    for (int64_t e = 0; e < a.E; ++e) {
      do_dst[e] = do_src[e * t.dout_se];
      delta += do_dst[e] * o_src[e];
    }
    w.row_lse[n_q] = t.lse[at];
    w.row_shift[n_q] = (t.dlse ? t.dlse[at] : T(0)) - delta;
    ++n_q;
  }
  return n_q;
}

// Gathers the cluster's keys and values (zero rows for dummy and masked slots); returns how many are real.
template <typename T, class Blk>
SMYRF_INLINE int64_t gather_keys(const ClusterArgs& a, const BackwardData<T>& t, int64_t r, const int64_t* k_slots,
                    BackwardScratch<T>& w) {
  int64_t n_real = 0;
  for (int64_t j = 0; j < w.keys_pad; ++j) {
    const int64_t token = j < a.Ck ? k_slots[j] : a.M;
    const bool real = token < a.M && (t.keep == nullptr || t.keep[r * a.M + token]);
    w.keep[j] = real ? T(1) : T(0);
    w.k_tokens[j] = token;
    w.k_rows[j] = real ? t.k + a.ks.row(r, a.H) + token * a.ks.token : w.zero_row.get();
    w.v_rows[j] = real ? t.v + a.vs.row(r, a.H) + token * a.vs.token : w.zero_row.get();
    std::memcpy(w.k.get() + j * w.d_pad, w.k_rows[j], sizeof(T) * a.D);
    n_real += real;
  }
  if (n_real == 0) return 0;
  transpose_keys<T, Blk::kBytes>(w.k_rows.data(), w.keys_pad, a.D, w.kt.get());
  transpose_keys<T, Blk::kBytes>(w.v_rows.data(), w.keys_pad, a.E, w.vt.get());
  return n_real;
}

// S <- P.Z and G <- dS for the first n_q rows; rows [n_q, rows) of both are zeroed.
template <typename T>
SMYRF_INLINE void score_gradients(const ClusterArgs& a, int64_t r, int64_t h, int64_t n_q, int64_t rows,
                                  BackwardScratch<T>& w) {
  const int64_t kp = w.keys_pad;
  const T* keep = w.keep.get();
  const T kept = static_cast<T>(1.0 / (1.0 - a.dropout));
  for (int64_t i = 0; i < n_q; ++i) {
    T* s = w.s.get() + i * kp;
    T* g = w.g.get() + i * kp;
    const T lse = w.row_lse[i], shift = w.row_shift[i];
    if (a.dropout > 0) {
      const uint64_t qkey = dropout_query_key(a.drop_seed, r, h, w.q_tokens[i]);
#pragma omp simd
      for (int64_t j = 0; j < kp; ++j) {
        const T p = keep[j] != T(0) ? exp_of(s[j] - lse) : T(0);
        const T z = dropout_bits(qkey, w.k_tokens[j]) >= a.drop_threshold ? kept : T(0);
        s[j] = p * z;
        g[j] = p * (z * g[j] + shift);
      }
    } else {
#pragma omp simd
      for (int64_t j = 0; j < kp; ++j) {
        const T p = keep[j] != T(0) ? exp_of(s[j] - lse) : T(0);
        s[j] = p;
        g[j] = p * (g[j] + shift);
      }
    }
  }
  if (rows > n_q) {
    std::memset(w.s.get() + n_q * kp, 0, sizeof(T) * (rows - n_q) * kp);
    std::memset(w.g.get() + n_q * kp, 0, sizeof(T) * (rows - n_q) * kp);
  }
}

// Adds the cluster's gradients into the rows of dq (times scale), dk and dv.
template <typename T>
SMYRF_INLINE void scatter_gradients(const ClusterArgs& a, const BackwardData<T>& t, int64_t r, int64_t n_q, BackwardScratch<T>& w) {
  const T scale = static_cast<T>(a.scale);
  for (int64_t i = 0; i < n_q; ++i) {
    T* dst = t.dq + (r * a.N + w.q_tokens[i]) * a.D;
    const T* src = w.dq.get() + i * w.d_pad;
#pragma omp simd
    for (int64_t d = 0; d < a.D; ++d) dst[d] += scale * src[d];
  }
  for (int64_t j = 0; j < a.Ck; ++j) {
    if (w.keep[j] == T(0)) continue;
    const int64_t at = r * a.M + w.k_tokens[j];
    T* dk = t.dk + at * a.D;
    T* dv = t.dv + at * a.E;
    const T* dk_src = w.dk.get() + j * w.d_pad;
    const T* dv_src = w.dv.get() + j * w.e_pad;
#pragma omp simd
    for (int64_t d = 0; d < a.D; ++d) dk[d] += dk_src[d];
#pragma omp simd
    for (int64_t e = 0; e < a.E; ++e) dv[e] += dv_src[e];
  }
}

template <typename T, class Blk>
SMYRF_INLINE void backward_cluster(const ClusterArgs& a, const BackwardData<T>& t, int64_t r, int64_t h, int64_t c,
                                   BackwardScratch<T>& w, LinePrefetch& none) {
  const int64_t* q_slots = t.pq + (r * a.n_hashes + h) * (a.L * a.Cq) + c * a.Cq;
  const int64_t* k_slots = t.pk + (r * a.n_hashes + h) * (a.L * a.Ck) + c * a.Ck;
  const int64_t n_q = gather_queries(a, t, r, q_slots, w);
  if (n_q == 0) return;
  const int64_t rows = round_up(n_q, Blk::kRows);
  if (rows > n_q) {
    std::memset(w.q.get() + n_q * w.d_pad, 0, sizeof(T) * (rows - n_q) * w.d_pad);
    std::memset(w.dout.get() + n_q * w.e_pad, 0, sizeof(T) * (rows - n_q) * w.e_pad);
  }
  if (gather_keys<T, Blk>(a, t, r, k_slots, w) == 0) return;  // no key: P is 0, so is every gradient
  const int64_t kp = w.keys_pad;
  gemm<T, Blk>(w.q.get(), w.d_pad, w.kt.get(), kp, w.s.get(), kp, rows, kp, a.D, none);       // S = Q K^T
  gemm<T, Blk>(w.dout.get(), w.e_pad, w.vt.get(), kp, w.g.get(), kp, rows, kp, a.E, none);    // G = dO V^T
  score_gradients(a, r, h, n_q, rows, w);
  gemm<T, Blk, true>(w.s.get(), kp, w.dout.get(), w.e_pad, w.dv.get(), w.e_pad, kp, w.e_pad, rows, none);  // (P.Z)^T dO
  gemm<T, Blk, true>(w.g.get(), kp, w.q.get(), w.d_pad, w.dk.get(), w.d_pad, kp, w.d_pad, rows, none);     // dS^T Q
  gemm<T, Blk>(w.g.get(), kp, w.k.get(), w.d_pad, w.dq.get(), w.d_pad, rows, w.d_pad, kp, none);           // dS K
  scatter_gradients(a, t, r, n_q, w);
}

// Clusters [c0, c1) of hashes [h0, h1) of rows [r0, r1), in that nesting.
template <typename T, class Blk>
SMYRF_INLINE void backward_ranges(const ClusterArgs& a, const BackwardData<T>& t, int64_t r0, int64_t r1, int64_t h0,
                                  int64_t h1, int64_t c0, int64_t c1) {
  BackwardScratch<T> w(a, Blk::kRows);
  LinePrefetch none;  // empty: the forward's paced prefetch of the next cluster is not used here (yet)
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t c = c0; c < c1; ++c) backward_cluster<T, Blk>(a, t, r, h, c, w, none);
}

SMYRF_DEFINE_KERNEL_VARIANTS(backward, backward_ranges, BackwardData)

}  // namespace clustered_detail

void clustered_attention_backward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                      const ClusteredCall& call, const at::Tensor& out_RNE, const at::Tensor& lse_RN,
                                      const at::Tensor& dout_RNE, const at::Tensor& dlse_RN, at::Tensor& dq_RND,
                                      at::Tensor& dk_RMD, at::Tensor& dv_RME) {
  using namespace clustered_detail;
  const ClusterArgs a = checked_args("clustered_attention_backward_cpu", q_RND, k_RMD, v_RME, call);
  const int64_t R = call.perm_q_RUN.size(0);
  check_output("out_RNE", out_RNE, q_RND, R, a.N, a.E);
  check_output("lse_RN", lse_RN, q_RND, 1, R, a.N);
  TORCH_CHECK(dout_RNE.defined() && dout_RNE.dim() == 3 && dout_RNE.sizes() == out_RNE.sizes() && dout_RNE.device().is_cpu() &&
                  dout_RNE.scalar_type() == q_RND.scalar_type(),
              "dout_RNE must be a CPU tensor of out_RNE's shape and dtype (any strides)");
  if (dlse_RN.defined()) check_output("dlse_RN", dlse_RN, q_RND, 1, R, a.N);
  check_output("dq_RND", dq_RND, q_RND, R, a.N, a.D);
  check_output("dk_RMD", dk_RMD, q_RND, R, a.M, a.D);
  check_output("dv_RME", dv_RME, q_RND, R, a.M, a.E);
  if (a.n_hashes == 0 || a.L == 0) return;
  const KernelIsa isa = call.isa == KernelIsa::kBest ? best_kernel_isa() : call.isa;
  AT_DISPATCH_FLOATING_TYPES(q_RND.scalar_type(), "clustered_attention_backward_cpu", [&] {
    const BackwardData<scalar_t> t{q_RND.data_ptr<scalar_t>(),
                                   k_RMD.data_ptr<scalar_t>(),
                                   v_RME.data_ptr<scalar_t>(),
                                   call.key_keep_RM.defined() ? call.key_keep_RM.data_ptr<bool>() : nullptr,
                                   call.perm_q_RUN.data_ptr<int64_t>(),
                                   call.perm_k_RUM.data_ptr<int64_t>(),
                                   out_RNE.data_ptr<scalar_t>(),
                                   dout_RNE.data_ptr<scalar_t>(),
                                   dout_RNE.stride(0),
                                   dout_RNE.stride(1),
                                   dout_RNE.stride(2),
                                   lse_RN.data_ptr<scalar_t>(),
                                   dlse_RN.defined() ? dlse_RN.data_ptr<scalar_t>() : nullptr,
                                   dq_RND.data_ptr<scalar_t>(),
                                   dk_RMD.data_ptr<scalar_t>(),
                                   dv_RME.data_ptr<scalar_t>()};
    const auto fn = backward_fn(isa, scalar_t());
    for_each_cluster_range(
        R, a.n_hashes, a.L,
        [&](int64_t r0, int64_t r1, int64_t h0, int64_t h1, int64_t c0, int64_t c1) { fn(a, t, r0, r1, h0, h1, c0, c1); },
        /*split_clusters=*/!call.shared_keys);
  });
}

}  // namespace smyrf
