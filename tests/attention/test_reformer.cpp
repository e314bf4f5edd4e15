// reformer (core/attention/reformer.cpp): a chunk longer than the sequence is one chunk in which
// every query meets every key in every round, so the duplicate correction must give back dense
// attention exactly, out against the float64 loop oracle and lse against the float64 dense lse,
// for any bucket count and number of rounds, causal and not, with padding (NaN there) and M != N.
// Exactness limits at N = 97, 1013, padding, determinism, causality (values) and gradients:
// test_method_contract.cpp.
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/attention/dense.h"
#include "core/attention/reformer.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::make_generator;
using test::method_of;
using test::naive_attention_f64;
using test::padded_inputs;
using test::run;

TEST(Reformer, ChunkLongerThanTheSequenceIsOneChunkThatCountsEveryPairOnce) {
  for (bool causal : {false, true}) {
    const int64_t N = 16, M = causal ? 16 : 11;
    const AttentionInputs in = padded_inputs(N, M, causal, 23);
    const at::Tensor expected = naive_attention_f64(in);
    auto gen = make_generator(0);
    const at::Tensor dense_lse = *DenseAttention().forward(in, gen).lse_BHN;
    const at::Tensor finite = at::isfinite(dense_lse);
    for (int64_t n_buckets : {0, 1, 2, 8}) {
      for (int64_t rounds : {1, 3}) {
        const nlohmann::json options = {
            {"method", "reformer"}, {"chunk_size", 64}, {"n_rounds", rounds}, {"n_buckets", n_buckets}};
        const std::string what = fmt::format("{} causal={}", options.dump(), causal);
        const AttentionOutput out = run(*method_of(options), in, 7);
        ASSERT_TRUE(at::isfinite(out.out_BHNE).all().item<bool>()) << what;
        EXPECT_CLOSE(out.out_BHNE, expected, 1e-10, 1e-9) << what;
        ASSERT_TRUE(out.lse_BHN.has_value()) << what;
        EXPECT_TRUE(at::equal(at::isfinite(*out.lse_BHN), finite)) << what;
        EXPECT_CLOSE(out.lse_BHN->masked_select(finite), dense_lse.masked_select(finite), 1e-10, 1e-10) << what;
      }
    }
  }
}

}  // namespace
}  // namespace smyrf
