// reformer (Kitaev, Kaiser, Levskaya 2020): angular-LSH buckets, chunked attention.
// Per hash round: a random rotation W [D, b/2] shared by queries and keys (pretrained models have
// separate Q and K, so unlike the paper's shared-QK model both are hashed, with the same W);
// bucket(x) = argmax([xW; -xW]). Queries and keys are each sorted by (bucket, position), cut into
// L = ceil(N / chunk_size) chunks (query chunk c and key chunk c cover the same rank quantiles, as
// in smyrf.h), and query chunk c attends to key chunks c and c-1 (cyclic; only c when L = 1).
// Rounds are merged by a softmax over their lse after the duplicate correction: a pair (i, j) met
// in n_ij rounds gets its logit lowered by log(n_ij) in each, so the merge is a softmax over the
// union of the pairs met (each counted once). Self-exclusion is not applied (q and k differ).
// Causal: key j > i masked (which past keys a query meets still depends on every token's hash,
// as in the paper; only values are strictly causal). Since q and k are sorted separately, a causal
// query may meet no key j <= i in any round (most likely for early positions); its row is then 0
// (the shared-QK paper falls back to the token itself, which has no meaning when q != k).
// Padded keys sort last and are masked; chunk_size > N means one chunk.
// Options: {"method": "reformer", "chunk_size": 64, "n_rounds": 2, "n_buckets": 0 (= 2 ceil(N/chunk),
// the paper's 2N/chunk; 1 = no hashing)}. Exact: n_buckets = 1 and chunk_size >= N.
// memory_fraction = rounds * L * Cq * 2Ck / (N M) ~ rounds * 2 * chunk / M.
// Shapes: as attention_method.h; scores [R*rounds, L, Cq, 2Ck]. Tested by tests/attention/test_reformer.cpp.
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

struct ReformerOptions {
  int64_t chunk_size = 64;
  int64_t n_rounds = 2;
  int64_t n_buckets = 0;  // 0: 2 * ceil(N / chunk_size)
  static ReformerOptions from_json(JsonReader& reader);
};

class ReformerAttention : public AttentionMethod {
 public:
  explicit ReformerAttention(ReformerOptions options);
  std::string name() const override { return "reformer"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  std::vector<std::string> unsupported_reasons(const AttentionRequest& request) const override;
  int64_t buckets_for(int64_t n_queries) const;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  ReformerOptions options_;
};

}  // namespace smyrf
