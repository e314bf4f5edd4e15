// Fused CPU clustered-attention kernel; see clustered_attention_cpu.h.
//
// Per cluster (Cq query slots, Ck key slots of one row r and one hash h):
//   pass 1: gather the real queries (scaled), the keys transposed (W x W blocks in registers) and
//           the values into 64-byte aligned scratch that stays in L1/L2; dummy and masked keys
//           read a zero row instead of their (possibly NaN) data;
//   pass 2: S = Q K^T with a register-blocked micro-kernel (MR rows x NV vectors of keys);
//   pass 3: per query row: max, P = exp(S - max) (masked keys 0), sum, lse = max + log(sum);
//   pass 4: O = P V with the same micro-kernel (P unnormalised; 1/sum is applied in pass 5);
//   pass 5: write O / sum into the query's output row (first hash), or merge it with what earlier
//           hashes gave the row: a two-term log-sum-exp on lse and the matching weights.
// While a cluster computes, the rows of the next one are prefetched one cache line at a time,
// paced through the two products: the gathers are random rows of q/k/v/out, and waiting on them
// was a third of the time before that.
//
// Parallelism: within a hash every token lies in exactly one cluster, so the clusters of one
// (row, hash) can run on any threads without locks. With enough rows (R a multiple of the threads,
// or at least 4 per thread) each thread takes whole rows, one at a time (all hashes and clusters:
// no barrier, and a row's q/k/v/out stay in cache from one hash to the next); otherwise the
// clusters of each (row, hash) are split over the threads.
//
// Instruction sets: the micro-kernel is written once with GCC/Clang vector extensions and
// instantiated for AVX-512 (16 floats), AVX2+FMA (8) and a portable 16-byte build (SSE2 on
// x86-64, NEON on Arm); clustered_attention_forward_cpu picks the widest the CPU supports at run
// time (__builtin_cpu_supports), or the one the caller names (tests run every available one).
#include "core/attention/clustered_attention_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/util/tensor_checks.h"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define SMYRF_KERNEL_X86 1
#define SMYRF_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma,bmi,bmi2,popcnt")))
#define SMYRF_TARGET_AVX2 __attribute__((target("avx2,fma,bmi,bmi2,popcnt")))
#else
#define SMYRF_KERNEL_X86 0
#endif

#define SMYRF_INLINE inline __attribute__((always_inline))

namespace smyrf {
namespace clustered_detail {

// exp by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r; written
// branch-free on purpose so that the compiler vectorises the loops that call it.
SMYRF_INLINE float exp_poly(float x) {
  x = std::min(std::max(x, -87.3f), 88.0f);
  // round to nearest by adding and subtracting 1.5 * 2^23 (no library call, so it vectorises)
  constexpr float kRound = 12582912.0f;
  const float n = (x * 1.44269504088896341f + kRound) - kRound;
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two for accuracy
  float p = 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits;
  const int32_t exponent = (static_cast<int32_t>(n) + 127) << 23;
  std::memcpy(&bits, &p, sizeof bits);
  bits += exponent - (127 << 23);
  float result;
  std::memcpy(&result, &bits, sizeof result);
  return result;
}

SMYRF_INLINE float exp_of(float x) { return exp_poly(x); }
SMYRF_INLINE double exp_of(double x) { return std::exp(x); }

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// Register blocking of one instruction set: vectors of kBytes, tiles of kRows x kVecs vectors.
template <int Bytes, int Rows, int Vecs>
struct Blocking {
  static constexpr int kBytes = Bytes;
  static constexpr int kRows = Rows;
  static constexpr int kVecs = Vecs;
};
using BlockingAvx512 = Blocking<64, 4, 4>;  // 16 accumulators of 32 zmm
using BlockingAvx2 = Blocking<32, 4, 3>;    // 12 accumulators of 16 ymm
using BlockingPortable = Blocking<16, 4, 2>;

constexpr int64_t kAlignBytes = 64;  // scratch rows start on cache lines

struct AlignedFree {
  void operator()(void* p) const { std::free(p); }
};

// Zeroed, cache-line aligned array of n elements.
template <typename T>
std::unique_ptr<T[], AlignedFree> aligned_zeros(int64_t n) {
  const size_t bytes = static_cast<size_t>(round_up(std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(T)), kAlignBytes));
  void* p = std::aligned_alloc(kAlignBytes, bytes);
  if (p == nullptr) throw std::bad_alloc();
  std::memset(p, 0, bytes);
  return std::unique_ptr<T[], AlignedFree>(static_cast<T*>(p));
}

struct ClusterArgs {
  int64_t N, M, D, E, Cq, Ck, L, n_hashes;
  double scale;
};

// Per-thread scratch of one cluster. Padding (rows past the real queries, key columns past Ck,
// value columns past E) is zero from the start and never written with anything else.
template <typename T>
struct Scratch {
  int64_t rows_pad, keys_pad, vals_pad;
  std::unique_ptr<T[], AlignedFree> q, kt, v, s, o, keep, row_lse, row_inv_sum;
  std::unique_ptr<T[], AlignedFree> zero_row;  // [max(D, E)]
  std::vector<int64_t> q_tokens;
  std::vector<const T*> k_rows;  // [keys_pad]: the source row of each key slot
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
        k_rows(static_cast<size_t>(keys_pad)) {}
};

// The cache lines of the q, k, v and out rows that the next cluster will touch, prefetched one at a
// time at an even pace through the current cluster's two products (gathers by token index defeat
// the hardware prefetcher). Issuing them in bursts instead stalls on the few misses a core can
// have in flight; spread out, they overlap with the arithmetic.
struct LinePrefetch {
  std::vector<const char*> lines;  // the next cluster's lines, in the order they are prefetched
  size_t next = 0;
  int64_t every = 1;      // k-steps of the products between two prefetches
  int64_t countdown = 1;

  template <typename T>
  void add_row(const T* row, int64_t n) {
    const uintptr_t first = reinterpret_cast<uintptr_t>(row) & ~uintptr_t{63};
    const uintptr_t end = reinterpret_cast<uintptr_t>(row + n);
    for (uintptr_t p = first; p < end; p += 64) lines.push_back(reinterpret_cast<const char*>(p));
  }
  // the products of this cluster take k_steps steps in all
  void pace(int64_t k_steps) {
    const int64_t n = static_cast<int64_t>(lines.size() - next);
    every = n > 0 ? std::max<int64_t>(1, k_steps / n) : std::numeric_limits<int64_t>::max();
    countdown = every;
  }
  SMYRF_INLINE void step() {
    if (--countdown == 0) {
      countdown = every;
      if (next < lines.size()) __builtin_prefetch(lines[next++], 0, 3);
    }
  }
  void flush() {
    for (; next < lines.size(); ++next) __builtin_prefetch(lines[next], 0, 3);
  }
  void reset() {
    lines.clear();
    next = 0;
  }
};

// C[0:MR, 0:NV*W] = A[0:MR, 0:K] B[0:K, 0:NV*W]: A broadcast one element at a time, B and C in
// vectors of W; the MR x NV accumulators stay in registers.
template <typename T, int Bytes, int MR, int NV>
SMYRF_INLINE void gemm_tile(const T* __restrict__ A, int64_t lda, const T* __restrict__ B, int64_t ldb,
                            T* __restrict__ C, int64_t ldc, int64_t K, LinePrefetch& prefetch) {
  typedef T V __attribute__((vector_size(Bytes)));
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int n = 0; n < NV; ++n) acc[i][n] = V{};
  for (int64_t k = 0; k < K; ++k) {
    V b[NV];
#pragma GCC unroll 16
    for (int n = 0; n < NV; ++n) std::memcpy(&b[n], B + k * ldb + n * W, sizeof(V));
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V a = A[i * lda + k] - V{};  // a broadcast (x - 0 folds to x; x + 0 would not)
#pragma GCC unroll 16
      for (int n = 0; n < NV; ++n) acc[i][n] += a * b[n];
    }
    prefetch.step();
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int n = 0; n < NV; ++n) std::memcpy(C + i * ldc + n * W, &acc[i][n], sizeof(V));
}

// One MR-row panel over column vectors [jv, n_vecs): tiles of NV vectors, then the remainder with
// narrower tiles.
template <typename T, int Bytes, int MR, int NV>
SMYRF_INLINE void gemm_panel(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t jv,
                             int64_t n_vecs, int64_t K, LinePrefetch& prefetch) {
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
  for (; jv + NV <= n_vecs; jv += NV)
    gemm_tile<T, Bytes, MR, NV>(A, lda, B + jv * W, ldb, C + jv * W, ldc, K, prefetch);
  if constexpr (NV > 1) {
    if (jv < n_vecs) gemm_panel<T, Bytes, MR, NV - 1>(A, lda, B, ldb, C, ldc, jv, n_vecs, K, prefetch);
  }
}

// k-steps (tiles x K) that gemm below takes: a panel is n_vecs / NV tiles plus one for the rest.
template <class Blk>
int64_t gemm_k_steps(int64_t rows, int64_t n_vecs, int64_t K) {
  return rows / Blk::kRows * (n_vecs / Blk::kVecs + (n_vecs % Blk::kVecs != 0)) * K;
}

// C[rows, cols] = A[rows, K] B[K, cols]; rows is a multiple of MR, cols of W.
template <typename T, class Blk>
SMYRF_INLINE void gemm(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t rows, int64_t cols,
                       int64_t K, LinePrefetch& prefetch) {
  constexpr int W = Blk::kBytes / static_cast<int>(sizeof(T));
  for (int64_t i0 = 0; i0 < rows; i0 += Blk::kRows)
    gemm_panel<T, Blk::kBytes, Blk::kRows, Blk::kVecs>(A + i0 * lda, lda, B, ldb, C + i0 * ldc, ldc, 0, cols / W, K,
                                                       prefetch);
}

// Two-source shuffle; the lane indices are compile-time constants.
#if defined(__clang__)
#define SMYRF_SHUFFLE(V, M, a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SMYRF_SHUFFLE(V, M, a, b, ...) __builtin_shuffle(a, b, M{__VA_ARGS__})
#endif

// One butterfly stage of a W x W transpose held in W vectors: for every pair of rows (r, r + S)
// with bit S of r clear, swap the off-diagonal S-lane blocks. After the stages S = 1, 2, .., W/2
// row i holds column i.
template <typename T, int Bytes, int S, int... L>
SMYRF_INLINE void transpose_stage(T* rows_flat, std::integer_sequence<int, L...>) {
  typedef T V __attribute__((vector_size(Bytes)));
  typedef std::conditional_t<sizeof(T) == 4, int32_t, int64_t> I;
  typedef I M __attribute__((vector_size(Bytes), unused));  // GCC's shuffle mask type
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
#pragma GCC unroll 16
  for (int r = 0; r < W; ++r) {
    if (r & S) continue;
    V a, b;
    std::memcpy(&a, rows_flat + r * W, sizeof(V));
    std::memcpy(&b, rows_flat + (r + S) * W, sizeof(V));
    const V lo = SMYRF_SHUFFLE(V, M, a, b, ((L & S) ? W + L - S : L)...);
    const V hi = SMYRF_SHUFFLE(V, M, a, b, ((L & S) ? W + L : L + S)...);
    std::memcpy(rows_flat + r * W, &lo, sizeof(V));
    std::memcpy(rows_flat + (r + S) * W, &hi, sizeof(V));
  }
}

template <typename T, int Bytes, int S>
SMYRF_INLINE void transpose_stages(T* rows_flat) {
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
  if constexpr (S < W) {
    transpose_stage<T, Bytes, S>(rows_flat, std::make_integer_sequence<int, W>{});
    transpose_stages<T, Bytes, 2 * S>(rows_flat);
  }
}

// kt[d, j] = rows[j][d] for j < keys (a multiple of W) and d < D: W x W blocks transposed in
// registers (W loads, W log2 W shuffles, W stores instead of W^2 scalar stores), the last D % W
// columns one element at a time.
template <typename T, int Bytes>
SMYRF_INLINE void transpose_keys(const T* const* rows, int64_t keys, int64_t D, T* __restrict__ kt) {
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
  alignas(64) T block[W * W];
  const int64_t D_vec = D / W * W;
  for (int64_t j0 = 0; j0 < keys; j0 += W) {
    for (int64_t d0 = 0; d0 < D_vec; d0 += W) {
#pragma GCC unroll 16
      for (int j = 0; j < W; ++j) std::memcpy(block + j * W, rows[j0 + j] + d0, sizeof(T) * W);
      transpose_stages<T, Bytes, 1>(block);
#pragma GCC unroll 16
      for (int d = 0; d < W; ++d) std::memcpy(kt + (d0 + d) * keys + j0, block + d * W, sizeof(T) * W);
    }
    for (int64_t d = D_vec; d < D; ++d)
      for (int j = 0; j < W; ++j) kt[d * keys + j0 + j] = rows[j0 + j][d];
  }
}

// One cluster: gather, scores, masked softmax with lse, P V, and the write or merge into out/lse.
// first_hash: out/lse of these queries hold nothing yet (they are written, not merged).
template <typename T, class Blk>
SMYRF_INLINE void attend_cluster(const ClusterArgs& a, const T* __restrict__ q, const T* __restrict__ k,
                                 const T* __restrict__ v, const bool* key_keep, const int64_t* q_slots,
                                 const int64_t* k_slots, bool first_hash, T* __restrict__ out, T* __restrict__ lse,
                                 Scratch<T>& w, LinePrefetch& prefetch) {
  const int64_t D = a.D, E = a.E, Cq = a.Cq, Ck = a.Ck;
  const int64_t keys_pad = w.keys_pad, vals_pad = w.vals_pad;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  // pass 1: gather
  const T scale = static_cast<T>(a.scale);
  int64_t n_q = 0;
  for (int64_t i = 0; i < Cq; ++i) {
    const int64_t token = q_slots[i];
    if (token >= a.N) continue;  // dummy slot
    w.q_tokens[n_q] = token;
    const T* src = q + token * D;
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
    w.k_rows[j] = real ? k + token * D : w.zero_row.get();
    n_real_keys += real;
    if (j >= Ck) continue;
    T* v_row = w.v.get() + j * vals_pad;
    const T* vs = real ? v + token * E : w.zero_row.get();
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
  }
  // padded rows of S hold Q's zero rows times K: finite; their outputs are never read
  // pass 4: O = P V
  gemm<T, Blk>(w.s.get(), keys_pad, w.v.get(), vals_pad, w.o.get(), vals_pad, rows, vals_pad, keys_pad, prefetch);
  // pass 5: write or merge
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

// What one call works on: the tensors' data and the (row, hash, cluster) ranges.
template <typename T>
struct KernelData {
  const T* q;
  const T* k;
  const T* v;
  const bool* keep;   // [R, M] or null
  const int64_t* pq;  // [R, #, L*Cq]
  const int64_t* pk;  // [R, #, L*Ck]
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
        prefetch.add_row(t.q + (r1 * a.N + token) * a.D, a.D);
        prefetch.add_row(t.out + (r1 * a.N + token) * a.E, a.E);
      }
      for (int64_t j = 0; j < a.Ck; ++j) {
        const int64_t token = next_k[j];
        if (token >= a.M) continue;
        prefetch.add_row(t.k + (r1 * a.M + token) * a.D, a.D);
        prefetch.add_row(t.v + (r1 * a.M + token) * a.E, a.E);
      }
    }
    attend_cluster<T, Blk>(a, t.q + r * a.N * a.D, t.k + r * a.M * a.D, t.v + r * a.M * a.E,
                           t.keep ? t.keep + r * a.M : nullptr, q_slots, k_slots, h == 0, t.out + r * a.N * a.E,
                           t.lse + r * a.N, w, prefetch);
    prefetch.flush();  // whatever the products did not get to (or all of it, for a skipped cluster)
  }
}

// The functions compiled per instruction set hold the whole loop nest, so that everything inlined
// into them is compiled for that instruction set.
#define SMYRF_DEFINE_ATTEND(name, attr, T, Blk)                                                               \
  attr void name(const ClusterArgs& a, const KernelData<T>& t, int64_t r0, int64_t r1, int64_t h0, int64_t h1, \
                 int64_t c0, int64_t c1) {                                                                    \
    attend_ranges<T, Blk>(a, t, r0, r1, h0, h1, c0, c1);                                                      \
  }

SMYRF_DEFINE_ATTEND(attend_portable_f32, , float, BlockingPortable)
SMYRF_DEFINE_ATTEND(attend_portable_f64, , double, BlockingPortable)
#if SMYRF_KERNEL_X86
SMYRF_DEFINE_ATTEND(attend_avx2_f32, SMYRF_TARGET_AVX2, float, BlockingAvx2)
SMYRF_DEFINE_ATTEND(attend_avx2_f64, SMYRF_TARGET_AVX2, double, BlockingAvx2)
SMYRF_DEFINE_ATTEND(attend_avx512_f32, SMYRF_TARGET_AVX512, float, BlockingAvx512)
SMYRF_DEFINE_ATTEND(attend_avx512_f64, SMYRF_TARGET_AVX512, double, BlockingAvx512)
#endif
#undef SMYRF_DEFINE_ATTEND

template <typename T>
using AttendFn = void (*)(const ClusterArgs&, const KernelData<T>&, int64_t, int64_t, int64_t, int64_t, int64_t,
                          int64_t);

template <typename T>
AttendFn<T> attend_fn(KernelIsa isa);

template <>
AttendFn<float> attend_fn<float>(KernelIsa isa) {
  switch (isa) {
#if SMYRF_KERNEL_X86
    case KernelIsa::kAvx512: return attend_avx512_f32;
    case KernelIsa::kAvx2: return attend_avx2_f32;
#endif
    default: return attend_portable_f32;
  }
}

template <>
AttendFn<double> attend_fn<double>(KernelIsa isa) {
  switch (isa) {
#if SMYRF_KERNEL_X86
    case KernelIsa::kAvx512: return attend_avx512_f64;
    case KernelIsa::kAvx2: return attend_avx2_f64;
#endif
    default: return attend_portable_f64;
  }
}

template <typename T>
void run_kernel(const ClusterArgs& a, const KernelData<T>& t, int64_t R, KernelIsa isa) {
  const AttendFn<T> fn = attend_fn<T>(isa);
  const int64_t threads = at::get_num_threads();
  if (R >= threads && (R % threads == 0 || R >= 4 * threads)) {
    // whole rows per thread, taken one at a time from a shared counter (a thread slowed down by
    // another process takes fewer rows instead of holding everyone up at the end); no barrier
    // between hashes, and a row's q/k/v/out stay in cache from one hash to the next
    std::atomic<int64_t> next_row{0};
    at::parallel_for(0, threads, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t worker = w0; worker < w1; ++worker)
        for (int64_t r = next_row++; r < R; r = next_row++) fn(a, t, r, r + 1, 0, a.n_hashes, 0, a.L);
    });
    return;
  }
  // one hash of one row at a time, its clusters split over the threads
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < a.n_hashes; ++h)
      at::parallel_for(0, a.L, 1, [&](int64_t c0, int64_t c1) { fn(a, t, r, r + 1, h, h + 1, c0, c1); });
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

void clustered_attention_forward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                     const at::Tensor& key_keep_RM, const at::Tensor& perm_q_RHN,
                                     const at::Tensor& perm_k_RHM, int64_t Cq, int64_t Ck, double scale,
                                     at::Tensor& out_RNE, at::Tensor& lse_RN, KernelIsa isa) {
  SMYRF_CHECK_SHAPE(q_RND, "q_RND", -1, -1, -1);
  const int64_t R = q_RND.size(0), N = q_RND.size(1), D = q_RND.size(2);
  SMYRF_CHECK_SHAPE(k_RMD, "k_RMD", R, -1, D);
  const int64_t M = k_RMD.size(1);
  SMYRF_CHECK_SHAPE(v_RME, "v_RME", R, M, -1);
  const int64_t E = v_RME.size(2);
  SMYRF_CHECK_SHAPE(perm_q_RHN, "perm_q_RHN", R, -1, -1);
  const int64_t n_hashes = perm_q_RHN.size(1), L = perm_q_RHN.size(2) / Cq;
  SMYRF_CHECK_SHAPE(perm_q_RHN, "perm_q_RHN", R, n_hashes, L * Cq);
  SMYRF_CHECK_SHAPE(perm_k_RHM, "perm_k_RHM", R, n_hashes, L * Ck);
  SMYRF_CHECK_SHAPE(out_RNE, "out_RNE", R, N, E);
  SMYRF_CHECK_SHAPE(lse_RN, "lse_RN", R, N);
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&q_RND, &k_RMD, &v_RME, &perm_q_RHN, &perm_k_RHM, &out_RNE, &lse_RN})
    TORCH_CHECK(t->is_contiguous() && t->device().is_cpu(), "clustered_attention_forward_cpu: tensors must be "
                                                            "contiguous CPU tensors");
  TORCH_CHECK(perm_q_RHN.scalar_type() == at::kLong && perm_k_RHM.scalar_type() == at::kLong,
              "perm_q_RHN and perm_k_RHM must be int64");
  TORCH_CHECK(kernel_isa_available(isa), "clustered_attention_forward_cpu: this CPU cannot run the ",
              kernel_isa_name(isa), " kernel");
  if (isa == KernelIsa::kBest) isa = best_kernel_isa();
  const bool* keep = nullptr;
  if (key_keep_RM.defined()) {
    SMYRF_CHECK_SHAPE(key_keep_RM, "key_keep_RM", R, M);
    TORCH_CHECK(key_keep_RM.scalar_type() == at::kBool && key_keep_RM.is_contiguous(), "key_keep_RM: contiguous bool");
    keep = key_keep_RM.data_ptr<bool>();
  }
  const clustered_detail::ClusterArgs args{N, M, D, E, Cq, Ck, L, n_hashes, scale};
  if (n_hashes == 0 || L == 0) {
    out_RNE.zero_();
    lse_RN.fill_(-std::numeric_limits<double>::infinity());
    return;
  }
  const int64_t* pq = perm_q_RHN.data_ptr<int64_t>();
  const int64_t* pk = perm_k_RHM.data_ptr<int64_t>();
  if (q_RND.scalar_type() == at::kFloat) {
    const clustered_detail::KernelData<float> t{q_RND.data_ptr<float>(), k_RMD.data_ptr<float>(), v_RME.data_ptr<float>(),
                                                keep, pq, pk, out_RNE.data_ptr<float>(), lse_RN.data_ptr<float>()};
    clustered_detail::run_kernel(args, t, R, isa);
  } else {
    TORCH_CHECK(q_RND.scalar_type() == at::kDouble, "clustered_attention_forward_cpu: float32 or float64");
    const clustered_detail::KernelData<double> t{q_RND.data_ptr<double>(), k_RMD.data_ptr<double>(),
                                                 v_RME.data_ptr<double>(), keep, pq, pk, out_RNE.data_ptr<double>(),
                                                 lse_RN.data_ptr<double>()};
    clustered_detail::run_kernel(args, t, R, isa);
  }
}

}  // namespace smyrf

#undef SMYRF_KERNEL_X86
#undef SMYRF_TARGET_AVX512
#undef SMYRF_TARGET_AVX2
#undef SMYRF_INLINE
#undef SMYRF_SHUFFLE
