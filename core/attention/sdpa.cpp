// sdpa; see sdpa.h.
#include "core/attention/sdpa.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "core/util/check.h"

namespace smyrf {

Capabilities SdpaAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  caps.exact = true;
  return caps;
}

AttentionCost SdpaAttention::cost(const AttentionShape& s) const {
  // every score is computed, but in tiles: the buffers are the output and per-row statistics
  const int64_t R = s.batch * s.heads, e = s.element_bytes;
  AttentionCost cost;
  cost.score_entries = R * s.n_queries * s.n_keys;
  cost.buffers = {{"out", R * s.n_queries * s.value_dim * e},
                  {"row_stats", 2 * R * s.n_queries * e},
                  {"mask_if_padded_and_causal", s.batch * s.n_queries * s.n_keys}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = 1.0;
  return cost;
}

AttentionOutput SdpaAttention::forward_impl(const AttentionInputs& in, at::Generator& /*generator*/) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, N = s.n_queries, M = s.n_keys;
  AttentionOutput result;
  result.cost = cost(s);
  if (!in.key_keep_BM) {
    result.out_BHNE = at::scaled_dot_product_attention(in.q_BHND, in.k_BHMD, in.v_BHME, std::nullopt, 0.0, in.causal,
                                                      in.scale);
    return result;
  }
  at::Tensor keep_B1NM = in.key_keep_BM->view({B, 1, 1, M});
  if (in.causal) keep_B1NM = keep_B1NM.logical_and(at::ones({N, M}, keep_B1NM.options()).tril().view({1, 1, N, M}));
  const at::Tensor has_key = keep_B1NM.any(-1, true);  // [B, 1, 1 or N, 1]
  // a row with no key gets an all-true mask row (some library versions give NaN, and NaN
  // gradients, for fully masked rows) and is zeroed afterwards
  keep_B1NM = keep_B1NM.logical_or(has_key.logical_not());
  at::Tensor out = at::scaled_dot_product_attention(in.q_BHND, in.k_BHMD, in.v_BHME, keep_B1NM, 0.0, false, in.scale);
  result.out_BHNE = at::where(has_key, out, at::zeros({}, out.options()));
  return result;
}

}  // namespace smyrf
