// reformer LSH attention; see reformer.h.
#include "core/attention/reformer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {
namespace {

struct ReformerGeometry {
  int64_t L, Cq, Ck, window_chunks;  // window_chunks: key chunks each query chunk sees (1 or 2)
};

ReformerGeometry reformer_geometry(int64_t N, int64_t M, int64_t chunk) {
  ReformerGeometry g;
  g.L = ceil_div(N, std::min(chunk, N));
  g.Cq = ceil_div(N, g.L);
  g.Ck = ceil_div(M, g.L);
  g.window_chunks = g.L > 1 ? 2 : 1;
  return g;
}

// Bucket of every token per round: argmax over [xW; -xW], as float64 sort keys [R, T, rounds].
// With b = 2N/chunk buckets the projections are R x T x b/2 per round, quadratic in N: they are
// made a block of tokens at a time, in the input dtype, and [xW; -xW] is never built (its argmax
// is the larger of max(xW) and -min(xW)).
at::Tensor angular_buckets(const at::Tensor& x_RTD, const at::Tensor& rotations_HDb) {
  at::NoGradGuard no_grad;
  const int64_t R = x_RTD.size(0), T = x_RTD.size(1), rounds = rotations_HDb.size(0), half = rotations_HDb.size(2);
  at::Tensor buckets = at::zeros({R, T, rounds}, x_RTD.options().dtype(at::kDouble));
  if (half == 0) return buckets;
  const at::Tensor x = x_RTD.detach();
  const int64_t step = std::max<int64_t>(1, (int64_t{1} << 24) / std::max<int64_t>(1, R * half));
  for (int64_t h = 0; h < rounds; ++h) {
    const at::Tensor w = rotations_HDb[h].to(x.options());
    for (int64_t t0 = 0; t0 < T; t0 += step) {
      const int64_t n = std::min(step, T - t0);
      const at::Tensor proj = at::matmul(x.narrow(1, t0, n), w);  // [R, n, b/2]
      const auto [top, top_at] = proj.max(-1);
      const auto [bottom, bottom_at] = proj.min(-1);
      const at::Tensor bucket = at::where(top.ge(bottom.neg()), top_at, bottom_at + half);
      buckets.narrow(1, t0, n).select(2, h).copy_(bucket);
    }
  }
  return buckets;
}

// Which chunk each token (index < T) lands in, per round; dummies (index >= T) get -1.
at::Tensor chunk_of_token(const at::Tensor& perm_RUP, int64_t C, int64_t T) {
  const int64_t P = perm_RUP.size(2);
  const at::Tensor chunk_P = at::arange(P, perm_RUP.options()).div(C, "floor");
  at::Tensor chunk_RUP = at::full(perm_RUP.sizes(), -1, perm_RUP.options());
  chunk_RUP.scatter_(-1, perm_RUP, chunk_P.expand_as(perm_RUP));
  return chunk_RUP.narrow(-1, 0, T);  // [R, U, T]
}

}  // namespace

ReformerOptions ReformerOptions::from_json(JsonReader& reader) {
  ReformerOptions o;
  reader.get("chunk_size", o.chunk_size).get("n_rounds", o.n_rounds).get("n_buckets", o.n_buckets);
  const std::string where = reader.source().empty() ? "config" : reader.source();
  if (o.chunk_size < 1)
    throw ConfigError(fmt::format("{}: '{}.chunk_size' must be >= 1, got {}", where, reader.path(), o.chunk_size));
  if (o.n_rounds < 1)
    throw ConfigError(fmt::format("{}: '{}.n_rounds' must be >= 1, got {}", where, reader.path(), o.n_rounds));
  if (o.n_buckets < 0 || (o.n_buckets > 1 && o.n_buckets % 2 != 0))
    throw ConfigError(fmt::format("{}: '{}.n_buckets' must be 0 (auto), 1 (no hashing) or even (argmax over "
                                  "[xW; -xW] gives two buckets per rotation column), got {}",
                                  where, reader.path(), o.n_buckets));
  return o;
}

ReformerAttention::ReformerAttention(ReformerOptions options) : options_(options) {
  SMYRF_CHECK(options_.chunk_size >= 1 && options_.n_rounds >= 1 && options_.n_buckets >= 0,
              "reformer: chunk_size and n_rounds must be >= 1, n_buckets >= 0");
}

Capabilities ReformerAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  caps.lse = true;
  return caps;
}

std::vector<std::string> ReformerAttention::reported_knobs() const {
  return {"n_rounds", "chunk_size"};
}

AttentionMethod::BudgetKnob ReformerAttention::budget_knob(const AttentionShape& shape) const {
  return {{"chunk_size"}, shape.n_queries};  // n_rounds stays as given
}

nlohmann::json ReformerAttention::options_json() const {
  return {{"method", name()}, {"chunk_size", options_.chunk_size}, {"n_rounds", options_.n_rounds},
          {"n_buckets", options_.n_buckets}};
}

int64_t ReformerAttention::buckets_for(int64_t N) const {
  return options_.n_buckets > 0 ? options_.n_buckets : 2 * ceil_div(N, options_.chunk_size);
}

std::vector<std::string> ReformerAttention::unsupported_reasons(const AttentionRequest& request) const {
  // chunk_size > N is one chunk of all N queries (a sweep over lengths may meet short N)
  return AttentionMethod::unsupported_reasons(request);
}

AttentionCost ReformerAttention::cost(const AttentionShape& s) const {
  const ReformerGeometry g = reformer_geometry(s.n_queries, s.n_keys, options_.chunk_size);
  const int64_t R = s.batch * s.heads, e = s.element_bytes, rounds = options_.n_rounds;
  const int64_t Np = g.L * g.Cq, Kw = g.window_chunks * g.Ck;
  const int64_t entries = R * rounds * g.L * g.Cq * Kw;
  AttentionCost cost;
  cost.score_entries = entries;
  cost.buffers = {{"buckets", R * rounds * (s.n_queries + s.n_keys) * 8},
                  {"permutations", R * rounds * (2 * Np + g.L * g.Ck) * 8},
                  {"q_sorted", R * rounds * Np * s.head_dim * e},
                  {"k_window", R * rounds * g.L * Kw * s.head_dim * e},
                  {"v_window", R * rounds * g.L * Kw * s.value_dim * e},
                  {"duplicate_counts", entries * e},
                  {"logits", entries * e},
                  {"probs", entries * e},
                  {"out_per_round", R * rounds * Np * s.value_dim * e},
                  {"out", R * s.n_queries * s.value_dim * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(entries) / static_cast<double>(R * s.n_queries * s.n_keys);
  return cost;
}

AttentionOutput ReformerAttention::forward_impl(const AttentionInputs& in, at::Generator& generator) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H, rounds = options_.n_rounds;
  const ReformerGeometry g = reformer_geometry(N, M, options_.chunk_size);
  const int64_t L = g.L, Cq = g.Cq, Ck = g.Ck, W = g.window_chunks, Np = L * Cq, Mp = L * Ck;
  const auto opts = in.q_BHND.options();
  const int64_t n_buckets = buckets_for(N);
  at::Tensor rotations;
  {
    at::NoGradGuard no_grad;
    rotations = at::normal(0, 1, {rounds, D, n_buckets > 1 ? n_buckets / 2 : 0}, generator,
                           at::TensorOptions().dtype(at::kDouble));
  }
  const at::Tensor q_RND = in.q_BHND.reshape({R, N, D}), k_RMD = in.k_BHMD.reshape({R, M, D});
  const at::Tensor q_keep_RN = row_keep(in.query_keep_BN, B, H, N, N, false, opts);
  const at::Tensor k_keep_RM = row_keep(in.key_keep_BM, B, H, M, M, false, opts);
  at::Tensor perm_q, perm_k;
  {
    at::NoGradGuard no_grad;
    // bucket then position: the stable sort keeps positions in order inside a bucket
    perm_q = balanced_slots(sort_by_hash(angular_buckets(q_RND, rotations), q_keep_RN), q_keep_RN, N, L, Cq);  // [R, U, Np]
    perm_k = balanced_slots(sort_by_hash(angular_buckets(k_RMD, rotations), k_keep_RM), k_keep_RM, M, L, Ck);  // [R, U, Mp]
  }
  // key window of query chunk c: key chunks c and c-1 (cyclic)
  const auto window = [&](const at::Tensor& x_RULSX) {
    return W == 1 ? x_RULSX : at::cat({x_RULSX, x_RULSX.roll(1, 2)}, 3);
  };
  const at::Tensor q_flat = pad_tokens(q_RND, Np).reshape({R * Np, D});
  const at::Tensor k_flat = pad_tokens(k_RMD, Mp).reshape({R * Mp, D});
  const at::Tensor v_flat = pad_tokens(in.v_BHME.reshape({R, M, E}), Mp).reshape({R * Mp, E});
  const at::Tensor q_sorted = q_flat.index_select(0, flat_token_index(perm_q, Np)).view({R, rounds, L, Cq, D});
  const at::Tensor k_idx = flat_token_index(perm_k, Mp);
  const at::Tensor k_win = window(k_flat.index_select(0, k_idx).view({R, rounds, L, Ck, D}));  // [R, U, L, W*Ck, D]
  const at::Tensor v_win = window(v_flat.index_select(0, k_idx).view({R, rounds, L, Ck, E}));
  at::Tensor keep, log_counts;
  {
    at::NoGradGuard no_grad;
    const at::Tensor k_keep_flat = at::constant_pad_nd(k_keep_RM, {0, Mp - M}, 0).reshape({-1});
    const at::Tensor kpos_win = window(perm_k.view({R, rounds, L, Ck})).unsqueeze(3);   // [R, U, L, 1, W*Ck]
    const at::Tensor qpos = perm_q.view({R, rounds, L, Cq, 1});
    keep = window(k_keep_flat.index_select(0, k_idx).view({R, rounds, L, Ck})).unsqueeze(3);
    if (in.causal) keep = keep.logical_and(kpos_win.le(qpos));
    // duplicate correction: in how many rounds does query i meet key j?
    const at::Tensor q_chunk_RUN = chunk_of_token(perm_q, Cq, N), k_chunk_RUM = chunk_of_token(perm_k, Ck, M);
    const at::Tensor qpos_c = qpos.clamp_max(N - 1), kpos_c = kpos_win.clamp_max(M - 1);  // dummies are masked anyway
    at::Tensor counts = at::zeros({R, rounds, L, Cq, W * Ck}, opts);
    for (int64_t rho = 0; rho < rounds; ++rho) {
      const at::Tensor qc = at::gather(q_chunk_RUN.select(1, rho), 1, qpos_c.reshape({R, -1})).view(qpos.sizes());
      const at::Tensor kc = at::gather(k_chunk_RUM.select(1, rho), 1, kpos_c.reshape({R, -1})).view(kpos_win.sizes());
      at::Tensor meets = kc.eq(qc);
      if (W == 2) meets = meets.logical_or(kc.eq((qc - 1 + L).remainder(L)));
      counts += meets.to(opts.dtype());
    }
    log_counts = counts.clamp_min(1).log();
  }
  const at::Tensor logits = at::matmul(q_sorted * in.scale, k_win.transpose(-1, -2)) - log_counts;
  const PartialAttention attended = attend_with_lse(logits, keep, v_win);
  const at::Tensor& out_sorted = attended.out;  // [R, U, L, Cq, E]
  const at::Tensor inv_idx = flat_hash_index(inverse_permutation(perm_q));
  const at::Tensor out_RUNE = out_sorted.reshape({R * rounds * Np, E}).index_select(0, inv_idx).view({R, rounds, Np, E});
  const at::Tensor lse_RNU = attended.lse.reshape({-1}).index_select(0, inv_idx).view({R, rounds, Np}).transpose(1, 2);
  const MaskedSoftmax merge = masked_softmax_with_lse(lse_RNU, at::isfinite(lse_RNU));
  const at::Tensor out_RNE = (out_RUNE * merge.probs.transpose(1, 2).unsqueeze(-1)).sum(1);
  AttentionOutput result;
  result.out_BHNE = out_RNE.narrow(1, 0, N).reshape({B, H, N, E});
  result.lse_BHN = merge.lse.narrow(1, 0, N).reshape({B, H, N});
  result.cost = cost(s);
  result.aux["rotations_HDb"] = rotations;
  return result;
}

}  // namespace smyrf
