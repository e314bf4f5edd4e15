// Building blocks shared by the fused clustered-attention kernels (clustered_attention_cpu.cpp:
// forward, clustered_attention_backward_cpu.cpp: backward); private to those two files.
//   exp_of          float32 exp by a branch-free polynomial (vectorises), std::exp for float64
//   gemm            C = op(A) B with a register-blocked micro-kernel over GCC/Clang vector
//                   extensions; op(A) = A or A^T (the backward's P^T dO and dS^T Q)
//   transpose_keys  W x W register transposes of gathered rows
//   LinePrefetch    paced software prefetch of the next cluster's gathered rows
//   for_each_cluster_range  the parallel schedule both kernels share
//   dropout_bits    the counter-based generator of attention dropout, so that the forward, the
//                   backward and the LibTorch twin draw the same mask for any thread count
// Tested through the kernels' tests: tests/attention/test_smyrf.cpp (Kernel.*: every instruction set of
// the forward against the float64 brute force) and tests/test_smyrf_backward.cpp (the backward and
// the dropout draws against the twin).
#pragma once

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

#include "core/attention/clustered_attention_cpu.h"
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

// C[0:MR, 0:NV*W] = op(A)[0:MR, 0:K] B[0:K, 0:NV*W]: A broadcast one element at a time, B and C in
// vectors of W; the MR x NV accumulators stay in registers. op(A)[i, k] is A[i * lda + k], or
// A[k * lda + i] when TransA (the MR elements of one k-step are then adjacent).
template <typename T, int Bytes, int MR, int NV, bool TransA = false>
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
      const V a = (TransA ? A[k * lda + i] : A[i * lda + k]) - V{};  // a broadcast (x - 0 folds to x; x + 0 would not)
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
template <typename T, int Bytes, int MR, int NV, bool TransA = false>
SMYRF_INLINE void gemm_panel(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t jv,
                             int64_t n_vecs, int64_t K, LinePrefetch& prefetch) {
  constexpr int W = Bytes / static_cast<int>(sizeof(T));
  for (; jv + NV <= n_vecs; jv += NV)
    gemm_tile<T, Bytes, MR, NV, TransA>(A, lda, B + jv * W, ldb, C + jv * W, ldc, K, prefetch);
  if constexpr (NV > 1) {
    if (jv < n_vecs) gemm_panel<T, Bytes, MR, NV - 1, TransA>(A, lda, B, ldb, C, ldc, jv, n_vecs, K, prefetch);
  }
}

// k-steps (tiles x K) that gemm below takes: a panel is n_vecs / NV tiles plus one for the rest.
template <class Blk>
int64_t gemm_k_steps(int64_t rows, int64_t n_vecs, int64_t K) {
  return rows / Blk::kRows * (n_vecs / Blk::kVecs + (n_vecs % Blk::kVecs != 0)) * K;
}

// C[rows, cols] = op(A)[rows, K] B[K, cols]; rows is a multiple of MR, cols of W.
template <typename T, class Blk, bool TransA = false>
SMYRF_INLINE void gemm(const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int64_t rows, int64_t cols,
                       int64_t K, LinePrefetch& prefetch) {
  constexpr int W = Blk::kBytes / static_cast<int>(sizeof(T));
  for (int64_t i0 = 0; i0 < rows; i0 += Blk::kRows)
    gemm_panel<T, Blk::kBytes, Blk::kRows, Blk::kVecs, TransA>(TransA ? A + i0 : A + i0 * lda, lda, B, ldb,
                                                               C + i0 * ldc, ldc, 0, cols / W, K, prefetch);
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

// Sizes of one kernel call: N, M real queries and keys of a row; Cq, Ck slots per cluster; L
// clusters; scale of the logits; dropout probability with its threshold and seed (see below); the
// strides of q, k and v.
// Where the rows of q, k or v lie: the tensor is [B, H, L, X] with its last dim contiguous (any
// other strides: a head view of a [B, L, H*X] projection is read in place); row r = b * H + h.
struct RowStrides {
  int64_t b = 0, h = 0, token = 0;
  int64_t row(int64_t r, int64_t heads) const { return (r / heads) * b + (r % heads) * h; }
};

struct ClusterArgs {
  int64_t N, M, D, E, Cq, Ck, L, n_hashes;
  double scale;
  double dropout = 0.0;
  uint32_t drop_threshold = 0;
  uint64_t drop_seed = 0;
  int64_t H = 1;  // heads: rows r of the [R, ...] outputs are (r / H, r % H) of q, k, v
  RowStrides qs, ks, vs;
};

// ---- attention dropout ---------------------------------------------------------------------------

// A key is kept with probability 1 - p. The draw of (row r, hash h, query token i, key token j) is
// a pure function of those indices and a 64-bit seed taken from the method's generator once per
// forward: the backward regenerates the forward's mask instead of storing it, the result does not
// depend on how clusters are spread over threads, and the LibTorch twin builds the same mask.
// SplitMix64 (Steele, Lea, Flood 2014) mixes the seed, row, hash and query into a 64-bit key; the
// key token enters through MurmurHash3's 32-bit finaliser, cheap enough to run per score entry.
inline uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

inline uint64_t dropout_query_key(uint64_t seed, int64_t row, int64_t hash, int64_t query) {
  return splitmix64(splitmix64(splitmix64(seed ^ static_cast<uint64_t>(row)) ^ static_cast<uint64_t>(hash)) ^
                    static_cast<uint64_t>(query));
}

SMYRF_INLINE uint32_t fmix32(uint32_t x) {
  x ^= x >> 16;
  x *= 0x85EBCA6Bu;
  x ^= x >> 13;
  x *= 0xC2B2AE35u;
  return x ^ (x >> 16);
}

// 32 uniform bits of the draw of key token `key` for the query whose dropout_query_key is `qkey`.
SMYRF_INLINE uint32_t dropout_bits(uint64_t qkey, int64_t key) {
  const uint32_t lo = static_cast<uint32_t>(qkey), hi = static_cast<uint32_t>(qkey >> 32);
  return fmix32(fmix32(lo ^ (static_cast<uint32_t>(key) * 0x9E3779B9u)) ^ hi);
}

// keep iff dropout_bits >= threshold; threshold = round(p * 2^32), so P(keep) = 1 - p to 2^-32.
inline uint32_t dropout_threshold(double p) {
  return static_cast<uint32_t>(std::min(std::llround(p * 4294967296.0), 4294967295ll));
}

// ---- the parallel schedule -----------------------------------------------------------------------

// Runs fn(r0, r1, h0, h1, c0, c1) over every (row, hash, cluster) of R rows, U hashes and L
// clusters so that no two threads ever touch the same token of a row at once. Within a hash every
// token lies in exactly one cluster, so the clusters of one (row, hash) may run on any threads;
// across hashes a token recurs, so hashes of a row run one after another.
// With enough rows (R a multiple of the threads, or at least 4 per thread) each thread takes whole
// rows, one at a time from a shared counter (a thread slowed down by another process takes fewer
// rows instead of holding everyone up at the end; no barrier between hashes, and a row's data stay
// in cache from one hash to the next); otherwise the clusters of each (row, hash) are split over
// the threads. split_clusters false: whole rows always (clusters that share keys, ClusteredCall).
template <class Fn>
void for_each_cluster_range(int64_t R, int64_t n_hashes, int64_t L, const Fn& fn, bool split_clusters = true) {
  const int64_t threads = at::get_num_threads();
  if (!split_clusters || (R >= threads && (R % threads == 0 || R >= 4 * threads))) {
    std::atomic<int64_t> next_row{0};
    at::parallel_for(0, threads, 1, [&](int64_t w0, int64_t w1) {
      for (int64_t worker = w0; worker < w1; ++worker)
        for (int64_t r = next_row++; r < R; r = next_row++) fn(r, r + 1, int64_t{0}, n_hashes, int64_t{0}, L);
    });
    return;
  }
  for (int64_t r = 0; r < R; ++r)
    for (int64_t h = 0; h < n_hashes; ++h)
      at::parallel_for(0, L, 1, [&](int64_t c0, int64_t c1) { fn(r, r + 1, h, h + 1, c0, c1); });
}

// ---- entry points -------------------------------------------------------------------------------

// Checks one call's tensors (shapes, dtypes, contiguity, the instruction set) and returns its sizes.
ClusterArgs checked_args(const char* who, const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                         const ClusteredCall& call);
// Checks that an output tensor holds R x L x X elements of like's dtype ([R, L, X] or [B, H, L, X]),
// contiguous on the CPU.
void check_output(const char* name, const at::Tensor& t, const at::Tensor& like, int64_t R, int64_t L, int64_t X);

// ---- instruction sets -----------------------------------------------------------------------------

// Declares the per-instruction-set entry points of a kernel whose loop nest is
// ranges<T, Blk>(args, data, r0, r1, h0, h1, c0, c1) over data of type Data<T>, and
// name##_fn(isa, T()) that picks one. Each entry point holds the whole loop nest, so that
// everything inlined into it is compiled for its instruction set.
#define SMYRF_KERNEL_VARIANT(fn, attr, T, Blk, ranges, Data)                                                   \
  attr void fn(const ClusterArgs& a, const Data<T>& t, int64_t r0, int64_t r1, int64_t h0, int64_t h1, int64_t c0, \
               int64_t c1) {                                                                                  \
    ranges<T, Blk>(a, t, r0, r1, h0, h1, c0, c1);                                                             \
  }
#define SMYRF_KERNEL_PICKER(name, T, Data, sfx)                                                                 \
  inline void (*name##_fn(KernelIsa isa, T))(const ClusterArgs&, const Data<T>&, int64_t, int64_t, int64_t,   \
                                            int64_t, int64_t, int64_t) {                                       \
    if (SMYRF_KERNEL_X86 && isa == KernelIsa::kAvx512) return SMYRF_KERNEL_X86_FN(name##_avx512_##sfx);        \
    if (SMYRF_KERNEL_X86 && isa == KernelIsa::kAvx2) return SMYRF_KERNEL_X86_FN(name##_avx2_##sfx);            \
    return name##_portable_##sfx;                                                                             \
  }
#if SMYRF_KERNEL_X86
#define SMYRF_KERNEL_X86_FN(fn) fn
#define SMYRF_DEFINE_KERNEL_VARIANTS(name, ranges, Data)                                  \
  SMYRF_KERNEL_VARIANT(name##_portable_f32, , float, BlockingPortable, ranges, Data)      \
  SMYRF_KERNEL_VARIANT(name##_portable_f64, , double, BlockingPortable, ranges, Data)     \
  SMYRF_KERNEL_VARIANT(name##_avx2_f32, SMYRF_TARGET_AVX2, float, BlockingAvx2, ranges, Data)      \
  SMYRF_KERNEL_VARIANT(name##_avx2_f64, SMYRF_TARGET_AVX2, double, BlockingAvx2, ranges, Data)     \
  SMYRF_KERNEL_VARIANT(name##_avx512_f32, SMYRF_TARGET_AVX512, float, BlockingAvx512, ranges, Data) \
  SMYRF_KERNEL_VARIANT(name##_avx512_f64, SMYRF_TARGET_AVX512, double, BlockingAvx512, ranges, Data) \
  SMYRF_KERNEL_PICKER(name, float, Data, f32)                                             \
  SMYRF_KERNEL_PICKER(name, double, Data, f64)
#else
#define SMYRF_KERNEL_X86_FN(fn) nullptr
#define SMYRF_DEFINE_KERNEL_VARIANTS(name, ranges, Data)                              \
  SMYRF_KERNEL_VARIANT(name##_portable_f32, , float, BlockingPortable, ranges, Data)  \
  SMYRF_KERNEL_VARIANT(name##_portable_f64, , double, BlockingPortable, ranges, Data) \
  SMYRF_KERNEL_PICKER(name, float, Data, f32)                                         \
  SMYRF_KERNEL_PICKER(name, double, Data, f64)
#endif

// Inverted dropout on one row of unnormalised probabilities p[0:n] of query token `query`, whose key
// slots hold key tokens k_tokens[0:n] (see dropout_bits).
template <typename T>
SMYRF_INLINE void drop_row(const ClusterArgs& a, int64_t row, int64_t hash, int64_t query, const int64_t* k_tokens,
                           T* p, int64_t n) {
  const uint64_t qkey = dropout_query_key(a.drop_seed, row, hash, query);
  const T kept = static_cast<T>(1.0 / (1.0 - a.dropout));
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) p[j] = dropout_bits(qkey, k_tokens[j]) >= a.drop_threshold ? p[j] * kept : T(0);
}

}  // namespace clustered_detail
}  // namespace smyrf
