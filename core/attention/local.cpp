// local attention in query tiles; see local.h.
#include "core/attention/local.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {
namespace {

const EnumNames<LocalMode> kLocalModeNames = {{"sliding", LocalMode::kSliding}, {"block", LocalMode::kBlock}};

}  // namespace

LocalOptions LocalOptions::from_json(JsonReader& reader) {
  LocalOptions o;
  reader.get("window", o.window).get_enum("mode", o.mode, kLocalModeNames);
  if (o.window < 1)
    throw ConfigError(fmt::format("{}: '{}.window' must be >= 1 (keys each query sees), got {}",
                                  reader.source().empty() ? "config" : reader.source(), reader.path(), o.window));
  return o;
}

LocalAttention::LocalAttention(LocalOptions options) : options_(std::move(options)) {
  SMYRF_CHECK(options_.window >= 1, "local: window must be >= 1, got {}", options_.window);
}

Capabilities LocalAttention::capabilities() const {
  Capabilities caps;
  caps.causal = true;
  caps.lse = true;
  return caps;
}

std::vector<std::string> LocalAttention::reported_knobs() const {
  return {"window"};
}

AttentionMethod::BudgetKnob LocalAttention::budget_knob(const AttentionShape& shape) const {
  return {{"window"}, 2 * std::max(shape.n_queries, shape.n_keys)};
}

nlohmann::json LocalAttention::options_json() const {
  return {{"method", name()}, {"window", options_.window}, {"mode", enum_name(options_.mode, kLocalModeNames)}};
}

LocalGeometry LocalAttention::geometry(int64_t N, int64_t M, bool causal) const {
  const int64_t w = options_.window;
  LocalGeometry g{};
  if (options_.mode == LocalMode::kBlock) {
    g.tile = g.span = std::min(w, std::max(N, M));
    g.offset = 0;
  } else {
    g.left = causal ? w - 1 : (w - 1) / 2;
    g.right = causal ? 0 : w - 1 - g.left;
    // half a window per tile: the span S = T + w - 1 wastes ~1/3 of its scores in the corners but
    // the matmul's copies of the key and value spans (S/T times K and V) stay at 3x; smaller tiles
    // trade fewer scores for more copies, and at D = 64 this is about the minimum of the two
    g.tile = std::min(N, std::max<int64_t>(1, ceil_div(w, 2)));
    g.span = g.tile + w - 1;
    g.offset = g.left;
  }
  g.n_tiles = ceil_div(N, g.tile);
  return g;
}

AttentionCost LocalAttention::cost(const AttentionShape& s) const {
  // causal only changes the band, not the span; the non-causal tiling is the larger one
  const LocalGeometry g = geometry(s.n_queries, s.n_keys, false);
  const int64_t R = s.batch * s.heads, e = s.element_bytes;
  const int64_t entries = R * g.n_tiles * g.tile * g.span;
  AttentionCost cost;
  cost.score_entries = entries;
  cost.buffers = {{"key_spans", R * g.n_tiles * g.span * s.head_dim * e},  // matmul copies the unfolded view
                  {"value_spans", R * g.n_tiles * g.span * s.value_dim * e},
                  {"logits", entries * e},
                  {"probs", entries * e},
                  {"out", R * g.n_tiles * g.tile * s.value_dim * e},
                  {"lse", R * s.n_queries * e}};
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(entries) / static_cast<double>(R * s.n_queries * s.n_keys);
  return cost;
}

AttentionOutput LocalAttention::forward_impl(const AttentionInputs& in, at::Generator& /*generator*/) const {
  const AttentionShape s = shape_of(in);
  const int64_t B = s.batch, H = s.heads, N = s.n_queries, M = s.n_keys, D = s.head_dim, E = s.value_dim;
  const int64_t R = B * H;
  const LocalGeometry g = geometry(N, M, in.causal);
  const int64_t T = g.tile, S = g.span, nT = g.n_tiles;
  // keys padded so that tile t's span [t*T - offset, t*T - offset + S) is in range for every t
  const int64_t right_pad = std::max<int64_t>(0, (nT - 1) * T + S - g.offset - M);
  const auto pad_keys = [&](const at::Tensor& x_RMX) {
    return at::constant_pad_nd(x_RMX, {0, 0, g.offset, right_pad}, 0);
  };
  const at::Tensor q_RtTD = pad_tokens(in.q_BHND.reshape({R, N, D}), nT * T).view({R, nT, T, D});
  // the spans are an unfolded view of the padded keys (no copy); with M > N there are more spans
  // than query tiles, and only the first nT are used
  const auto spans = [&](const at::Tensor& x_RTX) { return x_RTX.unfold(1, S, T).narrow(1, 0, nT); };
  const at::Tensor k_RtDS = spans(pad_keys(in.k_BHMD.reshape({R, M, D})));  // [R, nT, D, S]
  const at::Tensor v_RtSE = spans(pad_keys(in.v_BHME.reshape({R, M, E}))).transpose(-1, -2);
  const at::Tensor key_keep_RM = row_keep(in.key_keep_BM, B, H, M, M, false, in.q_BHND.options());
  const at::Tensor key_ok_Rt1S = spans(at::constant_pad_nd(key_keep_RM, {g.offset, right_pad}, 0)).unsqueeze(2);

  // the band is the same for every tile: query r of the tile and key c of the span are at
  // relative position (c - offset) - r
  const auto long_opts = in.q_BHND.options().dtype(at::kLong);
  const at::Tensor rel_TS = at::arange(S, long_opts).view({1, S}) - g.offset - at::arange(T, long_opts).view({T, 1});
  at::Tensor band_TS;
  if (options_.mode == LocalMode::kBlock) {
    band_TS = in.causal ? rel_TS.le(0) : at::ones({T, S}, long_opts.dtype(at::kBool));
  } else {
    band_TS = rel_TS.ge(-g.left).logical_and(rel_TS.le(g.right));
  }
  const at::Tensor keep = key_ok_Rt1S.logical_and(band_TS.view({1, 1, T, S}));

  at::Tensor logits = at::matmul(q_RtTD * in.scale, k_RtDS);  // [R, nT, T, S]
  const bool needs_grad = at::GradMode::is_enabled() &&
                          (in.q_BHND.requires_grad() || in.k_BHMD.requires_grad() || in.v_BHME.requires_grad());
  at::Tensor out, lse;
  if (needs_grad) {
    const MaskedSoftmax softmax = masked_softmax_with_lse(logits, keep);
    out = at::matmul(softmax.probs, v_RtSE);
    lse = softmax.lse;
  } else {
    lse = softmax_in_place_with_lse(logits, keep);
    out = at::matmul(logits, v_RtSE);
  }
  AttentionOutput result;
  result.out_BHNE = out.reshape({R, nT * T, E}).narrow(1, 0, N).reshape({B, H, N, E});
  result.lse_BHN = lse.reshape({R, nT * T}).narrow(1, 0, N).reshape({B, H, N});
  result.cost = cost(s);
  return result;
}

}  // namespace smyrf
