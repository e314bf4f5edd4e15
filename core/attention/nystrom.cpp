// nystrom attention; see nystrom.h.
#include "core/attention/nystrom.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {
namespace {

struct Landmarks {
  at::Tensor x_RmD;     // segment means of the kept tokens
  at::Tensor keep_Rm;   // false where the segment has no kept token
};

Landmarks segment_means(const at::Tensor& x_RTD, const at::Tensor& keep_RT, int64_t m) {
  const int64_t R = x_RTD.size(0), L = x_RTD.size(1), D = x_RTD.size(2);
  const auto long_opts = x_RTD.options().dtype(at::kLong);
  const at::Tensor segment_T = cluster_of_rank(at::arange(L, long_opts), L, m);
  const at::Tensor keep = keep_RT.to(x_RTD.scalar_type());
  const at::Tensor sums = at::zeros({R, m, D}, x_RTD.options()).index_add(1, segment_T, x_RTD * keep.unsqueeze(-1));
  const at::Tensor counts = at::zeros({R, m}, x_RTD.options()).index_add(1, segment_T, keep);
  return {sums / counts.clamp_min(1).unsqueeze(-1), counts.gt(0)};
}

}  // namespace

NystromOptions NystromOptions::from_json(JsonReader& reader) {
  NystromOptions o;
  reader.get("landmarks", o.landmarks).get("pinv_iterations", o.pinv_iterations);
  const std::string where = reader.source().empty() ? "config" : reader.source();
  if (o.landmarks < 1)
    throw ConfigError(fmt::format("{}: '{}.landmarks' must be >= 1, got {}", where, reader.path(), o.landmarks));
  if (o.pinv_iterations < 0)
    throw ConfigError(fmt::format("{}: '{}.pinv_iterations' must be >= 0 (0 = exact pseudo-inverse), got {}", where,
                                  reader.path(), o.pinv_iterations));
  return o;
}

NystromAttention::NystromAttention(NystromOptions options) : options_(options) {
  SMYRF_CHECK(options_.landmarks >= 1 && options_.pinv_iterations >= 0,
              "nystrom: landmarks must be >= 1 and pinv_iterations >= 0");
}

Capabilities NystromAttention::capabilities() const {
  Capabilities caps;
  caps.causal = false;
  return caps;
}

std::vector<std::string> NystromAttention::reported_knobs() const {
  return {"landmarks"};
}

AttentionMethod::BudgetKnob NystromAttention::budget_knob(const AttentionShape& shape) const {
  return {{"landmarks"}, std::min(shape.n_queries, shape.n_keys)};
}

nlohmann::json NystromAttention::options_json() const {
  return {{"method", name()}, {"landmarks", options_.landmarks}, {"pinv_iterations", options_.pinv_iterations}};
}

std::vector<std::string> NystromAttention::unsupported_reasons(const AttentionRequest& request) const {
  auto reasons = AttentionMethod::unsupported_reasons(request);
  const int64_t limit = std::min(request.shape.n_queries, request.shape.n_keys);
  if (options_.landmarks > limit)
    reasons.push_back(fmt::format("landmarks {} exceed min(N, M) = {} (use at most {})", options_.landmarks, limit, limit));
  return reasons;
}

AttentionCost NystromAttention::cost(const AttentionShape& s) const {
  const int64_t R = s.batch * s.heads, e = s.element_bytes, m = options_.landmarks;
  const int64_t N = s.n_queries, M = s.n_keys;
  const int64_t entries = R * (N * m + m * m + m * M);
  AttentionCost cost;
  cost.score_entries = entries;
  cost.buffers = {{"landmarks", R * 2 * m * s.head_dim * e},
                  {"kernel_1_logits_probs", 2 * R * N * m * e},
                  {"kernel_2_logits_probs", 2 * R * m * m * e},
                  {"kernel_3_logits_probs", 2 * R * m * M * e},
                  {"pinv_work", 4 * R * m * m * e},
                  {"kernel_3_v", R * m * s.value_dim * e},
                  {"out", R * N * s.value_dim * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(entries) / static_cast<double>(R * N * M);
  return cost;
}

at::Tensor newton_schulz_pinv(const at::Tensor& k_RLL, int64_t iterations) {
  const int64_t m = k_RLL.size(-1);
  const at::Tensor abs_k = k_RLL.abs();
  const at::Tensor max_col = abs_k.sum(-2).amax(-1, true).unsqueeze(-1);  // [R, 1, 1]
  const at::Tensor max_row = abs_k.sum(-1).amax(-1, true).unsqueeze(-1);
  // a row whose kernel is all zeros (every landmark masked) keeps Z = 0 instead of 0/0
  const at::Tensor denominator = max_col * max_row;
  at::Tensor z = k_RLL.transpose(-1, -2) / at::where(denominator.gt(0), denominator, at::ones({}, denominator.options()));
  const at::Tensor eye = at::eye(m, k_RLL.options());
  for (int64_t i = 0; i < iterations; ++i) {
    const at::Tensor kz = at::matmul(k_RLL, z);
    z = 0.25 * at::matmul(z, 13 * eye - at::matmul(kz, 15 * eye - at::matmul(kz, 7 * eye - kz)));
  }
  return z;
}

AttentionOutput NystromAttention::forward_impl(const AttentionInputs& in, at::Generator& /*generator*/) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H, m = options_.landmarks;
  const auto opts = in.q_BHND.options();
  const at::Tensor q_RND = in.q_BHND.reshape({R, N, D}), k_RMD = in.k_BHMD.reshape({R, M, D});
  const at::Tensor q_keep_RN = row_keep(in.query_keep_BN, B, H, N, N, false, opts);
  const at::Tensor k_keep_RM = row_keep(in.key_keep_BM, B, H, M, M, false, opts);
  const Landmarks ql = segment_means(q_RND, q_keep_RN, m), kl = segment_means(k_RMD, k_keep_RM, m);
  const auto softmax = [](const at::Tensor& logits, const at::Tensor& keep) {
    return masked_softmax_with_lse(logits, keep).probs;  // empty rows come out as zeros
  };
  const at::Tensor k1_RNm = softmax(at::matmul(q_RND * in.scale, kl.x_RmD.transpose(-1, -2)), kl.keep_Rm.unsqueeze(1));
  // rows of landmarks without a real token are zero: they must not steer the pseudo-inverse
  const at::Tensor q_land_keep = ql.keep_Rm.unsqueeze(-1);
  const at::Tensor k2_Rmm =
      softmax(at::matmul(ql.x_RmD * in.scale, kl.x_RmD.transpose(-1, -2)), kl.keep_Rm.unsqueeze(1).logical_and(q_land_keep));
  const at::Tensor k3_RmM = softmax(at::matmul(ql.x_RmD * in.scale, k_RMD.transpose(-1, -2)),
                                    k_keep_RM.unsqueeze(1).logical_and(q_land_keep));
  const at::Tensor pinv_Rmm =
      options_.pinv_iterations == 0 ? at::linalg_pinv(k2_Rmm) : newton_schulz_pinv(k2_Rmm, options_.pinv_iterations);
  const at::Tensor out_RNE = at::matmul(k1_RNm, at::matmul(pinv_Rmm, at::matmul(k3_RmM, in.v_BHME.reshape({R, M, E}))));
  AttentionOutput result;
  result.out_BHNE = out_RNE.reshape({B, H, N, E});
  result.cost = cost(s);
  return result;
}

}  // namespace smyrf
