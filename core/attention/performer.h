// performer (FAVOR+, Choromanski et al. 2021): softmax attention through positive random features,
//   exp(s q.k) ~ phi(q).phi(k),  phi(x) = exp(W x' - |x'|^2 / 2) / sqrt(m),  x' = sqrt(s) x,
// W [m, D] Gaussian rows, orthogonalised in blocks of D (QR) with chi(D)-distributed norms.
// out_i = phi(q_i) sum_j phi(k_j) v_j^T / phi(q_i) sum_j phi(k_j). Stabilisers that cancel in the
// ratio: each query's features are divided by exp(max_f (W q')_f), the keys' by one exp(max) per row.
// Causal: blocks of `block` positions: exact phi(q).phi(k) weights inside a diagonal block, an
// exclusive prefix sum of per-block summaries sum_j phi(k_j) [v_j, 1]^T across blocks (never the
// per-position prefix of size N x m x E).
// Options: {"method": "performer", "features": 256, "orthogonal": true, "block": 256}.
// Features are drawn from the passed generator on every call. No lse (the estimate has none).
// Padded keys get zero features. Rows whose keys are all padded come out as zeros.
// Causal caveat (as in the reference): the key stabiliser is one maximum over the row's keys, future
// ones included, so a key of much larger norm than the others can underflow earlier keys' features;
// with inputs of moderate norm it only rescales. Training memory: autograd keeps the features and
// block summaries; cost() counts the inference buffers.
// The estimate is unbiased per weight; its error shrinks like 1/sqrt(features), which the tests pin.
// Shapes: as attention_method.h; features [R, N, m], [R, M, m]; summaries [R, m, E+1].
// Tested by tests/attention/test_performer.cpp (error falls with features, causal == non-causal last row,
// causality, block-size independence, padding, gradients).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

struct PerformerOptions {
  int64_t features = 256;
  bool orthogonal = true;
  int64_t block = 256;
  static PerformerOptions from_json(JsonReader& reader);
};

class PerformerAttention : public AttentionMethod {
 public:
  explicit PerformerAttention(PerformerOptions options);
  std::string name() const override { return "performer"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;

  // The random projection W [features, D] (float64, CPU) drawn as forward() draws it.
  at::Tensor draw_projection(int64_t head_dim, at::Generator& generator) const;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  PerformerOptions options_;
};

// Shared by the feature-map methods (performer, polysketch): numerator and denominator of
// sum_j w_ij [v_j, 1] for weights w_ij = fq_i . fk_j, causal by blocks of `block` positions.
// fq_RNF [R, N, F], fk_RMF [R, M, F], v1_RME1 [R, M, E+1] (values with a ones column).
// Returns [R, N, E+1]. Causal needs N == M.
at::Tensor linear_attention_sums(const at::Tensor& fq_RNF, const at::Tensor& fk_RMF, const at::Tensor& v1_RME1,
                                 bool causal, int64_t block);

}  // namespace smyrf
