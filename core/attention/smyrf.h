// smyrf: balanced LSH clustering with asymmetric transforms (Daras et al., NeurIPS 2020), and the
// e2lsh ablation (same clustering without the XBOX+ transform).
//
// Per (batch, head) row r and per hash h:
//   1. XBOX+ extensions of q and k (asymmetric_transform.h); e2lsh skips this.
//   2. One Gaussian direction per hash, shared by queries and keys; continuous projection
//      (projection_hash.h). Padded and dummy tokens get hash +inf so they sort last.
//   3. Queries and keys argsorted separately (stable) and cut into L = ceil(N / q_cluster_size)
//      clusters of consecutive ranks: cluster c holds sorted ranks [floor(cN/L), floor((c+1)N/L))
//      of the queries and the same quantiles of the keys. When q_cluster_size divides N (and
//      N/L = M/C_k) these are the paper's equal chunks of C_q queries and C_k keys; otherwise each
//      cluster has ceil(N/L) query and ceil(M/L) key slots, the spare ones holding masked dummies.
//   4. Chunk i of queries attends to chunk i of keys: masked scaled softmax with lse, dropout.
//   5. Un-sort; merge the hashes by a softmax over their lse, i.e. a softmax over the multiset
//      union of the keys each query saw (duplicates count, as in the paper's code).
// Hashing and sorting run without autograd. On the CPU both inference and training run the fused
// kernels of clustered_attention_cpu.h (one autograd function: the forward keeps only out, lse and
// the permutations; the backward recomputes each cluster's scores); `kernel: reference` (and any
// non-CPU device) runs the LibTorch twin instead, whose gradients flow through the gathers and the
// softmax and which keeps every hash's gathered q/k/v and probabilities for the backward.
// Attention dropout draws a counter-based mask keyed by (seed, row, hash, query, key), the seed
// taken from the generator once per forward; the CPU twin builds the same mask, other devices
// draw theirs from the generator directly.
// mask_order "as_released" reproduces the released code's mask tiling (row b*H+h uses the mask
// of batch (b*H+h) % B); "correct" uses the row's own batch.
//
// Causal (causal: true; N == M). The paper has no causal variant, and the clustering above cannot
// be causal: a query's cluster is cut by its rank among all queries and the keys beside it by their
// rank among all keys, so changing any later token moves the cut and changes which earlier keys a
// query sees. A language model trained on that learns from its future. So causal calls are built
// so that row i depends on tokens <= i alone, through the clustering too:
//   - exact part: positions are cut into blocks of `block` [= q_cluster_size]; a query attends
//     exactly to the keys of its own block at or before it (PolySketchFormer's exact diagonal
//     blocks; it always includes the query's own key, so no row is left without keys);
//   - clustered part: per hash, a query of block b is routed by its own hash to one run of Ck
//     consecutive past keys, the keys of blocks < b sorted by hash (core/lsh/causal_clusters.h).
//     Keys are balanced (every run holds Ck keys), queries are not clustered among themselves, and
//     the XBOX+ bound M is taken over earlier blocks only. The fused kernels run these clusters
//     unchanged (a key may now sit in several clusters; the backward then splits work by rows).
//   - merge: the clustered part's lse minus log(#) (the mean over hashes, so that a key is not
//     weighted # times against the exact part) and the exact part's, by log-add-exp.
// Exact when block >= N (one block) or when Ck covers the whole past (k_cluster_size >= N).
// Cost per query: about block/2 exact keys plus # * Ck routed ones; Ck gathered key rows per
// routed cluster, which holds fewer queries than a non-causal cluster (they share keys only when
// their hashes fall in the same run). Attention dropout is refused with causal calls (the exact
// part has none).
//
// Shapes (legend in attention_method.h; R = B*H, L clusters, Cq/Ck cluster sizes, U hashes):
//   perm_q_RUN [R, U, L*Cq]  sorted position -> token;  q_sorted [R*U, L, Cq, D]; logits [R*U, L, Cq, Ck]
// memory_fraction = U * L * Cq * Ck / (N * M) with the slot sizes Cq = ceil(N/L), Ck = ceil(M/L)
// (= U * Ck / M when Cq divides N).
// Tested by tests/attention/test_smyrf.cpp: single cluster == dense, brute-force multiset construction at
// N = 97, 1013 and M != N, padding, NaN, determinism, finite-difference gradients; and by
// tests/test_smyrf_backward.cpp: fused gradients against the twin, finite differences and dense,
// dropout (the same mask forward, backward and in the twin; thread count; unbiased).
#pragma once

#include <optional>
#include <utility>

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

// kFused: the CPU kernels, forward and backward; kReference: the LibTorch twin (config "reference").
enum class SmyrfKernel { kFused, kReference };
enum class MaskOrder { kCorrect, kAsReleased };

struct SmyrfOptions {
  int64_t n_hashes = 2;
  int64_t q_cluster_size = 32;
  std::optional<int64_t> k_cluster_size;  // checked: must give the same L as q_cluster_size
  double dropout = 0.0;
  MaskOrder mask_order = MaskOrder::kCorrect;  // "correct" | "as_released"
  SmyrfKernel kernel = SmyrfKernel::kFused;
  bool asymmetric_transform = true;       // false: the e2lsh ablation
  std::optional<int64_t> block;           // causal calls: exact blocks and routing [= q_cluster_size]
  static SmyrfOptions from_json(JsonReader& reader, bool asymmetric_transform);
};

struct ClusterGeometry {
  int64_t n_clusters;
  int64_t q_cluster_size, k_cluster_size;  // slots per cluster: ceil(N / L), ceil(M / L)
  int64_t padded_queries, padded_keys;  // L * Cq, L * Ck
};

// The clusters of one forward call, exposed for tests and visualisation.
struct SmyrfClusters {
  ClusterGeometry geometry;
  at::Tensor perm_q_RUN;  // [R, U, L*Cq] int64: sorted position -> query index (>= N: dummy)
  at::Tensor perm_k_RUM;  // [R, U, L*Ck] int64: sorted position -> key index (>= M: dummy)
  at::Tensor directions_UX;  // [U, D+2] (smyrf) or [U, D] (e2lsh), float64
};

class SmyrfAttention : public AttentionMethod {
 public:
  explicit SmyrfAttention(SmyrfOptions options);
  std::string name() const override { return options_.asymmetric_transform ? "smyrf" : "e2lsh"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  std::vector<std::string> unsupported_reasons(const AttentionRequest& request) const override;
  const SmyrfOptions& options() const { return options_; }

  // Throws with the reasons when the sizes cannot be served.
  ClusterGeometry geometry(int64_t n_queries, int64_t n_keys) const;
  // Steps 1-3 on already-validated inputs (padded positions zeroed), consuming the generator
  // exactly as forward() does. Non-causal calls only.
  SmyrfClusters cluster(const AttentionInputs& inputs, at::Generator& generator) const;
  // The block of causal calls with N tokens (options' block, else q_cluster_size, at most N).
  int64_t causal_block(int64_t n_tokens) const;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  std::vector<std::string> geometry_problems(int64_t n_queries, int64_t n_keys, bool causal) const;
  // Attention over given clusters (fused kernels or twin): out [R, N, E], lse [R, N].
  std::pair<at::Tensor, at::Tensor> attend(const AttentionInputs& inputs, const at::Tensor& perm_q_RUN,
                                           const at::Tensor& perm_k_RUM, const ClusterGeometry& geometry,
                                           bool shared_keys, at::Generator& generator) const;
  AttentionOutput causal_forward(const AttentionInputs& inputs, at::Generator& generator) const;
  AttentionCost causal_cost(const AttentionShape& shape) const;
  SmyrfOptions options_;
};

}  // namespace smyrf
