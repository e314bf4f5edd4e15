// Shared helpers of the attention tests (tests/attention/): seeded random inputs at odd sizes,
// NaN-filled padding, the naive float64 loop oracles of softmax and polynomial attention, methods
// built from their JSON options, and the tolerance assertion that prints the worst element.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <vector>

#include "core/attention/attention_method.h"
#include "core/attention/registry.h"
#include "core/util/tensor_compare.h"

namespace smyrf::test {

inline at::Generator make_generator(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

inline AttentionInputs random_inputs(int64_t B, int64_t H, int64_t N, int64_t M, int64_t D, int64_t E,
                                     at::ScalarType dtype, uint64_t seed, double q_scale = 1.0) {
  auto gen = make_generator(seed);
  const auto opts = at::TensorOptions().dtype(dtype);
  AttentionInputs in;
  in.q_BHND = at::normal(0.0, q_scale, {B, H, N, D}, gen, opts);
  in.k_BHMD = at::normal(0.0, 1.0, {B, H, M, D}, gen, opts);
  in.v_BHME = at::normal(0.0, 1.0, {B, H, M, E}, gen, opts);
  return in;
}

// keep_BT[b, l] = l < lengths[b]
inline at::Tensor keep_mask(const std::vector<int64_t>& lengths, int64_t T) {
  at::Tensor keep = at::zeros({static_cast<int64_t>(lengths.size()), T}, at::kBool);
  for (size_t b = 0; b < lengths.size(); ++b) keep[b].narrow(0, 0, lengths[b]).fill_(true);
  return keep;
}

// Writes NaN into every position the mask marks as padding (so any leak shows up).
inline at::Tensor nan_padded(const at::Tensor& x_BHTX, const at::Tensor& keep_BT) {
  const at::Tensor keep = keep_BT.view({x_BHTX.size(0), 1, x_BHTX.size(2), 1});
  return at::where(keep, x_BHTX, at::full({}, std::numeric_limits<double>::quiet_NaN(), x_BHTX.options()));
}

// The oracle of the oracle: a plain float64 loop, independent of any tensor op we wrote.
// What both loop oracles read: float64 contiguous q, k, v (NaN read as 0 where asked), the masks as
// plain bools (absent: every position is real) read without a tensor op per pair, and the scale.
struct LoopOracleInputs {
  int64_t B, H, N, M, D, E;
  double scale;
  at::Tensor q, k, v, q_keep, k_keep;
  LoopOracleInputs(const AttentionInputs& in, bool nan_as_zero)
      : B(in.q_BHND.size(0)), H(in.q_BHND.size(1)), N(in.q_BHND.size(2)), M(in.k_BHMD.size(2)),
        D(in.q_BHND.size(3)), E(in.v_BHME.size(3)),
        scale(in.scale > 0 ? in.scale : 1.0 / std::sqrt(static_cast<double>(in.q_BHND.size(3)))) {
    const auto f64 = [&](const at::Tensor& x) {
      const at::Tensor d = x.to(at::kDouble);
      return (nan_as_zero ? d.nan_to_num(0) : d).contiguous();
    };
    q = f64(in.q_BHND);
    k = f64(in.k_BHMD);
    v = f64(in.v_BHME);
    q_keep = in.query_keep_BN ? in.query_keep_BN->to(at::kBool).contiguous() : at::ones({B, N}, at::kBool);
    k_keep = in.key_keep_BM ? in.key_keep_BM->to(at::kBool).contiguous() : at::ones({B, M}, at::kBool);
  }
};

inline at::Tensor naive_attention_f64(const AttentionInputs& in) {
  const LoopOracleInputs x(in, /*nan_as_zero=*/false);
  const int64_t B = x.B, H = x.H, N = x.N, M = x.M, D = x.D, E = x.E;
  const double scale = x.scale;
  at::Tensor out = at::zeros({B, H, N, E}, at::kDouble);
  auto qa = x.q.accessor<double, 4>(), ka = x.k.accessor<double, 4>(), va = x.v.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  auto qk = x.q_keep.accessor<bool, 2>(), kk = x.k_keep.accessor<bool, 2>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (!qk[b][i]) continue;
        std::vector<double> logit(M, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < M; ++j) {
          if (!kk[b][j]) continue;
          if (in.causal && j > i) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][h][j][d];
          logit[j] = dot * scale;
          mx = std::max(mx, logit[j]);
        }
        if (!std::isfinite(mx)) continue;
        double z = 0;
        for (int64_t j = 0; j < M; ++j) z += std::isfinite(logit[j]) ? std::exp(logit[j] - mx) : 0.0;
        for (int64_t j = 0; j < M; ++j) {
          if (!std::isfinite(logit[j])) continue;
          const double p = std::exp(logit[j] - mx) / z;
          for (int64_t e = 0; e < E; ++e) oa[b][h][i][e] += p * va[b][h][j][e];
        }
      }
  return out;
}

inline AttentionOutput run(const AttentionMethod& method, const AttentionInputs& in, uint64_t seed) {
  auto gen = make_generator(seed);
  return method.forward(in, gen);
}

// o_i = sum_j w_ij v_j / (1 + sum_j w_ij), w_ij = (s q_i.k_j)^p over kept (and causal) keys: the
// oracle of polynomial attention (and of polysketch at its exact-sketch limit), a plain loop.
// Padded positions may hold NaN (read as 0; padded keys are skipped, padded query rows stay 0).
inline at::Tensor naive_polynomial_f64(const AttentionInputs& in, int64_t p) {
  const LoopOracleInputs x(in, /*nan_as_zero=*/true);
  const int64_t B = x.B, H = x.H, N = x.N, M = x.M, D = x.D, E = x.E;
  const double s = x.scale;
  at::Tensor out = at::zeros({B, H, N, E}, at::kDouble);
  auto qa = x.q.accessor<double, 4>(), ka = x.k.accessor<double, 4>(), va = x.v.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  auto qk = x.q_keep.accessor<bool, 2>(), kk = x.k_keep.accessor<bool, 2>();
  std::vector<double> num(static_cast<size_t>(E));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (!qk[b][i]) continue;
        std::fill(num.begin(), num.end(), 0.0);
        double den = 1.0;
        for (int64_t j = 0; j < M; ++j) {
          if (!kk[b][j] || (in.causal && j > i)) continue;
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][h][j][d];
          const double w = std::pow(s * dot, static_cast<double>(p));
          for (int64_t e = 0; e < E; ++e) num[static_cast<size_t>(e)] += w * va[b][h][j][e];
          den += w;
        }
        for (int64_t e = 0; e < E; ++e) oa[b][h][i][e] = num[static_cast<size_t>(e)] / den;
      }
  return out;
}

inline std::unique_ptr<AttentionMethod> method_of(const nlohmann::json& options) { return make_attention(options); }

// B = 2 (heads H, D = 8, E = 5, float64) with the tail of batch row 1 padded: its last M/4 keys,
// and its last N/4 queries when N == M; NaN is written into every padded position.
inline AttentionInputs padded_inputs(int64_t N, int64_t M, bool causal, uint64_t seed, double q_scale = 1.0,
                                     int64_t heads = 3) {
  AttentionInputs in = random_inputs(2, heads, N, M, 8, 5, at::kDouble, seed, q_scale);
  in.causal = causal;
  in.key_keep_BM = keep_mask({M, M - M / 4}, M);
  in.k_BHMD = nan_padded(in.k_BHMD, *in.key_keep_BM);
  in.v_BHME = nan_padded(in.v_BHME, *in.key_keep_BM);
  if (N == M) {
    in.query_keep_BN = in.key_keep_BM;
    in.q_BHND = nan_padded(in.q_BHND, *in.query_keep_BN);
  }
  return in;
}

// ||approx - exact|| / ||exact|| (Frobenius), in float64.
inline double relative_error(const at::Tensor& approx, const at::Tensor& exact) {
  return (approx.to(at::kDouble) - exact).norm().item<double>() / exact.norm().item<double>();
}

// Streams like EXPECT_*: EXPECT_CLOSE(a, b, atol, rtol) << "context"; prints the worst element.
#define EXPECT_CLOSE(actual, expected, atol, rtol)                                                   \
  switch (0)                                                                                         \
  case 0:                                                                                            \
  default:                                                                                           \
    if (const auto cmp_ = ::smyrf::compare_tensors((actual), (expected), (atol), (rtol)); cmp_.ok) { \
    } else                                                                                           \
      ADD_FAILURE() << cmp_.message() << " "

// Central finite differences of a weighted sum of the output against autograd, in float64, on
// [1, 2, 24, 4] inputs (keys 19..23 padded when `padded`).
inline void check_gradients_by_finite_differences(const AttentionMethod& method, bool padded, bool causal = false,
                                                  double atol = 1e-7, double rtol = 1e-6) {
  AttentionInputs in = random_inputs(1, 2, 24, 24, 4, 3, at::kDouble, 11);
  in.causal = causal;
  if (padded) in.key_keep_BM = keep_mask({19}, 24);
  const at::Tensor weight = at::randn({1, 2, 24, 3}, make_generator(12), at::kDouble);
  auto loss_of = [&](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
    AttentionInputs x = in;
    x.q_BHND = q;
    x.k_BHMD = k;
    x.v_BHME = v;
    return (run(method, x, 13).out_BHNE * weight).sum();  // same seed: same clusters every call
  };
  std::vector<at::Tensor> params = {in.q_BHND.clone().requires_grad_(), in.k_BHMD.clone().requires_grad_(),
                                    in.v_BHME.clone().requires_grad_()};
  loss_of(params[0], params[1], params[2]).backward();
  const double eps = 1e-6;
  for (size_t p = 0; p < params.size(); ++p) {
    const at::Tensor analytic = params[p].grad();
    at::Tensor numeric = at::zeros_like(analytic);
    at::NoGradGuard no_grad;
    for (int64_t idx = 0; idx < numeric.numel(); ++idx) {
      std::vector<at::Tensor> plus = {params[0].detach().clone(), params[1].detach().clone(),
                                      params[2].detach().clone()};
      std::vector<at::Tensor> minus = {plus[0].clone(), plus[1].clone(), plus[2].clone()};
      plus[p].view({-1})[idx] += eps;
      minus[p].view({-1})[idx] -= eps;
      numeric.view({-1})[idx] = (loss_of(plus[0], plus[1], plus[2]) - loss_of(minus[0], minus[1], minus[2])) / (2 * eps);
    }
    EXPECT_CLOSE(analytic, numeric, atol, rtol) << method.name() << " gradient of input " << p;
  }
}

}  // namespace smyrf::test
