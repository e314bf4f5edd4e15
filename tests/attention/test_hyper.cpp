// hyper (core/attention/hyper.cpp): the sign-LSH bucket order (a true Gray order visits buckets
// one bit apart; the released order does not, with the counts the reference code gives); the block
// part against dense masked to the sorted blocks, rebuilt by an independent std::stable_sort of the
// bucket keys; the sampled part's row mass against the float64 dense lse (unbiased over seeds).
// Exactness limits, padding, causality, determinism and gradients: test_method_contract.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <bitset>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "core/attention/dense.h"
#include "core/attention/hyper.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::make_generator;
using test::random_inputs;
using test::run;

// ---- hyper -----------------------------------------------------------------------------------------

int popcount(int64_t x) { return static_cast<int>(std::bitset<64>(static_cast<uint64_t>(x)).count()); }

TEST(Hyper, TrueGrayOrderVisitsBucketsOneBitApartAndTheReleasedOrderDoesNot) {
  // projections = identity: bit j of a token is the sign of its coordinate j; one token per bin
  const int64_t P = 7, bins = int64_t{1} << P;
  at::Tensor x = at::empty({1, bins, P}, at::kDouble);
  for (int64_t bin = 0; bin < bins; ++bin)
    for (int64_t j = 0; j < P; ++j) x[0][bin][j] = (bin >> j) & 1 ? 1.0 : -1.0;
  for (const BucketOrder order : {BucketOrder::kGray, BucketOrder::kAsReleased}) {
    HyperOptions o;
    o.n_projections = P;
    o.bucket_order = order;
    const at::Tensor keys = HyperAttention(o).bucket_keys(x, at::eye(P, at::kDouble));
    const at::Tensor by_key = keys[0].argsort();
    std::map<int, int> distance_counts;
    for (int64_t s = 0; s + 1 < bins; ++s)
      ++distance_counts[popcount(by_key[s].item<int64_t>() ^ by_key[s + 1].item<int64_t>())];
    if (order == BucketOrder::kGray) {
      EXPECT_EQ(distance_counts, (std::map<int, int>{{1, 127}}));
    } else {  // the counts the reference code gives (bin ^ (bin >> 1) order)
      EXPECT_EQ(distance_counts, (std::map<int, int>{{1, 96}, {2, 24}, {3, 6}, {4, 1}}));
    }
  }
}

TEST(Hyper, BlockPartEqualsDenseMaskedToTheSortedBlocks) {
  // sample_size 0: only the diagonal blocks of the sorted order; the oracle rebuilds the blocks with
  // std::stable_sort and the rank-quantile rule, independent of the tensor code
  const int64_t N = 97, M = 61, block = 16, L = (M + block - 1) / block;
  AttentionInputs in = random_inputs(1, 2, N, M, 8, 5, at::kDouble, 12);
  HyperOptions o;
  o.block_size = block;
  o.sample_size = 0;
  o.min_seq_len = 0;
  const HyperAttention hyper(o);
  const AttentionOutput out = run(hyper, in, 4);
  const at::Tensor proj = out.aux.at("projections_DJ");
  at::Tensor expected = at::zeros_like(out.out_BHNE);
  for (int64_t h = 0; h < 2; ++h) {
    const auto blocks_of = [&](const at::Tensor& x_TD) {
      const at::Tensor keys = hyper.bucket_keys(x_TD.unsqueeze(0), proj)[0];
      const int64_t T = x_TD.size(0);
      std::vector<int64_t> order(static_cast<size_t>(T));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return keys[a].item<int64_t>() < keys[b].item<int64_t>();
      });
      std::vector<int64_t> block_of(static_cast<size_t>(T));
      for (int64_t rank = 0; rank < T; ++rank)
        for (int64_t c = 0; c < L; ++c)
          if (c * T / L <= rank && rank < (c + 1) * T / L) block_of[static_cast<size_t>(order[static_cast<size_t>(rank)])] = c;
      return block_of;
    };
    const auto q_block = blocks_of(in.q_BHND[0][h]), k_block = blocks_of(in.k_BHMD[0][h]);
    at::Tensor mask = at::zeros({N, M}, at::kBool);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < M; ++j) mask[i][j] = q_block[static_cast<size_t>(i)] == k_block[static_cast<size_t>(j)];
    const at::Tensor logits = at::matmul(in.q_BHND[0][h], in.k_BHMD[0][h].t()) / std::sqrt(8.0);
    const at::Tensor probs = at::softmax(logits.masked_fill(mask.logical_not(), -INFINITY), -1);
    expected[0][h].copy_(at::matmul(probs, in.v_BHME[0][h]));
  }
  EXPECT_CLOSE(out.out_BHNE, expected, 1e-12, 1e-10);
}

TEST(Hyper, SampledPartEstimatesTheMassOutsideTheBlockWithoutBias) {
  // E[exp(lse)] over seeds = sum_j exp(s_ij): the block part is exact and the sample part
  // estimates the rest without bias; counting in-block samples again would overshoot by ~1/L
  const AttentionInputs in = random_inputs(1, 1, 64, 64, 8, 4, at::kDouble, 14, 0.6);
  HyperOptions o;
  o.block_size = 16;
  o.sample_size = 8;
  o.min_seq_len = 0;
  const HyperAttention hyper(o);
  auto gen0 = make_generator(0);
  const at::Tensor true_mass = at::exp(*DenseAttention().forward(in, gen0).lse_BHN);
  at::Tensor mean_mass = at::zeros_like(true_mass);
  const int trials = 1500;
  for (int t = 0; t < trials; ++t) mean_mass += at::exp(*run(hyper, in, 1000 + t).lse_BHN) / trials;
  const double bias = ((mean_mass - true_mass) / true_mass).mean().item<double>();
  EXPECT_LT(std::abs(bias), 0.02) << "mean relative bias of the estimated row mass";
}

}  // namespace
}  // namespace smyrf
