// hyper (HyperAttention, Han et al. ICLR 2024), written from the algorithm of the paper and of its
// reference code.
//
// Non-causal, N >= min_seq_len (else exact):
//   1. sign-LSH: P projections [D, P] shared by queries and keys (drawn from the generator on every
//      call); bin = sum_j [x.w_j > 0] 2^j; sort key = the inverse Gray code of bin, so that adjacent
//      buckets in sorted order differ in one bit (bucket_order "gray"), or gray(bin) = bin ^ (bin>>1)
//      as the reference code sorts (bucket_order "as_released"; not a Gray order: with P = 7, 31 of
//      127 neighbours differ in more than one bit). Padded tokens sort last.
//   2. Queries and keys sorted separately (stable), cut into L = ceil(M / block_size) blocks (query
//      block c and key block c cover the same rank quantiles, balanced_clusters.h); exact attention
//      inside each diagonal block, with its lse.
//   3. m = sample_size key columns per (batch, head), uniform with replacement over the real keys;
//      a sample in the query's own block is masked (the reference double-counts it in fp32); the
//      sampled part's lse gets + log(n_real / m) (Horvitz-Thompson), so its mass estimates the
//      keys outside the block without bias.
//   4. Block and sample parts merged by a stable log-add-exp (merge_partial_attention).
// Causal (N == M), N > min_seq_len: pad N to even with one masked token, recurse on both halves
// (batched), the lower-left quadrant (second-half queries, first-half keys) by the non-causal
// algorithm, merged into the second half. Exact at N <= min_seq_len.
// Padding keys are masked everywhere (the reference attends to its zero padding with logit 0).
// Causality: no key or value after i reaches row i, but which key block a query meets in a
// lower-left quadrant depends on the hashes of the other queries there, later ones included (as in
// the reference); tests perturb keys and values only.
// Options: {"method": "hyper", "block_size": 256, "sample_size": 256, "n_projections": 7,
//           "min_seq_len": 4096, "bucket_order": "gray"}.
// Exact: block_size >= M (one block, no sampling) or N < min_seq_len (causal: N <= min_seq_len).
// Shapes: as attention_method.h; block scores [R, L, Cq, Ck], sample scores [R, L, Cq, m].
// Tested by tests/attention/test_hyper.cpp (block part = brute-force masked dense, Gray order,
// unbiased sample mass) and tests/attention/test_method_contract.cpp (exactness limits, causality
// through the recursion, padding, gradients).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

enum class BucketOrder { kGray, kAsReleased };

struct HyperOptions {
  int64_t block_size = 256;
  int64_t sample_size = 256;
  int64_t n_projections = 7;
  int64_t min_seq_len = 4096;
  BucketOrder bucket_order = BucketOrder::kGray;  // "gray" | "as_released"
  static HyperOptions from_json(JsonReader& reader);
};

class HyperAttention : public AttentionMethod {
 public:
  explicit HyperAttention(HyperOptions options);
  std::string name() const override { return "hyper"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  const HyperOptions& options() const { return options_; }

  // Sort keys of the sign-LSH buckets: x_RTD [R, T, D], projections_DJ [D, P] -> int64 [R, T].
  at::Tensor bucket_keys(const at::Tensor& x_RTD, const at::Tensor& projections_DJ) const;

  // Steps 1-4 on [R, T, X] tensors, exposed for tests; keep_* true = real token.
  PartialAttention non_causal(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                              const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RM, double scale,
                              const at::Tensor& projections_DJ, at::Generator& generator) const;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  PartialAttention causal(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                          const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RM, double scale,
                          const at::Tensor& projections_DJ, at::Generator& generator) const;
  int64_t non_causal_entries(int64_t N, int64_t M) const;
  int64_t causal_entries(int64_t N) const;
  HyperOptions options_;
};

}  // namespace smyrf
