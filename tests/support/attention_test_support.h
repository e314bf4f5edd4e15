// Shared helpers of the attention tests: seeded random inputs at odd sizes, NaN-filled padding,
// a naive float64 loop oracle, and the tolerance assertion that prints the worst element.
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <limits>

#include "core/attention/attention_method.h"
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

// keep_BL[b, l] = l < lengths[b]
inline at::Tensor keep_mask(const std::vector<int64_t>& lengths, int64_t L) {
  at::Tensor keep = at::zeros({static_cast<int64_t>(lengths.size()), L}, at::kBool);
  for (size_t b = 0; b < lengths.size(); ++b) keep[b].narrow(0, 0, lengths[b]).fill_(true);
  return keep;
}

// Writes NaN into every position the mask marks as padding (so any leak shows up).
inline at::Tensor nan_padded(const at::Tensor& x_BHLX, const at::Tensor& keep_BL) {
  const at::Tensor keep = keep_BL.view({x_BHLX.size(0), 1, x_BHLX.size(2), 1});
  return at::where(keep, x_BHLX, at::full({}, std::numeric_limits<double>::quiet_NaN(), x_BHLX.options()));
}

// The oracle of the oracle: a plain float64 loop, independent of any tensor op we wrote.
inline at::Tensor naive_attention_f64(const AttentionInputs& in) {
  const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1), N = in.q_BHND.size(2), D = in.q_BHND.size(3);
  const int64_t M = in.k_BHMD.size(2), E = in.v_BHME.size(3);
  const double scale = in.scale > 0 ? in.scale : 1.0 / std::sqrt(static_cast<double>(D));
  const at::Tensor q = in.q_BHND.to(at::kDouble).contiguous(), k = in.k_BHMD.to(at::kDouble).contiguous(),
                   v = in.v_BHME.to(at::kDouble).contiguous();
  at::Tensor out = at::zeros({B, H, N, E}, at::kDouble);
  auto qa = q.accessor<double, 4>(), ka = k.accessor<double, 4>(), va = v.accessor<double, 4>();
  auto oa = out.accessor<double, 4>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (in.query_keep_BN && !(*in.query_keep_BN)[b][i].item<bool>()) continue;
        std::vector<double> logit(M, -std::numeric_limits<double>::infinity());
        double mx = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < M; ++j) {
          if (in.key_keep_BM && !(*in.key_keep_BM)[b][j].item<bool>()) continue;
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

// Streams like EXPECT_*: EXPECT_CLOSE(a, b, atol, rtol) << "context"; prints the worst element.
#define EXPECT_CLOSE(actual, expected, atol, rtol)                                                   \
  switch (0)                                                                                         \
  case 0:                                                                                            \
  default:                                                                                           \
    if (const auto cmp_ = ::smyrf::compare_tensors((actual), (expected), (atol), (rtol)); cmp_.ok) { \
    } else                                                                                           \
      ADD_FAILURE() << cmp_.message() << " "

}  // namespace smyrf::test
