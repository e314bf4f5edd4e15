// HyperAttention; see hyper.h.
#include "core/attention/hyper.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {
namespace {

const EnumNames<BucketOrder> kBucketOrderNames = {{"gray", BucketOrder::kGray}, {"as_released", BucketOrder::kAsReleased}};

// Exact attention on [R, T, X] tensors (the base case of both paths).
PartialAttention hyper_exact(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                             const at::Tensor& k_keep_RM, bool causal, double scale) {
  const int64_t N = q_RND.size(1), M = k_RMD.size(1);
  at::Tensor keep = k_keep_RM.unsqueeze(1);
  if (causal) keep = keep.logical_and(at::ones({N, M}, keep.options()).tril().unsqueeze(0));
  return attend_with_lse(at::matmul(q_RND * scale, k_RMD.transpose(-1, -2)), keep, v_RME);
}

// Gathers tokens [R, T, X] into the order index_RP [R, P] (indices >= T read zero dummies).
at::Tensor gather_slots(const at::Tensor& x_RTX, const at::Tensor& index_RP) {
  const int64_t R = x_RTX.size(0), X = x_RTX.size(2), P = index_RP.size(1);
  const at::Tensor padded = pad_tokens(x_RTX, std::max(x_RTX.size(1), P));
  const int64_t T = padded.size(1);
  return padded.reshape({R * T, X}).index_select(0, flat_token_index(index_RP.unsqueeze(1), T)).view({R, P, X});
}

}  // namespace

HyperOptions HyperOptions::from_json(JsonReader& reader) {
  HyperOptions o;
  reader.get("block_size", o.block_size).get("sample_size", o.sample_size).get("n_projections", o.n_projections);
  reader.get("min_seq_len", o.min_seq_len).get_enum("bucket_order", o.bucket_order, kBucketOrderNames);
  const std::string where = reader.source().empty() ? "config" : reader.source();
  const auto fail = [&](const char* key, const std::string& why) {
    throw ConfigError(fmt::format("{}: '{}.{}' {}", where, reader.path(), key, why));
  };
  if (o.block_size < 1) fail("block_size", fmt::format("must be >= 1, got {}", o.block_size));
  if (o.sample_size < 0) fail("sample_size", fmt::format("must be >= 0 (0 = no sampled part), got {}", o.sample_size));
  if (o.n_projections < 0 || o.n_projections > 30)
    fail("n_projections", fmt::format("must be in [0, 30] (2^P buckets; 0 = one bucket), got {}", o.n_projections));
  if (o.min_seq_len < 0) fail("min_seq_len", fmt::format("must be >= 0, got {}", o.min_seq_len));
  return o;
}

HyperAttention::HyperAttention(HyperOptions options) : options_(std::move(options)) {
  SMYRF_CHECK(options_.block_size >= 1 && options_.sample_size >= 0 && options_.n_projections >= 0 &&
                  options_.n_projections <= 30 && options_.min_seq_len >= 0,
              "hyper: block_size >= 1, sample_size >= 0, n_projections in [0, 30], min_seq_len >= 0");
}

Capabilities HyperAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  caps.lse = true;
  return caps;
}

std::vector<std::string> HyperAttention::reported_knobs() const {
  return {"block_size", "sample_size"};
}

AttentionMethod::BudgetKnob HyperAttention::budget_knob(const AttentionShape& shape) const {
  return {{"block_size", "sample_size"}, shape.n_keys};
}

nlohmann::json HyperAttention::options_json() const {
  return {{"method", name()},
          {"block_size", options_.block_size},
          {"sample_size", options_.sample_size},
          {"n_projections", options_.n_projections},
          {"min_seq_len", options_.min_seq_len},
          {"bucket_order", enum_name(options_.bucket_order, kBucketOrderNames)}};
}

int64_t HyperAttention::non_causal_entries(int64_t N, int64_t M) const {
  if (N < options_.min_seq_len) return N * M;
  const int64_t L = ceil_div(M, std::min(options_.block_size, M)), Cq = ceil_div(N, L), Ck = ceil_div(M, L);
  return L * Cq * Ck + (options_.sample_size > 0 && L > 1 ? L * Cq * options_.sample_size : 0);
}

int64_t HyperAttention::causal_entries(int64_t N) const {
  if (N <= std::max<int64_t>(options_.min_seq_len, 1)) return N * N;
  const int64_t half = (N + N % 2) / 2;
  return 2 * causal_entries(half) + non_causal_entries(half, half);
}

AttentionCost HyperAttention::cost(const AttentionShape& s) const {
  const int64_t R = s.batch * s.heads, e = s.element_bytes, N = s.n_queries, M = s.n_keys;
  const int64_t entries = R * (s.causal && N == M ? causal_entries(N) : non_causal_entries(N, M));
  AttentionCost cost;
  cost.score_entries = entries;
  cost.buffers = {{"bucket_keys_and_permutations", R * (N + M) * 8 * 4},
                  {"sorted_qkv", R * (N * s.head_dim + M * (s.head_dim + s.value_dim)) * e},
                  {"logits", entries * e},
                  {"probs", entries * e},
                  {"partial_outputs", 2 * R * N * (s.value_dim + 1) * e},
                  {"out", R * N * s.value_dim * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(entries) / static_cast<double>(R * N * M);
  return cost;
}

at::Tensor HyperAttention::bucket_keys(const at::Tensor& x_RTD, const at::Tensor& projections_DJ) const {
  at::NoGradGuard no_grad;
  const int64_t P = projections_DJ.size(1);
  const auto long_opts = x_RTD.options().dtype(at::kLong);
  if (P == 0) return at::zeros({x_RTD.size(0), x_RTD.size(1)}, long_opts);
  const at::Tensor bits = at::matmul(x_RTD.detach().to(at::kDouble), projections_DJ.to(x_RTD.device())).gt(0).to(at::kLong);
  const at::Tensor bin = (bits * at::pow(2, at::arange(P, long_opts))).sum(-1);
  if (options_.bucket_order == BucketOrder::kAsReleased) return at::bitwise_xor(bin, at::bitwise_right_shift(bin, 1));
  // inverse Gray code (prefix XOR of the bits from the top): sorting by it visits bins in Gray order
  at::Tensor key = bin;
  for (int64_t shift = 1; shift < P; shift *= 2) key = at::bitwise_xor(key, at::bitwise_right_shift(key, shift));
  return key;
}

PartialAttention HyperAttention::non_causal(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                            const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RM, double scale,
                                            const at::Tensor& projections_DJ, at::Generator& generator) const {
  const int64_t R = q_RND.size(0), N = q_RND.size(1), M = k_RMD.size(1), E = v_RME.size(2);
  if (N < options_.min_seq_len) return hyper_exact(q_RND, k_RMD, v_RME, k_keep_RM, false, scale);
  const int64_t L = ceil_div(M, std::min(options_.block_size, M)), Cq = ceil_div(N, L), Ck = ceil_div(M, L);
  at::Tensor sorted_k_RM, perm_q_RP, perm_k_RP;
  {
    at::NoGradGuard no_grad;
    const at::Tensor q_sorted = sort_by_hash(bucket_keys(q_RND, projections_DJ).to(at::kDouble).unsqueeze(-1), q_keep_RN);
    const at::Tensor k_sorted = sort_by_hash(bucket_keys(k_RMD, projections_DJ).to(at::kDouble).unsqueeze(-1), k_keep_RM);
    sorted_k_RM = k_sorted.squeeze(1);
    perm_q_RP = balanced_slots(q_sorted, q_keep_RN, N, L, Cq).squeeze(1);
    perm_k_RP = balanced_slots(k_sorted, k_keep_RM, M, L, Ck).squeeze(1);
  }
  const at::Tensor q_s = gather_slots(q_RND, perm_q_RP).view({R, L, Cq, -1});
  const at::Tensor k_s = gather_slots(k_RMD, perm_k_RP).view({R, L, Ck, -1});
  const at::Tensor v_s = gather_slots(v_RME, perm_k_RP).view({R, L, Ck, E});
  const at::Tensor keep_s =
      at::constant_pad_nd(k_keep_RM, {0, L * Ck - M}, 0).gather(1, perm_k_RP).view({R, L, 1, Ck});
  PartialAttention part = attend_with_lse(at::matmul(q_s * scale, k_s.transpose(-1, -2)), keep_s, v_s);  // [R, L, Cq, E]

  const int64_t m = options_.sample_size;
  if (m > 0 && L > 1) {
    at::Tensor sample_tokens, sample_ok, log_weight;
    {
      at::NoGradGuard no_grad;
      const at::Tensor n_real = k_keep_RM.sum(1);  // [R]; real keys are the first n_real sorted ranks
      const at::Tensor u = at::rand({R, m}, generator, at::TensorOptions().dtype(at::kDouble)).to(n_real.device());
      const at::Tensor rank = (u * n_real.unsqueeze(1).to(at::kDouble)).floor().to(at::kLong)
                                  .clamp_max((n_real - 1).clamp_min(0).unsqueeze(1));
      sample_tokens = sorted_k_RM.gather(1, rank);  // [R, m]
      const at::Tensor sample_block = cluster_of_rank(rank, n_real, L);
      const at::Tensor block_c = at::arange(L, rank.options()).view({1, L, 1, 1});
      sample_ok = sample_block.view({R, 1, 1, m}).ne(block_c).logical_and(n_real.gt(0).view({R, 1, 1, 1}));
      log_weight = at::log(n_real.to(q_RND.scalar_type()).clamp_min(1) / static_cast<double>(m)).view({R, 1, 1});
    }
    const at::Tensor k_m = gather_slots(k_RMD, sample_tokens), v_m = gather_slots(v_RME, sample_tokens);
    PartialAttention sampled =
        attend_with_lse(at::matmul(q_s * scale, k_m.transpose(-1, -2).unsqueeze(1)), sample_ok, v_m.unsqueeze(1));
    sampled.lse = sampled.lse + log_weight;
    part = merge_partial_attention(part, sampled);
  }
  // back to token order
  const at::Tensor inverse_RP = inverse_permutation(perm_q_RP.unsqueeze(1)).squeeze(1).narrow(1, 0, N);
  const at::Tensor flat = flat_token_index(inverse_RP.unsqueeze(1), L * Cq);
  return {part.out.reshape({R * L * Cq, E}).index_select(0, flat).view({R, N, E}),
          part.lse.reshape({R * L * Cq}).index_select(0, flat).view({R, N})};
}

PartialAttention HyperAttention::causal(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                        const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RM, double scale,
                                        const at::Tensor& projections_DJ, at::Generator& generator) const {
  const int64_t R = q_RND.size(0), N = q_RND.size(1);
  // (a single token is its own base case whatever min_seq_len says)
  if (N <= std::max<int64_t>(options_.min_seq_len, 1)) return hyper_exact(q_RND, k_RMD, v_RME, k_keep_RM, true, scale);
  const int64_t Ne = N + N % 2, h = Ne / 2;  // an odd length gets one masked token
  const at::Tensor q = pad_tokens(q_RND, Ne), k = pad_tokens(k_RMD, Ne), v = pad_tokens(v_RME, Ne);
  const at::Tensor q_keep = at::constant_pad_nd(q_keep_RN, {0, Ne - N}, 0);
  const at::Tensor k_keep = at::constant_pad_nd(k_keep_RM, {0, Ne - N}, 0);
  const auto halves = [&](const at::Tensor& x) { return at::cat({x.narrow(1, 0, h), x.narrow(1, h, h)}, 0); };
  const PartialAttention diagonal =
      causal(halves(q), halves(k), halves(v), halves(q_keep), halves(k_keep), scale, projections_DJ, generator);
  const PartialAttention lower_left =
      non_causal(q.narrow(1, h, h), k.narrow(1, 0, h), v.narrow(1, 0, h), q_keep.narrow(1, h, h),
                 k_keep.narrow(1, 0, h), scale, projections_DJ, generator);
  const PartialAttention second =
      merge_partial_attention({diagonal.out.narrow(0, R, R), diagonal.lse.narrow(0, R, R)}, lower_left);
  return {at::cat({diagonal.out.narrow(0, 0, R), second.out}, 1).narrow(1, 0, N),
          at::cat({diagonal.lse.narrow(0, 0, R), second.lse}, 1).narrow(1, 0, N)};
}

AttentionOutput HyperAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H;
  at::Tensor projections_DJ;
  {
    at::NoGradGuard no_grad;
    projections_DJ = at::normal(0, 1, {D, options_.n_projections}, generator, at::TensorOptions().dtype(at::kDouble));
  }
  const auto opts = in.q_BHND.options();
  const at::Tensor q_keep = row_keep(in.query_keep_BN, B, H, N, N, false, opts);
  const at::Tensor k_keep = row_keep(in.key_keep_BM, B, H, M, M, false, opts);
  const at::Tensor q = in.q_BHND.reshape({R, N, D}), k = in.k_BHMD.reshape({R, M, D}), v = in.v_BHME.reshape({R, M, E});
  const PartialAttention part = in.causal ? causal(q, k, v, q_keep, k_keep, in.scale, projections_DJ, generator)
                                          : non_causal(q, k, v, q_keep, k_keep, in.scale, projections_DJ, generator);
  AttentionOutput result;
  result.out_BHNE = part.out.reshape({B, H, N, E});
  result.lse_BHN = part.lse.reshape({B, H, N});
  result.cost = cost(s);
  result.aux["projections_DJ"] = projections_DJ;
  return result;
}

}  // namespace smyrf
