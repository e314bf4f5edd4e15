// polysketch and exact polynomial attention; see polysketch.h.
#include "core/attention/polysketch.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {
namespace {

const EnumNames<PolysketchSketch> kSketchNames = {
    {"gaussian", PolysketchSketch::kGaussian}, {"exact", PolysketchSketch::kExact}, {"learned", PolysketchSketch::kLearned}};
const EnumNames<PolysketchTarget> kTargetNames = {{"softmax", PolysketchTarget::kSoftmax}, {"polynomial", PolysketchTarget::kPolynomial}};

std::string where_of(const JsonReader& reader) { return reader.source().empty() ? "config" : reader.source(); }

at::Tensor keep_as_float(const std::optional<at::Tensor>& keep_BM, int64_t B, int64_t H, int64_t M,
                         const at::TensorOptions& opts) {
  return row_keep(keep_BM, B, H, M, M, false, opts).to(opts.dtype());
}

// [R, T, F] -> [R, T, F*F]: the self-tensor, whose inner products are squares: <a(x)a, b(x)b> = <a,b>^2
at::Tensor self_tensor(const at::Tensor& f_RTF) { return (f_RTF.unsqueeze(-1) * f_RTF.unsqueeze(-2)).flatten(-2); }

}  // namespace

PolynomialOptions PolynomialOptions::from_json(JsonReader& reader) {
  PolynomialOptions o;
  reader.get("degree", o.degree);
  if (o.degree < 2 || o.degree % 2 != 0)
    throw ConfigError(fmt::format("{}: '{}.degree' must be an even integer >= 2 (weights (q.k)^p must be >= 0), got {}",
                                  where_of(reader), reader.path(), o.degree));
  return o;
}

PolynomialAttention::PolynomialAttention(PolynomialOptions options) : options_(options) {
  SMYRF_CHECK(options_.degree >= 2 && options_.degree % 2 == 0, "polynomial: degree must be even and >= 2, got {}",
              options_.degree);
}

Capabilities PolynomialAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  return caps;
}

nlohmann::json PolynomialAttention::options_json() const { return {{"method", name()}, {"degree", options_.degree}}; }

AttentionCost PolynomialAttention::cost(const AttentionShape& s) const {
  AttentionCost cost = dense_attention_cost(s);
  cost.buffers.pop_back();  // no lse
  cost.analytic_bytes = 0;
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  return cost;
}

AttentionOutput PolynomialAttention::forward_impl(const AttentionInputs& in, at::Generator& /*generator*/) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, N = s.n_queries, M = s.n_keys;
  at::Tensor w_BHNM = at::matmul(in.q_BHND * in.scale, in.k_BHMD.transpose(-1, -2)).pow(options_.degree);
  at::Tensor keep = at::ones({1, 1, 1, M}, in.q_BHND.options().dtype(at::kBool));
  if (in.key_keep_BM) keep = in.key_keep_BM->view({B, 1, 1, M});
  if (in.causal) keep = keep.logical_and(at::ones({N, M}, keep.options()).tril().view({1, 1, N, M}));
  w_BHNM = w_BHNM.masked_fill(keep.logical_not(), 0);
  AttentionOutput result;
  result.out_BHNE = at::matmul(w_BHNM, in.v_BHME) / (1 + w_BHNM.sum(-1, true));
  result.cost = cost(s);
  return result;
}

PolysketchOptions PolysketchOptions::from_json(JsonReader& reader) {
  PolysketchOptions o;
  int64_t degree = 4;
  reader.get("sketch_size", o.sketch_size).get("block", o.block).get("local_exact", o.local_exact);
  reader.get_enum("sketch", o.sketch, kSketchNames).get_enum("target", o.target, kTargetNames);
  reader.get("degree", degree);
  if (degree != 4)
    throw ConfigError(fmt::format("{}: '{}.degree' is {}, but the squared degree-2 sketch approximates degree 4 only; "
                                  "use {{\"method\": \"polynomial\", \"degree\": {}}} for exact attention of that degree",
                                  where_of(reader), reader.path(), degree, degree));
  if (o.sketch_size < 1)
    throw ConfigError(fmt::format("{}: '{}.sketch_size' must be >= 1, got {}", where_of(reader), reader.path(), o.sketch_size));
  if (o.block < 1) throw ConfigError(fmt::format("{}: '{}.block' must be >= 1, got {}", where_of(reader), reader.path(), o.block));
  return o;
}

PolysketchAttention::PolysketchAttention(PolysketchOptions options) : options_(std::move(options)) {
  SMYRF_CHECK(options_.sketch_size >= 1 && options_.block >= 1, "polysketch: sketch_size and block must be >= 1");
}

Capabilities PolysketchAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  if (options_.sketch == PolysketchSketch::kLearned) caps.learned_features = options_.sketch_size;
  return caps;
}

std::vector<std::string> PolysketchAttention::reported_knobs() const {
  return {"sketch_size"};
}

AttentionMethod::BudgetKnob PolysketchAttention::budget_knob(const AttentionShape& shape) const {
  return {{"sketch_size", "block"}, std::max<int64_t>(shape.head_dim * shape.head_dim, 64)};
}

nlohmann::json PolysketchAttention::options_json() const {
  return {{"method", name()},          {"sketch_size", options_.sketch_size}, {"block", options_.block},
          {"local_exact", options_.local_exact}, {"sketch", enum_name(options_.sketch, kSketchNames)},     {"target", enum_name(options_.target, kTargetNames)},
          {"degree", 4}};
}

std::unique_ptr<AttentionMethod> PolysketchAttention::approximation_target() const {
  return std::make_unique<PolynomialAttention>(PolynomialOptions{4});
}

std::vector<std::string> PolysketchAttention::unsupported_reasons(const AttentionRequest& request) const {
  auto reasons = AttentionMethod::unsupported_reasons(request);
  if (options_.local_exact && request.shape.n_queries != request.shape.n_keys)
    reasons.push_back(fmt::format("local_exact needs diagonal blocks, so N == M; got N={} M={}",
                                  request.shape.n_queries, request.shape.n_keys));
  if (options_.sketch == PolysketchSketch::kExact && request.shape.head_dim > 16)
    reasons.push_back(fmt::format("sketch 'exact' has D^2 = {} features per token and summaries of D^4 = {} entries "
                                  "each; it is the exactness check for small heads (D <= 16), use sketch 'gaussian'",
                                  request.shape.head_dim * request.shape.head_dim,
                                  static_cast<int64_t>(std::pow(request.shape.head_dim, 4))));
  return reasons;
}

int64_t PolysketchAttention::feature_dim(int64_t D) const {
  return options_.sketch == PolysketchSketch::kExact ? D * D : options_.sketch_size;
}

AttentionCost PolysketchAttention::cost(const AttentionShape& s) const {
  const int64_t R = s.batch * s.heads, e = s.element_bytes, N = s.n_queries, M = s.n_keys, E1 = s.value_dim + 1;
  const int64_t F = feature_dim(s.head_dim), F2 = F * F;
  const int64_t T = std::min(options_.block, std::max(N, M)), nT = ceil_div(N, T);
  const int64_t features = R * (N + M) * F, block_features = R * 2 * T * F2, summaries = R * 2 * F2 * E1;
  const int64_t block_weights = s.causal || options_.local_exact ? R * nT * T * T : 0;
  AttentionCost cost;
  cost.score_entries = features + block_features + summaries + block_weights;
  cost.buffers = {{"sketches", 2 * s.head_dim * F * e},
                  {"features", features * e},
                  {"block_self_tensors", block_features * e},
                  {"summaries", summaries * e},
                  {"block_weights", block_weights * e},
                  {"sums", R * N * E1 * e},
                  {"out", R * N * s.value_dim * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(cost.score_entries) / static_cast<double>(R * N * M);
  return cost;
}

std::pair<at::Tensor, at::Tensor> PolysketchAttention::feature_maps(const AttentionInputs& in, const at::Tensor& q_RND,
                                                                    const at::Tensor& k_RMD, at::Generator& generator,
                                                                    AttentionOutput& result) const {
  if (options_.sketch == PolysketchSketch::kExact) return {self_tensor(q_RND), self_tensor(k_RMD)};
  const int64_t R = q_RND.size(0), N = q_RND.size(1), M = k_RMD.size(1), D = q_RND.size(2);
  if (options_.sketch == PolysketchSketch::kLearned) {
    const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1);
    return {in.q_features_BHNF->reshape({R, N, -1}),
            in.k_features_BHMF->reshape({R, M, -1}) * keep_as_float(in.key_keep_BM, B, H, M, q_RND.options()).unsqueeze(-1)};
  }
  at::Tensor s1_DF, s2_DF;
  {
    at::NoGradGuard no_grad;
    const auto f64 = at::TensorOptions().dtype(at::kDouble);
    s1_DF = at::normal(0, 1, {D, options_.sketch_size}, generator, f64);
    s2_DF = at::normal(0, 1, {D, options_.sketch_size}, generator, f64);
  }
  result.aux["sketch_1_DF"] = s1_DF;
  result.aux["sketch_2_DF"] = s2_DF;
  s1_DF = s1_DF.to(q_RND.options());
  s2_DF = s2_DF.to(q_RND.options());
  const double inv_sqrt_r = 1.0 / std::sqrt(static_cast<double>(options_.sketch_size));
  return {at::matmul(q_RND, s1_DF) * at::matmul(q_RND, s2_DF) * inv_sqrt_r,
          at::matmul(k_RMD, s1_DF) * at::matmul(k_RMD, s2_DF) * inv_sqrt_r};
}

AttentionOutput PolysketchAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H;
  const auto opts = in.q_BHND.options();
  const double root_scale = std::sqrt(in.scale);
  const at::Tensor q_RND = in.q_BHND.reshape({R, N, D}) * root_scale;
  const at::Tensor k_RMD = in.k_BHMD.reshape({R, M, D}) * root_scale * keep_as_float(in.key_keep_BM, B, H, M, opts).unsqueeze(-1);
  AttentionOutput result;
  const auto [fq_RNF, fk_RMF] = feature_maps(in, q_RND, k_RMD, generator, result);
  const at::Tensor v1_RME1 = at::constant_pad_nd(in.v_BHME.reshape({R, M, E}), {0, 1}, 1.0);
  const int64_t T = std::min(options_.block, std::max(N, M));
  const int64_t nTq = ceil_div(N, T), nTk = ceil_div(M, T);
  const at::Tensor fq = pad_tokens(fq_RNF, nTq * T), fk = pad_tokens(fk_RMF, nTk * T);  // zero features: weight 0
  const at::Tensor v1 = pad_tokens(v1_RME1, nTk * T);
  const at::Tensor qx = pad_tokens(q_RND, nTq * T), kx = pad_tokens(k_RMD, nTk * T);
  const auto block_of = [&](const at::Tensor& x, int64_t b) { return x.narrow(1, b * T, T); };
  const auto summary = [&](int64_t b) { return at::matmul(self_tensor(block_of(fk, b)).transpose(-1, -2), block_of(v1, b)); };
  const bool diagonal_blocks = in.causal || options_.local_exact;
  const at::Tensor tril_TT = at::ones({T, T}, opts.dtype(at::kBool)).tril();
  // weights inside diagonal block b: the sketched <phi_i, phi_j>^2 or, with local_exact, (q'.k')^4
  const auto block_weights = [&](int64_t b) {
    at::Tensor w = options_.local_exact ? at::matmul(block_of(qx, b), block_of(kx, b).transpose(-1, -2)).pow(4)
                                        : at::matmul(block_of(fq, b), block_of(fk, b).transpose(-1, -2)).square();
    return in.causal ? w.masked_fill(tril_TT.logical_not(), 0) : w;
  };

  std::vector<at::Tensor> sums;
  if (in.causal) {
    at::Tensor before;  // sum of the summaries of the blocks before b: [R, F^2, E+1]
    for (int64_t b = 0; b < nTq; ++b) {
      at::Tensor part = at::matmul(block_weights(b), block_of(v1, b));
      if (before.defined()) part = part + at::matmul(self_tensor(block_of(fq, b)), before);
      sums.push_back(part);
      const at::Tensor h = summary(b);
      before = before.defined() ? before + h : h;
    }
  } else if (diagonal_blocks) {
    // off-diagonal mass = prefix + suffix of the block summaries (not total - own: degree-4 weights
    // span many orders of magnitude and the subtraction would lose the smaller blocks)
    std::vector<at::Tensor> h;
    for (int64_t b = 0; b < nTk; ++b) h.push_back(summary(b));
    std::vector<at::Tensor> suffix(static_cast<size_t>(nTk + 1));
    for (int64_t b = nTk - 1; b >= 0; --b)
      suffix[static_cast<size_t>(b)] = suffix[static_cast<size_t>(b + 1)].defined() ? h[static_cast<size_t>(b)] + suffix[static_cast<size_t>(b + 1)] : h[static_cast<size_t>(b)];
    at::Tensor prefix;
    for (int64_t b = 0; b < nTq; ++b) {
      at::Tensor off = suffix[static_cast<size_t>(b + 1)];
      if (prefix.defined()) off = off.defined() ? prefix + off : prefix;
      at::Tensor part = at::matmul(block_weights(b), block_of(v1, b));
      if (off.defined()) part = part + at::matmul(self_tensor(block_of(fq, b)), off);
      sums.push_back(part);
      prefix = prefix.defined() ? prefix + h[static_cast<size_t>(b)] : h[static_cast<size_t>(b)];
    }
  } else {
    at::Tensor total = summary(0);
    for (int64_t b = 1; b < nTk; ++b) total = total + summary(b);
    for (int64_t b = 0; b < nTq; ++b) sums.push_back(at::matmul(self_tensor(block_of(fq, b)), total));
  }
  const at::Tensor sums_RNE1 = at::cat(sums, 1).narrow(1, 0, N);
  const at::Tensor out_RNE = sums_RNE1.narrow(-1, 0, E) / (1 + sums_RNE1.narrow(-1, E, 1));
  result.out_BHNE = out_RNE.reshape({B, H, N, E});
  result.cost = cost(s);
  return result;
}

}  // namespace smyrf
