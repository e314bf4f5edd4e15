// smyrf / e2lsh clustered attention; the algorithm and shapes are in smyrf.h.
#include "core/attention/smyrf.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

#include "core/attention/clustered_attention_cpu.h"
#include "core/attention/local.h"
#include "core/lsh/asymmetric_transform.h"
#include "core/lsh/balanced_clusters.h"
#include "core/lsh/causal_clusters.h"
#include "core/lsh/projection_hash.h"
#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

const EnumNames<MaskOrder> kMaskOrderNames = {{"correct", MaskOrder::kCorrect}, {"as_released", MaskOrder::kAsReleased}};
const EnumNames<SmyrfKernel> kKernelNames = {{"fused", SmyrfKernel::kFused}, {"reference", SmyrfKernel::kReference}};

// Everything the attention step needs once the clusters are known. Flat views: token t of row r
// is row r * L_padded + t.
struct ClusterTensors {
  ClusterGeometry geometry;
  at::Tensor q_flat, k_flat, v_flat;  // [R*Np, D], [R*Mp, D], [R*Mp, E] (dummies zero)
  at::Tensor k_keep_flat;             // [R*Mp] bool
  int64_t real_queries = 0, real_keys = 0;  // N, M: slots holding larger tokens are dummies
  at::Tensor perm_q_RUN, perm_k_RUM, inverse_RUN;
};

// Attention dropout of the twin: the kernels' counter-based mask on the CPU, else the generator's.
at::Tensor twin_dropout(const at::Tensor& probs, const ClusterTensors& t, double p, bool training, uint64_t seed,
                        at::Generator& generator) {
  if (p <= 0 || !training) return probs;
  if (!probs.device().is_cpu()) return attention_dropout(probs, p, training, generator);
  ClusteredCall call;
  call.perm_q_RUN = t.perm_q_RUN;
  call.perm_k_RUM = t.perm_k_RUM;
  call.q_cluster_size = t.geometry.q_cluster_size;
  call.k_cluster_size = t.geometry.k_cluster_size;
  call.dropout = p;
  call.dropout_seed = seed;
  return probs * clustered_dropout_factors(call, t.real_queries, t.real_keys, probs.scalar_type());
}

// The LibTorch twin of the fused kernels: every hash and row at once through differentiable ops.
std::pair<at::Tensor, at::Tensor> attend_differentiable(const ClusterTensors& t, double scale, double dropout,
                                                        bool training, uint64_t dropout_seed, at::Generator& generator) {
  const ClusterGeometry& g = t.geometry;
  const int64_t R = t.perm_q_RUN.size(0), n_hashes = t.perm_q_RUN.size(1);
  const int64_t L = g.n_clusters, Cq = g.q_cluster_size, Ck = g.k_cluster_size, Np = g.padded_queries;
  const int64_t D = t.q_flat.size(1), E = t.v_flat.size(1);
  const at::Tensor q_idx = flat_token_index(t.perm_q_RUN, Np);
  const at::Tensor k_idx = flat_token_index(t.perm_k_RUM, g.padded_keys);
  const at::Tensor q_sorted = t.q_flat.index_select(0, q_idx).view({R * n_hashes, L, Cq, D});
  const at::Tensor k_sorted = t.k_flat.index_select(0, k_idx).view({R * n_hashes, L, Ck, D});
  const at::Tensor v_sorted = t.v_flat.index_select(0, k_idx).view({R * n_hashes, L, Ck, E});
  const at::Tensor k_keep_sorted = t.k_keep_flat.index_select(0, k_idx).view({R * n_hashes, L, 1, Ck});
  const at::Tensor logits = at::matmul(q_sorted, k_sorted.transpose(-1, -2)) * scale;
  const MaskedSoftmax softmax = masked_softmax_with_lse(logits, k_keep_sorted);
  const at::Tensor probs = twin_dropout(softmax.probs, t, dropout, training, dropout_seed, generator);
  const at::Tensor out_sorted = at::matmul(probs, v_sorted);  // [R*U, L, Cq, E]
  const at::Tensor inv_idx = flat_hash_index(t.inverse_RUN);
  const at::Tensor out_RUNE = out_sorted.reshape({R * n_hashes * Np, E}).index_select(0, inv_idx)
                                  .view({R, n_hashes, Np, E});
  const at::Tensor lse_RNU = softmax.lse.reshape({-1}).index_select(0, inv_idx).view({R, n_hashes, Np}).transpose(1, 2);
  // merge hashes: softmax over each hash's lse == softmax over the multiset union of keys seen
  const MaskedSoftmax merge = masked_softmax_with_lse(lse_RNU, at::isfinite(lse_RNU));
  return {(out_RUNE * merge.probs.transpose(1, 2).unsqueeze(-1)).sum(1), merge.lse};
}

// q, k, v [B, H, L, X] (any strides but the last) -> out [R, N, E], lse [R, N] through the fused
// kernels. The forward keeps q, k, v (the caller's tensors, not copies), out, lse and the
// permutations; the backward recomputes every cluster's scores.
class FusedClusteredAttention : public torch::autograd::Function<FusedClusteredAttention> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& q_RND,
                                                const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                                const ClusteredCall& call) {
    const int64_t R = call.perm_q_RUN.size(0), N = q_RND.size(-2);
    at::Tensor out_RNE = at::empty({R, N, v_RME.size(-1)}, q_RND.options());
    at::Tensor lse_RN = at::empty({R, N}, q_RND.options());
    clustered_attention_forward_cpu(q_RND, k_RMD, v_RME, call, out_RNE, lse_RN);
    ctx->save_for_backward({q_RND, k_RMD, v_RME, out_RNE, lse_RN, call.perm_q_RUN, call.perm_k_RUM, call.key_keep_RM});
    ctx->saved_data["q_cluster_size"] = call.q_cluster_size;
    ctx->saved_data["k_cluster_size"] = call.k_cluster_size;
    ctx->saved_data["scale"] = call.scale;
    ctx->saved_data["dropout"] = call.dropout;
    ctx->saved_data["dropout_seed"] = static_cast<int64_t>(call.dropout_seed);
    ctx->saved_data["isa"] = static_cast<int64_t>(call.isa);
    ctx->saved_data["shared_keys"] = call.shared_keys;
    return {out_RNE, lse_RN};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    // the kernels' gradients are no graph: a second derivative through them would be silently 0
    TORCH_CHECK(!at::GradMode::is_enabled(), "smyrf: the fused backward cannot be differentiated again "
                "(create_graph); use the option \"kernel\": \"reference\" for higher derivatives");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &q_RND = saved[0], &k_RMD = saved[1], &v_RME = saved[2], &out_RNE = saved[3], &lse_RN = saved[4];
    ClusteredCall call;
    call.perm_q_RUN = saved[5];
    call.perm_k_RUM = saved[6];
    call.key_keep_RM = saved[7];
    call.q_cluster_size = ctx->saved_data["q_cluster_size"].toInt();
    call.k_cluster_size = ctx->saved_data["k_cluster_size"].toInt();
    call.scale = ctx->saved_data["scale"].toDouble();
    call.dropout = ctx->saved_data["dropout"].toDouble();
    call.dropout_seed = static_cast<uint64_t>(ctx->saved_data["dropout_seed"].toInt());
    call.isa = static_cast<KernelIsa>(ctx->saved_data["isa"].toInt());
    call.shared_keys = ctx->saved_data["shared_keys"].toBool();
    // dO is read through its strides: the expanded gradient of a sum is not copied
    const at::Tensor dout_RNE = grads[0].defined() ? grads[0] : at::zeros_like(out_RNE);
    const at::Tensor dlse_RN = grads[1].defined() ? grads[1].contiguous() : at::Tensor();
    // contiguous gradients whatever the inputs' strides (the kernel writes [R, L, X] rows)
    at::Tensor dq_RND = at::zeros(q_RND.sizes(), q_RND.options()), dk_RMD = at::zeros(k_RMD.sizes(), k_RMD.options());
    at::Tensor dv_RME = at::zeros(v_RME.sizes(), v_RME.options());
    clustered_attention_backward_cpu(q_RND, k_RMD, v_RME, call, out_RNE, lse_RN, dout_RNE, dlse_RN, dq_RND, dk_RMD,
                                     dv_RME);
    return {dq_RND, dk_RMD, dv_RME, at::Tensor()};
  }
};

}  // namespace

SmyrfOptions SmyrfOptions::from_json(JsonReader& reader, bool asymmetric_transform) {
  SmyrfOptions o;
  o.asymmetric_transform = asymmetric_transform;
  reader.get("n_hashes", o.n_hashes);
  reader.get("q_cluster_size", o.q_cluster_size);
  reader.get("k_cluster_size", o.k_cluster_size);
  reader.get("dropout", o.dropout);
  reader.get("block", o.block);
  reader.get_enum("mask_order", o.mask_order, kMaskOrderNames).get_enum("kernel", o.kernel, kKernelNames);
  const auto fail = [&](const char* key, const std::string& why) {
    throw ConfigError(fmt::format("{}: '{}.{}' {}", reader.source().empty() ? "config" : reader.source(),
                                  reader.path(), key, why));
  };
  if (o.n_hashes < 1) fail("n_hashes", fmt::format("must be >= 1 (number of hashing rounds), got {}", o.n_hashes));
  if (o.q_cluster_size < 1)
    fail("q_cluster_size", fmt::format("must be >= 1 (queries per cluster), got {}", o.q_cluster_size));
  if (o.k_cluster_size && *o.k_cluster_size < 1)
    fail("k_cluster_size", fmt::format("must be >= 1 (keys per cluster), got {}", *o.k_cluster_size));
  if (!(o.dropout >= 0.0 && o.dropout < 1.0)) fail("dropout", fmt::format("must be in [0, 1), got {}", o.dropout));
  if (o.block && *o.block < 1)
    fail("block", fmt::format("must be >= 1 (positions per exact causal block), got {}", *o.block));
  return o;
}

SmyrfAttention::SmyrfAttention(SmyrfOptions options) : options_(std::move(options)) {
  SMYRF_CHECK(options_.n_hashes >= 1 && options_.q_cluster_size >= 1 &&
                  (!options_.k_cluster_size || *options_.k_cluster_size >= 1),
              "{}: n_hashes and cluster sizes must be >= 1", name());
}

Capabilities SmyrfAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;  // by causal routing and exact blocks (smyrf.h), not by the paper's clusters
  caps.dropout = true;
  caps.lse = true;
  return caps;
}

std::vector<std::string> SmyrfAttention::reported_knobs() const {
  if (options_.k_cluster_size) return {"n_hashes", "q_cluster_size", "k_cluster_size"};
  return {"n_hashes", "q_cluster_size"};
}

AttentionMethod::BudgetKnob SmyrfAttention::budget_knob(const AttentionShape& shape) const {
  return {{"q_cluster_size"}, shape.n_queries};  // n_hashes stays as given
}

nlohmann::json SmyrfAttention::options_json() const {
  nlohmann::json j = {{"method", name()},
                      {"n_hashes", options_.n_hashes},
                      {"q_cluster_size", options_.q_cluster_size},
                      {"dropout", options_.dropout},
                      {"mask_order", enum_name(options_.mask_order, kMaskOrderNames)},
                      {"kernel", enum_name(options_.kernel, kKernelNames)}};
  j["k_cluster_size"] = options_.k_cluster_size ? nlohmann::json(*options_.k_cluster_size) : nlohmann::json();
  j["block"] = options_.block ? nlohmann::json(*options_.block) : nlohmann::json();
  return j;
}

std::vector<std::string> SmyrfAttention::geometry_problems(int64_t N, int64_t M, bool causal) const {
  std::vector<std::string> problems;
  const int64_t Cq = options_.q_cluster_size;
  if (Cq > N) problems.push_back(fmt::format("q_cluster_size {} is larger than the {} queries (use at most {})", Cq, N, N));
  const int64_t L = ceil_div(N, std::min(Cq, N));
  if (options_.k_cluster_size) {
    const int64_t Ck = *options_.k_cluster_size;
    if (Ck > M) {
      problems.push_back(fmt::format("k_cluster_size {} is larger than the {} keys (use at most {})", Ck, M, M));
    } else if (!causal && ceil_div(M, Ck) != L) {  // causal runs of keys are not matched to query clusters
      problems.push_back(fmt::format(
          "q_cluster_size {} cuts {} queries into {} clusters but k_cluster_size {} cuts {} keys into {}; "
          "both must give the same number of clusters (leave k_cluster_size out to get {})",
          Cq, N, L, Ck, M, ceil_div(M, Ck), ceil_div(M, L)));
    }
  }
  return problems;
}

ClusterGeometry SmyrfAttention::geometry(int64_t N, int64_t M) const {
  const auto problems = geometry_problems(N, M, false);
  SMYRF_CHECK(problems.empty(), "{}: {}", name(), join(problems, "; "));
  ClusterGeometry g;
  g.n_clusters = ceil_div(N, options_.q_cluster_size);
  // Slots per cluster: the N (M) sorted tokens are spread evenly over the L clusters, so a cluster
  // holds at most ceil(N / L) <= q_cluster_size of them (= q_cluster_size when it divides N).
  g.q_cluster_size = ceil_div(N, g.n_clusters);
  g.k_cluster_size = ceil_div(M, g.n_clusters);
  g.padded_queries = g.n_clusters * g.q_cluster_size;
  g.padded_keys = g.n_clusters * g.k_cluster_size;
  return g;
}

std::vector<std::string> SmyrfAttention::unsupported_reasons(const AttentionRequest& request) const {
  auto reasons = AttentionMethod::unsupported_reasons(request);
  for (auto& p : geometry_problems(request.shape.n_queries, request.shape.n_keys, request.causal)) reasons.push_back(p);
  if (request.causal && options_.dropout > 0)
    reasons.push_back(fmt::format("dropout {} with causal masking: the exact blocks of causal calls have no dropout; "
                                  "set dropout to 0", options_.dropout));
  return reasons;
}

AttentionCost SmyrfAttention::cost(const AttentionShape& s) const {
  if (s.causal) return causal_cost(s);
  const ClusterGeometry g = geometry(s.n_queries, s.n_keys);
  // the fused kernels' buffers (CPU tensors); on other devices the twin runs, whose are larger
  return clustered_attention_cost(s, options_.n_hashes, g.n_clusters, g.q_cluster_size, g.k_cluster_size,
                                  options_.kernel == SmyrfKernel::kFused);
}

SmyrfClusters SmyrfAttention::cluster(const AttentionInputs& in, at::Generator& generator) const {
  at::NoGradGuard no_grad;
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, R = B * H;
  SmyrfClusters clusters;
  clusters.geometry = geometry(N, M);
  const ClusterGeometry& g = clusters.geometry;
  const bool as_released = options_.mask_order == MaskOrder::kAsReleased;
  const auto opts = in.q_BHND.options();
  const at::Tensor q_RND = pad_tokens(in.q_BHND.reshape({R, N, D}), g.padded_queries);
  const at::Tensor k_RMD = pad_tokens(in.k_BHMD.reshape({R, M, D}), g.padded_keys);
  const at::Tensor q_keep_RN = row_keep(in.query_keep_BN, B, H, N, g.padded_queries, as_released, opts);
  const at::Tensor k_keep_RM = row_keep(in.key_keep_BM, B, H, M, g.padded_keys, as_released, opts);

  at::Tensor q_hash_RNU, k_hash_RMU;
  if (options_.asymmetric_transform) {
    clusters.directions_UX = draw_directions(options_.n_hashes, D + 2, generator);
    const XboxPlusExtensions ext = xbox_plus_extensions(q_RND, k_RMD);
    q_hash_RNU = projection_hash(q_RND, ext.q_ext_RN, clusters.directions_UX, /*ext_col=*/D + 1);
    k_hash_RMU = projection_hash(k_RMD, ext.k_ext_RM, clusters.directions_UX, /*ext_col=*/D);
  } else {
    clusters.directions_UX = draw_directions(options_.n_hashes, D, generator);
    q_hash_RNU = projection_hash(q_RND, at::Tensor(), clusters.directions_UX, /*ext_col=*/0);
    k_hash_RMU = projection_hash(k_RMD, at::Tensor(), clusters.directions_UX, /*ext_col=*/0);
  }
  clusters.perm_q_RUN = balanced_slots(sort_by_hash(q_hash_RNU, q_keep_RN), q_keep_RN, N, g.n_clusters, g.q_cluster_size);
  clusters.perm_k_RUM = balanced_slots(sort_by_hash(k_hash_RMU, k_keep_RM), k_keep_RM, M, g.n_clusters, g.k_cluster_size);
  return clusters;
}

std::pair<at::Tensor, at::Tensor> SmyrfAttention::attend(const AttentionInputs& in, const at::Tensor& perm_q_RUN,
                                                         const at::Tensor& perm_k_RUM, const ClusterGeometry& g,
                                                         bool shared_keys, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H;
  const bool as_released = options_.mask_order == MaskOrder::kAsReleased;
  const at::Tensor k_keep_flat = row_keep(in.key_keep_BM, B, H, M, g.padded_keys, as_released, in.q_BHND.options()).reshape({-1});
  const bool dropout = options_.dropout > 0 && in.training;
  // one draw per forward keys every dropout decision of the call (clustered_kernel_parts.h)
  const uint64_t dropout_seed = dropout && in.q_BHND.device().is_cpu()
                                    ? static_cast<uint64_t>(at::randint(std::numeric_limits<int64_t>::max(), {1}, generator,
                                                                        at::kLong).item<int64_t>())
                                    : 0;
  at::Tensor out_RNE, lse_RN;
  if (options_.kernel == SmyrfKernel::kFused && in.q_BHND.device().is_cpu()) {
    ClusteredCall call;
    if (in.key_keep_BM) call.key_keep_RM = k_keep_flat.view({R, g.padded_keys}).narrow(1, 0, M).contiguous();
    call.perm_q_RUN = perm_q_RUN.contiguous();
    call.perm_k_RUM = perm_k_RUM.contiguous();
    call.q_cluster_size = g.q_cluster_size;
    call.k_cluster_size = g.k_cluster_size;
    call.scale = in.scale;
    call.dropout = dropout ? options_.dropout : 0.0;
    call.dropout_seed = dropout_seed;
    call.shared_keys = shared_keys;
    // head views of a projection (last dim contiguous) are read in place, not copied
    const auto rows = [](const at::Tensor& x) { return x.stride(3) == 1 ? x : x.contiguous(); };
    const auto outs = FusedClusteredAttention::apply(rows(in.q_BHND), rows(in.k_BHMD), rows(in.v_BHME), call);
    out_RNE = outs[0];
    lse_RN = outs[1];
  } else {
    ClusterTensors t;
    t.geometry = g;
    t.real_queries = N;
    t.real_keys = M;
    t.q_flat = pad_tokens(in.q_BHND.reshape({R, N, D}), g.padded_queries).reshape({R * g.padded_queries, D});
    t.k_flat = pad_tokens(in.k_BHMD.reshape({R, M, D}), g.padded_keys).reshape({R * g.padded_keys, D});
    t.v_flat = pad_tokens(in.v_BHME.reshape({R, M, E}), g.padded_keys).reshape({R * g.padded_keys, E});
    t.k_keep_flat = k_keep_flat;
    t.perm_q_RUN = perm_q_RUN;
    t.perm_k_RUM = perm_k_RUM;
    {
      at::NoGradGuard no_grad;  // un-sorting is a gather with the inverse permutation
      t.inverse_RUN = inverse_permutation(t.perm_q_RUN);
    }
    std::tie(out_RNE, lse_RN) = attend_differentiable(t, in.scale, options_.dropout, in.training, dropout_seed, generator);
    out_RNE = out_RNE.narrow(1, 0, N);
    lse_RN = lse_RN.narrow(1, 0, N);
  }
  return {out_RNE, lse_RN};
}

AttentionOutput SmyrfAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  if (in.causal) return causal_forward(in, generator);
  const AttentionShape s = shape_of(in);
  const SmyrfClusters clusters = cluster(in, generator);
  const auto [out_RNE, lse_RN] = attend(in, clusters.perm_q_RUN, clusters.perm_k_RUM, clusters.geometry,
                                        /*shared_keys=*/false, generator);
  AttentionOutput result;
  result.out_BHNE = out_RNE.reshape({s.batch, s.heads, s.n_queries, s.value_dim});
  result.lse_BHN = lse_RN.reshape({s.batch, s.heads, s.n_queries});
  result.cost = cost(s);
  return result;
}

int64_t SmyrfAttention::causal_block(int64_t N) const {
  return std::min(options_.block.value_or(options_.q_cluster_size), std::max<int64_t>(N, 1));
}

namespace {

// Step 1-2 of causal calls: the hashes' linear parts and, for smyrf, what the causal XBOX+ bound
// needs (causal_clusters.h); the directions are drawn as in non-causal calls.
CausalHashes causal_hashes(const at::Tensor& q_RND, const at::Tensor& k_RMD, int64_t n_hashes, bool asymmetric,
                           at::Generator& generator) {
  const int64_t D = q_RND.size(-1);
  const at::Tensor dirs_UX = draw_directions(n_hashes, asymmetric ? D + 2 : D, generator);
  CausalHashes h;
  h.q_lin_RNU = projection_hash(q_RND, at::Tensor(), dirs_UX, 0);
  h.k_lin_RMU = projection_hash(k_RMD, at::Tensor(), dirs_UX, 0);
  if (asymmetric) {
    h.q_norm2_RN = q_RND.to(at::kDouble).pow(2).sum(-1);
    h.k_norm2_RM = k_RMD.to(at::kDouble).pow(2).sum(-1);
    h.q_coef_U = dirs_UX.select(1, D + 1);
    h.k_coef_U = dirs_UX.select(1, D);
  }
  return h;
}

}  // namespace

AttentionOutput SmyrfAttention::causal_forward(const AttentionInputs& in, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, E = s.value_dim, R = B * H;
  SMYRF_CHECK(!(in.training && options_.dropout > 0), "{}: attention dropout is not supported with causal masking; "
              "set dropout to 0", name());
  const int64_t T = causal_block(N), U = options_.n_hashes;
  ClusterGeometry g;
  g.q_cluster_size = std::min(options_.q_cluster_size, N);
  g.k_cluster_size = std::min(options_.k_cluster_size.value_or(options_.q_cluster_size), N);
  CausalClusterLayout layout;
  {
    at::NoGradGuard no_grad;
    const bool as_released = options_.mask_order == MaskOrder::kAsReleased;
    const at::Tensor q_keep_RN = row_keep(in.query_keep_BN, B, H, N, N, as_released, in.q_BHND.options());
    const at::Tensor k_keep_RN = row_keep(in.key_keep_BM, B, H, N, N, as_released, in.q_BHND.options());
    const CausalHashes hashes = causal_hashes(in.q_BHND.reshape({R, N, -1}), in.k_BHMD.reshape({R, N, -1}), U,
                                              options_.asymmetric_transform, generator);
    layout = causal_clusters(hashes, q_keep_RN, k_keep_RN, T, g.q_cluster_size, g.k_cluster_size);
  }
  g.n_clusters = layout.n_clusters;
  g.padded_queries = g.n_clusters * g.q_cluster_size;
  g.padded_keys = N + 1;  // one dummy key row (token N) for empty slots
  const auto device = in.q_BHND.device();
  const auto [out_c, lse_c] = attend(in, layout.perm_q_RUP.to(device), layout.perm_k_RUP.to(device), g,
                                     /*shared_keys=*/true, generator);
  LocalOptions exact;
  exact.window = T;
  exact.mode = LocalMode::kBlock;
  const AttentionOutput diagonal = LocalAttention(exact).forward(in, generator);
  const PartialAttention merged = merge_partial_attention(
      {out_c, lse_c - std::log(static_cast<double>(U))},
      {diagonal.out_BHNE.reshape({R, N, E}), diagonal.lse_BHN->reshape({R, N})});
  AttentionOutput result;
  result.out_BHNE = merged.out.reshape({B, H, N, E});
  result.lse_BHN = merged.lse.reshape({B, H, N});
  result.cost = cost(s);
  return result;
}

AttentionCost SmyrfAttention::causal_cost(const AttentionShape& s) const {
  const int64_t N = s.n_queries, T = causal_block(N);
  const int64_t Cq = std::min(options_.q_cluster_size, N);
  const int64_t Ck = std::min(options_.k_cluster_size.value_or(options_.q_cluster_size), N);
  // an upper bound: the clusters of a call depend on the data (every query alone in its run at worst)
  AttentionCost cost = clustered_attention_cost(s, options_.n_hashes, causal_cluster_bound(N, T, Cq, Ck), Cq, Ck,
                                                options_.kernel == SmyrfKernel::kFused);
  LocalOptions exact;
  exact.window = T;
  exact.mode = LocalMode::kBlock;
  const AttentionCost diagonal = LocalAttention(exact).cost(s);
  cost.score_entries += diagonal.score_entries;
  for (const BufferBytes& b : diagonal.buffers) cost.buffers.push_back({"exact_blocks_" + b.name, b.bytes});
  cost.analytic_bytes += diagonal.analytic_bytes;
  cost.memory_fraction = static_cast<double>(cost.score_entries) / static_cast<double>(s.batch * s.heads * N * s.n_keys);
  return cost;
}

}  // namespace smyrf
