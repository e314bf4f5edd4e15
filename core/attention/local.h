// local: attention restricted to nearby positions (Longformer's sliding window without global
// tokens, and block-local attention). Query i and key j are at positions i and j (keys indexed
// like queries, also when M != N).
//   mode "sliding" [default]: non-causal, i sees j in [i - floor((w-1)/2), i + ceil((w-1)/2)]
//                             (w keys, centred); causal, j in [i - w + 1, i].
//   mode "block":             positions cut into blocks of w; i sees the keys of its own block
//                             (causal: and j <= i).
// Options: {"method": "local", "window": 128, "mode": "sliding"}.
// Computed in query tiles: tile t of T queries meets one contiguous span of S keys (an unfolded
// view of the keys, which the matmul copies: S/T times K and V), so the score buffer is
// R * ceil(N/T) * T * S, never N x M
// (sliding: T = ceil(w/2), S = T + w - 1; block: T = S = w).
// Exact (= dense) when block mode has w >= max(N, M), or sliding mode has w >= 2 max(N, M) - 1
// (non-causal) or w >= N (causal).
// Shapes: as attention_method.h; R = B*H. Tested by tests/attention/test_local.cpp (exactness limits vs the
// float64 loop oracle, the band equals a brute-force masked dense, causality, padding, gradients).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

enum class LocalMode { kSliding, kBlock };

struct LocalOptions {
  int64_t window = 128;
  LocalMode mode = LocalMode::kSliding;  // "sliding" | "block"
  static LocalOptions from_json(JsonReader& reader);
};

// The tiling of local attention for N queries and M keys.
struct LocalGeometry {
  int64_t tile, span, offset;  // queries per tile, keys per tile, key start = tile start - offset
  int64_t n_tiles;
  int64_t left, right;         // sliding: allowed j - i in [-left, right]
};

class LocalAttention : public AttentionMethod {
 public:
  explicit LocalAttention(LocalOptions options);
  std::string name() const override { return "local"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  LocalGeometry geometry(int64_t n_queries, int64_t n_keys, bool causal) const;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  LocalOptions options_;
};

}  // namespace smyrf
