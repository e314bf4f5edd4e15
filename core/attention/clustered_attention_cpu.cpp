// Fused CPU clustered-attention kernel; see clustered_attention_cpu.h.
//
// Work is split over (row, cluster) pairs of one hash at a time: within a hash every token lies in
// exactly one cluster, so each output row is written by one thread and needs no lock. The hot loop
// is compiled three times (x86-64-v4 with AVX-512, x86-64-v3 with AVX2/FMA, and the baseline) and
// the loader picks the best the CPU supports.
#include "core/attention/clustered_attention_cpu.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/util/tensor_checks.h"

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define SMYRF_TARGET_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define SMYRF_TARGET_CLONES
#endif

namespace smyrf {
namespace clustered_detail {

// exp by range reduction x = n ln2 + r, |r| <= ln2/2, and a degree-6 polynomial for e^r; written
// branch-free on purpose so that the compiler vectorises the loops that call it.
inline float exp_poly(float x) {
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

inline float exp_of(float x) { return exp_poly(x); }
inline double exp_of(double x) { return std::exp(x); }

// Register blocking of the two small matrix products: kRows query rows x kCols keys (or value
// columns) per step, with constant trip counts so that the accumulators live in registers.
constexpr int64_t kRows = 4;  // small_gemm below is written out for exactly 4 rows
constexpr int64_t kCols = 16;

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

template <typename T>
struct Workspace {
  int64_t Cq_pad, Ck_pad, E_pad;
  std::vector<T> q, kt, v, scores, out;  // [Cq_pad, D], [D, Ck_pad], [Ck_pad, E_pad], [Cq_pad, Ck_pad], [Cq_pad, E_pad]
  std::vector<T> key_bias, row_lse;     // [Ck_pad]: 0 for real keys, -inf otherwise; [Cq_pad]
  std::vector<int64_t> q_tokens;
  Workspace(int64_t Cq, int64_t Ck, int64_t D, int64_t E)
      : Cq_pad(round_up(Cq, kRows)), Ck_pad(round_up(Ck, kCols)), E_pad(round_up(E, kCols)),
        q(Cq_pad * D), kt(D * Ck_pad), v(Ck_pad * E_pad), scores(Cq_pad * Ck_pad), out(Cq_pad * E_pad),
        key_bias(Ck_pad), row_lse(Cq_pad), q_tokens(Cq_pad) {}
};

struct ClusterArgs {
  int64_t N, M, D, E, Cq, Ck;
  double scale;
};

// C[i, j] = sum_k A[i, k] * B[k, j] for i < rows (multiple of kRows), j < cols (multiple of kCols);
// A is [rows, K] with row stride lda, B is [K, cols] with row stride ldb, C has row stride ldc.
template <typename T>
inline __attribute__((always_inline)) void small_gemm(const T* __restrict__ A, int64_t lda, const T* __restrict__ B,
                                                      int64_t ldb, T* __restrict__ C, int64_t ldc, int64_t rows,
                                                      int64_t cols, int64_t K) {
  for (int64_t i0 = 0; i0 < rows; i0 += kRows) {
    for (int64_t j0 = 0; j0 < cols; j0 += kCols) {
      T acc0[kCols] = {}, acc1[kCols] = {}, acc2[kCols] = {}, acc3[kCols] = {};
      const T* a0 = A + (i0 + 0) * lda;
      const T* a1 = A + (i0 + 1) * lda;
      const T* a2 = A + (i0 + 2) * lda;
      const T* a3 = A + (i0 + 3) * lda;
      for (int64_t k = 0; k < K; ++k) {
        const T* b = B + k * ldb + j0;
        const T x0 = a0[k], x1 = a1[k], x2 = a2[k], x3 = a3[k];
#pragma omp simd
        for (int64_t c = 0; c < kCols; ++c) {
          acc0[c] += x0 * b[c];
          acc1[c] += x1 * b[c];
          acc2[c] += x2 * b[c];
          acc3[c] += x3 * b[c];
        }
      }
#pragma omp simd
      for (int64_t c = 0; c < kCols; ++c) {
        C[(i0 + 0) * ldc + j0 + c] = acc0[c];
        C[(i0 + 1) * ldc + j0 + c] = acc1[c];
        C[(i0 + 2) * ldc + j0 + c] = acc2[c];
        C[(i0 + 3) * ldc + j0 + c] = acc3[c];
      }
    }
  }
}

// One cluster: gather, scores, masked softmax with lse, P V, and the online merge into out/lse.
template <typename T>
inline __attribute__((always_inline)) void attend_cluster(const ClusterArgs& a, const T* __restrict__ q,
                                                          const T* __restrict__ k, const T* __restrict__ v,
                                                          const bool* key_keep, const int64_t* q_slots,
                                                          const int64_t* k_slots, T* __restrict__ out,
                                                          T* __restrict__ lse, Workspace<T>& w) {
  const int64_t D = a.D, E = a.E, Cq = a.Cq, Ck = a.Ck;
  const int64_t Ck_pad = w.Ck_pad, E_pad = w.E_pad;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  // gather the real queries (scaled once here instead of scaling every score)
  int64_t n_q = 0;
  for (int64_t i = 0; i < Cq; ++i) {
    const int64_t token = q_slots[i];
    if (token >= a.N) continue;  // dummy slot
    w.q_tokens[n_q] = token;
    const T* src = q + token * D;
    T* dst = w.q.data() + n_q * D;
    const T scale = static_cast<T>(a.scale);
    for (int64_t d = 0; d < D; ++d) dst[d] = src[d] * scale;
    ++n_q;
  }
  if (n_q == 0) return;
  const int64_t rows = round_up(n_q, kRows);
  for (int64_t i = n_q; i < rows; ++i)
    for (int64_t d = 0; d < D; ++d) w.q[i * D + d] = T(0);
  // gather keys (transposed) and values; unreal keys and the padding up to Ck_pad get bias -inf
  int64_t n_real_keys = 0;
  for (int64_t j = 0; j < Ck_pad; ++j) {
    const int64_t token = j < Ck ? k_slots[j] : a.M;
    const bool real = token < a.M && (key_keep == nullptr || key_keep[token]);
    w.key_bias[j] = real ? T(0) : neg_inf;
    n_real_keys += real;
    T* v_row = w.v.data() + j * E_pad;
    if (real) {
      const T* ks = k + token * D;
      const T* vs = v + token * E;
      for (int64_t d = 0; d < D; ++d) w.kt[d * Ck_pad + j] = ks[d];
      for (int64_t e = 0; e < E; ++e) v_row[e] = vs[e];
    } else {
      for (int64_t d = 0; d < D; ++d) w.kt[d * Ck_pad + j] = T(0);
      for (int64_t e = 0; e < E; ++e) v_row[e] = T(0);
    }
    for (int64_t e = E; e < E_pad; ++e) v_row[e] = T(0);
  }
  if (n_real_keys == 0) return;  // nothing to attend to in this cluster: the merge would skip it
  small_gemm(w.q.data(), D, w.kt.data(), Ck_pad, w.scores.data(), Ck_pad, rows, Ck_pad, D);
  for (int64_t i = 0; i < n_q; ++i) {
    T* s = w.scores.data() + i * Ck_pad;
    T row_max = neg_inf;
    for (int64_t j = 0; j < Ck_pad; ++j) {
      s[j] += w.key_bias[j];
      row_max = s[j] > row_max ? s[j] : row_max;
    }
    // exp in its own loop (vectorisable); the float sum in another (a reduction is not, without
    // reassociation)
#pragma omp simd
    for (int64_t j = 0; j < Ck_pad; ++j) s[j] = exp_of(s[j] - row_max) * (w.key_bias[j] == T(0) ? T(1) : T(0));
    T row_sum = T(0);
    for (int64_t j = 0; j < Ck_pad; ++j) row_sum += s[j];
    const T inv_sum = T(1) / row_sum;
    for (int64_t j = 0; j < Ck_pad; ++j) s[j] *= inv_sum;
    w.row_lse[i] = row_max + std::log(row_sum);
  }
  for (int64_t i = n_q; i < rows; ++i)
    for (int64_t j = 0; j < Ck_pad; ++j) w.scores[i * Ck_pad + j] = T(0);
  small_gemm(w.scores.data(), Ck_pad, w.v.data(), E_pad, w.out.data(), E_pad, rows, E_pad, Ck_pad);
  // online merge with what earlier hashes gave each token
  for (int64_t i = 0; i < n_q; ++i) {
    const int64_t token = w.q_tokens[i];
    const T* o = w.out.data() + i * E_pad;
    const T cluster_lse_i = w.row_lse[i];
    T* out_row = out + token * E;
    const T old_lse = lse[token];
    if (old_lse == neg_inf) {
      for (int64_t e = 0; e < E; ++e) out_row[e] = o[e];
      lse[token] = cluster_lse_i;
      continue;
    }
    const T new_lse = old_lse > cluster_lse_i ? old_lse + std::log1p(std::exp(cluster_lse_i - old_lse))
                                              : cluster_lse_i + std::log1p(std::exp(old_lse - cluster_lse_i));
    const T keep_old = std::exp(old_lse - new_lse), take_new = std::exp(cluster_lse_i - new_lse);
    for (int64_t e = 0; e < E; ++e) out_row[e] = out_row[e] * keep_old + o[e] * take_new;
    lse[token] = new_lse;
  }
}

template <typename T>
inline __attribute__((always_inline)) void attend_range(const ClusterArgs& a, const T* q, const T* k, const T* v,
                                                        const bool* key_keep_RM, const int64_t* perm_q,
                                                        const int64_t* perm_k, int64_t n_hashes, int64_t h, int64_t L,
                                                        T* out, T* lse, int64_t begin, int64_t end) {
  Workspace<T> w(a.Cq, a.Ck, a.D, a.E);
  for (int64_t rc = begin; rc < end; ++rc) {
    const int64_t r = rc / L, c = rc % L;
    const int64_t* q_slots = perm_q + (r * n_hashes + h) * (L * a.Cq) + c * a.Cq;
    const int64_t* k_slots = perm_k + (r * n_hashes + h) * (L * a.Ck) + c * a.Ck;
    attend_cluster<T>(a, q + r * a.N * a.D, k + r * a.M * a.D, v + r * a.M * a.E,
                      key_keep_RM ? key_keep_RM + r * a.M : nullptr, q_slots, k_slots, out + r * a.N * a.E,
                      lse + r * a.N, w);
  }
}

// The functions compiled per instruction set hold the whole loop nest (a lambda would not be cloned).

SMYRF_TARGET_CLONES void attend_range_f32(const ClusterArgs& a, const float* q, const float* k, const float* v,
                                          const bool* keep, const int64_t* pq, const int64_t* pk, int64_t n_hashes,
                                          int64_t h, int64_t L, float* out, float* lse, int64_t begin, int64_t end) {
  attend_range<float>(a, q, k, v, keep, pq, pk, n_hashes, h, L, out, lse, begin, end);
}

SMYRF_TARGET_CLONES void attend_range_f64(const ClusterArgs& a, const double* q, const double* k, const double* v,
                                          const bool* keep, const int64_t* pq, const int64_t* pk, int64_t n_hashes,
                                          int64_t h, int64_t L, double* out, double* lse, int64_t begin, int64_t end) {
  attend_range<double>(a, q, k, v, keep, pq, pk, n_hashes, h, L, out, lse, begin, end);
}

}  // namespace clustered_detail

float fast_expf(float x) { return clustered_detail::exp_poly(x); }

void clustered_attention_forward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                     const at::Tensor& key_keep_RM, const at::Tensor& perm_q_RHN,
                                     const at::Tensor& perm_k_RHM, int64_t Cq, int64_t Ck, double scale,
                                     at::Tensor& out_RNE, at::Tensor& lse_RN) {
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
  const bool* keep = nullptr;
  if (key_keep_RM.defined()) {
    SMYRF_CHECK_SHAPE(key_keep_RM, "key_keep_RM", R, M);
    TORCH_CHECK(key_keep_RM.scalar_type() == at::kBool && key_keep_RM.is_contiguous(), "key_keep_RM: contiguous bool");
    keep = key_keep_RM.data_ptr<bool>();
  }
  const clustered_detail::ClusterArgs args{N, M, D, E, Cq, Ck, scale};
  out_RNE.zero_();
  lse_RN.fill_(-std::numeric_limits<double>::infinity());
  const int64_t* pq = perm_q_RHN.data_ptr<int64_t>();
  const int64_t* pk = perm_k_RHM.data_ptr<int64_t>();
  const bool is_float = q_RND.scalar_type() == at::kFloat;
  TORCH_CHECK(is_float || q_RND.scalar_type() == at::kDouble, "clustered_attention_forward_cpu: float32 or float64");
  for (int64_t h = 0; h < n_hashes; ++h) {
    // one hash at a time: within a hash each output row belongs to exactly one (row, cluster)
    at::parallel_for(0, R * L, 1, [&](int64_t begin, int64_t end) {
      if (is_float) {
        clustered_detail::attend_range_f32(args, q_RND.data_ptr<float>(), k_RMD.data_ptr<float>(),
                                           v_RME.data_ptr<float>(), keep, pq, pk, n_hashes, h, L,
                                           out_RNE.data_ptr<float>(), lse_RN.data_ptr<float>(), begin, end);
      } else {
        clustered_detail::attend_range_f64(args, q_RND.data_ptr<double>(), k_RMD.data_ptr<double>(),
                                           v_RME.data_ptr<double>(), keep, pq, pk, n_hashes, h, L,
                                           out_RNE.data_ptr<double>(), lse_RN.data_ptr<double>(), begin, end);
      }
    });
  }
}

}  // namespace smyrf
