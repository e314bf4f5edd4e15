// The one interface every attention method implements.
//
// Shape legend: B batch, H heads, N queries, M keys, D query/key head dim, E value dim.
//   q_BHND, k_BHMD, v_BHME   inputs (float32 or float64, same dtype and device)
//   key_keep_BM              optional bool, true = real key; padded keys get zero weight
//   query_keep_BN            optional bool, true = real query; padded query rows come out as zeros
//   out_BHNE, lse_BHN        output and the log-sum-exp of each row's (scaled, masked) logits;
//                            lse = -inf and out = 0 for a row with no key to attend to
// Padded positions may hold anything, NaN included: methods zero them before use so nothing leaks.
// Randomness comes only from the Generator passed to forward(): same seed, same bits.
// Tested by tests/attention/test_method_contract.cpp (dense oracle, exactness limits, padding, determinism, gradients).
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "core/memory/analytic_cost.h"

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace smyrf {

struct AttentionInputs {
  at::Tensor q_BHND, k_BHMD, v_BHME;
  std::optional<at::Tensor> key_keep_BM;
  std::optional<at::Tensor> query_keep_BN;
  bool causal = false;   // query i sees keys j <= i (requires N == M)
  double scale = 0.0;    // logits = scale * q.k; 0 means 1/sqrt(D)
  bool training = false; // attention dropout only applies when true
  // Feature maps of q and k that a model learns, for methods whose capabilities().learned_features
  // is their size F (polysketch's sketch "learned"); [B, H, N, F] and [B, H, M, F].
  std::optional<at::Tensor> q_features_BHNF, k_features_BHMF;
};

struct AttentionOutput {
  at::Tensor out_BHNE;
  std::optional<at::Tensor> lse_BHN;
  AttentionCost cost;
  // The random draws a method made (projections, sketches), by name with a shape suffix, so that
  // independent implementations can check it on the same draws (`smyrf attend` writes them).
  std::map<std::string, at::Tensor> aux;
};

// What a method is asked to do, without the data: lets configs be validated before any tensor exists.
struct AttentionRequest {
  AttentionShape shape;
  bool causal = false;
  bool padded = false;
  int64_t learned_features = 0;  // the size of the feature maps the caller supplies (0 = none)
};
AttentionRequest request_of(const AttentionInputs& inputs);

struct Capabilities {
  bool causal = false;
  bool padding = true;
  bool autograd = true;
  bool deterministic_given_seed = true;
  bool exact = false;    // equals dense up to rounding for every input
  bool dropout = false;  // takes a `dropout` option: attention-probability dropout while training
  bool lse = false;      // forward() returns lse_BHN
  // > 0: the method reads q_features_BHNF and k_features_BHMF of this size, which the model learns
  // (core/models/decoder.h builds them); it serves no call without them.
  int64_t learned_features = 0;
};

class AttentionMethod {
 public:
  virtual ~AttentionMethod() = default;
  virtual std::string name() const = 0;
  virtual Capabilities capabilities() const = 0;
  // The resolved options, as they are logged with every run.
  virtual nlohmann::json options_json() const = 0;
  virtual AttentionCost cost(const AttentionShape& shape) const = 0;
  // The options that set this method's size and cost (smyrf: n_hashes, q_cluster_size): reports and
  // the results file's /summary show their values, taken from options_json(). Integer options only.
  virtual std::vector<std::string> reported_knobs() const { return {}; }
  // The options a memory_budget sets, all to one value (core/attention/memory_budget.h), and the
  // largest value worth trying at `shape`. No keys: the method has no size knob.
  struct BudgetKnob {
    std::vector<std::string> keys;
    int64_t largest = 0;
  };
  virtual BudgetKnob budget_knob(const AttentionShape& shape) const;
  // Why this method cannot serve `request` (empty when it can). The default checks causal and
  // padding support; methods add their own (cluster sizes vs sequence lengths, ...).
  virtual std::vector<std::string> unsupported_reasons(const AttentionRequest& request) const;
  // Validates inputs loudly (shapes, dtypes, finiteness of unpadded entries, capabilities) and
  // computes attention.
  AttentionOutput forward(const AttentionInputs& inputs, at::Generator& generator) const;
  // The exact function this method approximates when that is not softmax attention (polysketch:
  // polynomial attention), or nullptr. The fidelity pipeline reports the error against it too.
  virtual std::unique_ptr<AttentionMethod> approximation_target() const { return nullptr; }
  // Whether rel_fro_error should be measured against approximation_target() instead of dense.
  virtual bool reports_against_target() const { return false; }

 protected:
  // Called with validated inputs whose padded positions are zeroed and whose scale is resolved.
  virtual AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const = 0;
};

AttentionShape shape_of(const AttentionInputs& inputs);
double resolved_scale(const AttentionInputs& inputs);

// Shared numerics: masked softmax over the last dim of `logits` that is safe for rows with no
// unmasked entry (probabilities 0, lse -inf, finite gradients). `keep` broadcasts to logits.
struct MaskedSoftmax {
  at::Tensor probs;
  at::Tensor lse;  // logits.shape minus the last dim
};
MaskedSoftmax masked_softmax_with_lse(const at::Tensor& logits, const at::Tensor& keep);

// Inference only (no autograd through it): turns `logits` into probabilities in place, so a
// method's peak holds one score buffer; returns the lse. Same conventions for empty rows.
at::Tensor softmax_in_place_with_lse(at::Tensor& logits, const std::optional<at::Tensor>& keep);

// softmax(logits, keep) @ v with the lse: through masked_softmax_with_lse when autograd needs it,
// else in place (one score buffer). logits [..., N, K] (consumed), keep broadcasts to it, v [..., K, E].
struct PartialAttention;
PartialAttention attend_with_lse(at::Tensor logits, const at::Tensor& keep, const at::Tensor& v);

// Attention over two key sets, each as (out, lse) of its own softmax, combined into attention over
// their union by a stable log-add-exp (FlashAttention's tile merge). Rows where a part has no key
// (lse -inf) take the other part; rows where neither has one get out 0, lse -inf.
// out_*: [..., N, E], lse_*: [..., N]. Differentiable.
struct PartialAttention {
  at::Tensor out, lse;
};
PartialAttention merge_partial_attention(const PartialAttention& a, const PartialAttention& b);

// Inverted dropout on probabilities with the method's generator (no-op when p == 0 or !training).
at::Tensor attention_dropout(const at::Tensor& probs, double p, bool training, at::Generator& generator);

}  // namespace smyrf
