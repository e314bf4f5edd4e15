// dense: logits_BHNM = scale * q k^T, masked, softmax with lse, times v. See dense.h.
#include "core/attention/dense.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <limits>

#include "core/util/json_options.h"

namespace smyrf {

DenseOptions DenseOptions::from_json(JsonReader& reader) {
  DenseOptions options;
  reader.get("dropout", options.dropout);
  if (!(options.dropout >= 0.0 && options.dropout < 1.0))
    throw ConfigError(fmt::format("{}: '{}.dropout' must be in [0, 1), got {}", reader.source(),
                                  reader.path(), options.dropout));
  return options;
}

Capabilities DenseAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  caps.exact = true;
  caps.dropout = true;
  caps.lse = true;
  return caps;
}

nlohmann::json DenseAttention::options_json() const {
  return {{"method", name()}, {"dropout", options_.dropout}};
}

AttentionCost DenseAttention::cost(const AttentionShape& s) const { return dense_attention_cost(s); }

AttentionOutput DenseAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  const auto shape = shape_of(in);
  const int64_t B = shape.batch, N = shape.n_queries, M = shape.n_keys;
  // Scaling q (N x D) instead of the logits (N x M) saves one N x M buffer.
  at::Tensor logits_BHNM = at::matmul(in.q_BHND * in.scale, in.k_BHMD.transpose(-1, -2));
  std::optional<at::Tensor> keep;
  if (in.key_keep_BM) keep = in.key_keep_BM->view({B, 1, 1, M});
  if (in.causal) {
    const at::Tensor causal_11NM = at::ones({N, M}, in.q_BHND.options().dtype(at::kBool)).tril().view({1, 1, N, M});
    keep = keep ? at::logical_and(*keep, causal_11NM) : causal_11NM;
  }
  const bool needs_grad = at::GradMode::is_enabled() &&
                          (in.q_BHND.requires_grad() || in.k_BHMD.requires_grad() || in.v_BHME.requires_grad());
  if (needs_grad || (options_.dropout > 0 && in.training)) {
    const MaskedSoftmax softmax =
        masked_softmax_with_lse(logits_BHNM, keep ? *keep : at::ones({1, 1, 1, 1}, logits_BHNM.options().dtype(at::kBool)));
    const at::Tensor probs = attention_dropout(softmax.probs, options_.dropout, in.training, generator);
    return {at::matmul(probs, in.v_BHME), softmax.lse, cost(shape)};
  }
  // Inference: the one N x M buffer becomes the probabilities in place. Peak: one score matrix,
  // as a naive kernel has.
  const at::Tensor lse_BHN = softmax_in_place_with_lse(logits_BHNM, keep);
  return {at::matmul(logits_BHNM, in.v_BHME), lse_BHN, cost(shape)};
}

}  // namespace smyrf
