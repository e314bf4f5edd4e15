// performer (FAVOR+); see performer.h.
#include "core/attention/performer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {

PerformerOptions PerformerOptions::from_json(JsonReader& reader) {
  PerformerOptions o;
  reader.get("features", o.features).get("orthogonal", o.orthogonal).get("block", o.block);
  const std::string where = reader.source().empty() ? "config" : reader.source();
  if (o.features < 1)
    throw ConfigError(fmt::format("{}: '{}.features' must be >= 1, got {}", where, reader.path(), o.features));
  if (o.block < 1) throw ConfigError(fmt::format("{}: '{}.block' must be >= 1, got {}", where, reader.path(), o.block));
  return o;
}

PerformerAttention::PerformerAttention(PerformerOptions options) : options_(options) {
  SMYRF_CHECK(options_.features >= 1 && options_.block >= 1, "performer: features and block must be >= 1");
}

Capabilities PerformerAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  return caps;
}

std::vector<std::string> PerformerAttention::reported_knobs() const {
  return {"features"};
}

AttentionMethod::BudgetKnob PerformerAttention::budget_knob(const AttentionShape& shape) const {
  return {{"features", "block"}, 4 * shape.n_keys};
}

nlohmann::json PerformerAttention::options_json() const {
  return {{"method", name()}, {"features", options_.features}, {"orthogonal", options_.orthogonal},
          {"block", options_.block}};
}

AttentionCost PerformerAttention::cost(const AttentionShape& s) const {
  const int64_t R = s.batch * s.heads, e = s.element_bytes, F = options_.features;
  const int64_t N = s.n_queries, M = s.n_keys, E1 = s.value_dim + 1;
  const int64_t T = std::min(options_.block, N), n_blocks = s.causal ? ceil_div(N, T) : 1;
  // non-causal: one summary; causal: one per block plus the diagonal-block weights
  const int64_t feature_entries = R * (N + M) * F, summary_entries = R * n_blocks * F * E1;
  const int64_t block_weights = s.causal ? R * n_blocks * T * T : 0;
  AttentionCost cost;
  cost.score_entries = feature_entries + summary_entries + block_weights;
  cost.buffers = {{"projections", R * (N + M) * F * e},
                  {"features", R * (N + M) * F * e},
                  {"summaries", summary_entries * e},
                  {"block_weights", block_weights * e},
                  {"sums", R * N * E1 * e},
                  {"out", R * N * s.value_dim * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(cost.score_entries) / static_cast<double>(R * N * M);
  return cost;
}

at::Tensor PerformerAttention::draw_projection(int64_t D, at::Generator& generator) const {
  at::NoGradGuard no_grad;
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const int64_t F = options_.features;
  if (!options_.orthogonal) return at::normal(0, 1, {F, D}, generator, f64);
  std::vector<at::Tensor> blocks;
  for (int64_t done = 0; done < F; done += D) {
    const at::Tensor g = at::normal(0, 1, {D, D}, generator, f64);
    const at::Tensor q = std::get<0>(at::linalg_qr(g));  // orthonormal columns
    blocks.push_back(q.t().narrow(0, 0, std::min(D, F - done)));
  }
  // rows keep the norm distribution of Gaussian vectors (chi with D degrees of freedom)
  const at::Tensor norms = at::normal(0, 1, {F, D}, generator, f64).norm(2, -1, true);
  return at::cat(blocks, 0) * norms;
}

at::Tensor linear_attention_sums(const at::Tensor& fq_RNF, const at::Tensor& fk_RMF, const at::Tensor& v1_RME1,
                                 bool causal, int64_t block) {
  if (!causal) return at::matmul(fq_RNF, at::matmul(fk_RMF.transpose(-1, -2), v1_RME1));
  const int64_t R = fq_RNF.size(0), N = fq_RNF.size(1), F = fq_RNF.size(2), E1 = v1_RME1.size(2);
  const int64_t T = std::min(block, N), nT = ceil_div(N, T);
  const at::Tensor fq = pad_tokens(fq_RNF, nT * T).view({R, nT, T, F});
  const at::Tensor fk = pad_tokens(fk_RMF, nT * T).view({R, nT, T, F});  // padded keys: zero features
  const at::Tensor v1 = pad_tokens(v1_RME1, nT * T).view({R, nT, T, E1});
  const at::Tensor tril_TT = at::ones({T, T}, fq_RNF.options().dtype(at::kBool)).tril();
  const at::Tensor inside = at::matmul(at::matmul(fq, fk.transpose(-1, -2)).masked_fill(tril_TT.logical_not(), 0), v1);
  // exclusive prefix sum over blocks of sum_j fk_j v1_j^T, as a shifted cumsum: subtracting a
  // block's own sum from an inclusive one would lose the earlier blocks' mass (features are
  // exponentials, so block sums differ by orders of magnitude) and let a later key change it
  const at::Tensor summaries = at::matmul(fk.transpose(-1, -2), v1);  // [R, nT, F, E1]
  const at::Tensor before =
      at::cat({at::zeros_like(summaries.narrow(1, 0, 1)), summaries.narrow(1, 0, nT - 1)}, 1).cumsum(1);
  return (inside + at::matmul(fq, before)).reshape({R, nT * T, E1}).narrow(1, 0, N);
}

AttentionOutput PerformerAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H, F = options_.features;
  const at::Tensor w_FD = draw_projection(D, generator).to(in.q_BHND.options());
  const double root_scale = std::sqrt(in.scale);
  const at::Tensor q_RND = in.q_BHND.reshape({R, N, D}) * root_scale;
  const at::Tensor k_RMD = in.k_BHMD.reshape({R, M, D}) * root_scale;
  const at::Tensor k_keep_RM = row_keep(in.key_keep_BM, B, H, M, M, false, in.q_BHND.options());
  const double inv_sqrt_f = 1.0 / std::sqrt(static_cast<double>(F));
  const at::Tensor proj_q = at::matmul(q_RND, w_FD.t()) - 0.5 * q_RND.square().sum(-1, true);
  const at::Tensor proj_k = at::matmul(k_RMD, w_FD.t()) - 0.5 * k_RMD.square().sum(-1, true);
  // the shifts are constants of each ratio (per query; per row for keys), so they are detached
  const at::Tensor q_shift = proj_q.amax(-1, true).detach();
  const at::Tensor k_shift = proj_k.masked_fill(k_keep_RM.logical_not().unsqueeze(-1), -INFINITY)
                                 .amax({1, 2}, true).nan_to_num(0, 0, 0).detach();
  const at::Tensor fq = at::exp(proj_q - q_shift) * inv_sqrt_f;
  // padded keys: -inf before exp gives exact zeros (multiplying by the mask after exp could meet an
  // overflowed exp(0 - k_shift) and make inf * 0 = NaN)
  const at::Tensor fk =
      at::exp((proj_k - k_shift).masked_fill(k_keep_RM.logical_not().unsqueeze(-1), -INFINITY)) * inv_sqrt_f;
  const at::Tensor v1 = at::constant_pad_nd(in.v_BHME.reshape({R, M, E}), {0, 1}, 1.0);
  const at::Tensor sums = linear_attention_sums(fq, fk, v1, in.causal, options_.block);
  const at::Tensor den = sums.narrow(-1, E, 1);
  const at::Tensor has_weight = den.gt(0);
  const at::Tensor out = sums.narrow(-1, 0, E) / at::where(has_weight, den, at::ones({}, den.options()));
  AttentionOutput result;
  result.out_BHNE = at::where(has_weight, out, at::zeros({}, out.options())).reshape({B, H, N, E});
  result.cost = cost(s);
  result.aux["projection_FD"] = w_FD;
  return result;
}

}  // namespace smyrf
