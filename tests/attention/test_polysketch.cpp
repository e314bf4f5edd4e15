// polysketch and polynomial (core/attention/polysketch.cpp): polynomial attention and polysketch
// with exact tensor products (any block, local_exact) against the float64 polynomial loop oracle
// naive_polynomial_f64 with padding (NaN there) and causal masks; the causal result does not depend
// on the block size and its last row equals the non-causal one; weights are non-negative (outputs
// bounded by the values) and the sketch is unbiased for degree 2 over seeds, on the draws forward()
// returns. Padding, determinism, causality and gradients at odd sizes: test_method_contract.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/attention/polysketch.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::method_of;
using test::naive_polynomial_f64;
using test::padded_inputs;
using test::random_inputs;
using test::run;

// ---- polysketch / polynomial -----------------------------------------------------------------------

TEST(Polysketch, ExactTensorProductsGivePolynomialAttention) {
  for (bool causal : {false, true}) {
    const int64_t N = 37, M = causal ? 37 : 23;
    AttentionInputs in = padded_inputs(N, M, causal, 21);
    const at::Tensor expected = naive_polynomial_f64(in, 4);
    EXPECT_CLOSE(run(*method_of({{"method", "polynomial"}}), in, 0).out_BHNE, expected, 1e-12, 1e-10) << causal;
    for (int64_t block : {1, 7, 64}) {
      const auto exact_sketch = method_of({{"method", "polysketch"}, {"sketch", "exact"}, {"block", block}});
      EXPECT_CLOSE(run(*exact_sketch, in, 0).out_BHNE, expected, 1e-12, 1e-9) << "causal=" << causal << " block=" << block;
    }
    // local_exact with one block covering everything: every weight is exact
    if (causal) {
      const auto local = method_of({{"method", "polysketch"}, {"local_exact", true}, {"block", 64}});
      EXPECT_CLOSE(run(*local, in, 0).out_BHNE, expected, 1e-12, 1e-9);
    }
  }
}

// sketch "learned" takes phi(q), phi(k) from the caller: given the Gaussian sketch's own features
// (computed here from the draws forward() returns) it reproduces the Gaussian sketch, padding and
// causal mask included; without features it refuses, saying where they come from.
TEST(Polysketch, LearnedSketchWithTheGaussianFeaturesIsTheGaussianSketch) {
  for (bool causal : {false, true}) {
    AttentionInputs in = padded_inputs(37, causal ? 37 : 23, causal, 5);
    const int64_t r = 8;
    const AttentionOutput gaussian =
        run(*method_of({{"method", "polysketch"}, {"sketch_size", r}, {"block", 8}}), in, 3);
    const double root_scale = std::sqrt(in.scale > 0 ? in.scale : 1.0 / std::sqrt(static_cast<double>(in.q_BHND.size(3))));
    const auto features = [&](const at::Tensor& x) {
      const at::Tensor x0 = at::nan_to_num(x, 0.0) * root_scale;
      return at::matmul(x0, gaussian.aux.at("sketch_1_DF")) * at::matmul(x0, gaussian.aux.at("sketch_2_DF")) /
             std::sqrt(static_cast<double>(r));
    };
    AttentionInputs with_features = in;
    with_features.q_features_BHNF = features(in.q_BHND);
    with_features.k_features_BHMF = features(in.k_BHMD);
    const auto learned = method_of({{"method", "polysketch"}, {"sketch_size", r}, {"block", 8}, {"sketch", "learned"}});
    EXPECT_EQ(learned->capabilities().learned_features, r);
    const at::Tensor out = run(*learned, with_features, 3).out_BHNE;
    const at::Tensor rows = in.query_keep_BN ? in.query_keep_BN->view({in.q_BHND.size(0), 1, -1, 1})
                                             : at::ones({1, 1, 1, 1}, at::kBool);
    EXPECT_CLOSE(at::where(rows, out, 0.0), at::where(rows, gaussian.out_BHNE, 0.0), 1e-12, 1e-10) << causal;
    try {
      run(*learned, in, 3);
      ADD_FAILURE() << "a learned sketch without features must be refused";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("feature maps of size 8 that a model learns"), std::string::npos) << e.what();
    }
  }
}

TEST(Polysketch, ResultDoesNotDependOnBlockSizeAndCausalLastRowIsNonCausal) {
  AttentionInputs in = random_inputs(1, 2, 97, 97, 8, 5, at::kDouble, 4);
  in.causal = true;
  const at::Tensor ref = run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"block", 97}}), in, 9).out_BHNE;
  for (int64_t block : {1, 8, 32, 200})
    EXPECT_CLOSE(run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"block", block}}), in, 9).out_BHNE,
                 ref, 1e-12, 1e-9) << "block " << block;
  AttentionInputs full = in;
  full.causal = false;
  const at::Tensor non_causal = run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}}), full, 9).out_BHNE;
  EXPECT_CLOSE(ref.select(2, 96), non_causal.select(2, 96), 1e-12, 1e-9);
  // local_exact is meant to depend on the block: a block of 8 and one of 32 disagree
  in.causal = true;
  const auto local = [&](int64_t block) {
    return run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"local_exact", true}, {"block", block}}), in, 9)
        .out_BHNE;
  };
  EXPECT_GT((local(8) - local(32)).abs().max().item<double>(), 1e-6);
}

TEST(Polysketch, WeightsAreNonNegativeAndTheSketchIsUnbiasedForDegreeTwo) {
  // sub-convexity: every weight >= 0 and the +1, so |o_i| <= max_j |v_j| component-wise bound on norms
  const AttentionInputs in = random_inputs(1, 1, 64, 64, 8, 4, at::kDouble, 2, 2.0);
  const at::Tensor out = run(*method_of({{"method", "polysketch"}, {"sketch_size", 8}}), in, 1).out_BHNE;
  EXPECT_LE(out.norm(2, -1).max().item<double>(), in.v_BHME.norm(2, -1).max().item<double>() + 1e-12);
  // E<phi(q), phi(k)> = <q', k'>^2 over the sketches our forward draws: one query and one key, so
  // the output o = w v / (1 + w) gives back each draw's weight w = <phi(q), phi(k)>^2, which must
  // equal the weight computed here from the returned draws with the documented scale
  AttentionInputs pair = random_inputs(1, 1, 1, 1, 8, 1, at::kDouble, 3);
  pair.v_BHME = at::ones_like(pair.v_BHME);
  const double s = 1.0 / std::sqrt(8.0);
  const at::Tensor q = pair.q_BHND.view({8}) * std::sqrt(s), k = pair.k_BHMD.view({8}) * std::sqrt(s);
  const auto sketch = method_of({{"method", "polysketch"}, {"sketch_size", 32}});
  double mean = 0;
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const AttentionOutput o = run(*sketch, pair, 100 + t);
    const at::Tensor s1 = o.aux.at("sketch_1_DF"), s2 = o.aux.at("sketch_2_DF");
    const double inner = at::dot(at::matmul(q, s1) * at::matmul(q, s2), at::matmul(k, s1) * at::matmul(k, s2))
                             .item<double>() / 32.0;
    const double out = o.out_BHNE.item<double>();
    ASSERT_NEAR(out / (1 - out), inner * inner, 1e-9 * (1 + inner * inner)) << "draw " << t;
    mean += inner / trials;
  }
  const double target = std::pow(at::dot(q, k).item<double>(), 2);
  EXPECT_NEAR(mean, target, 0.1 * std::abs(target) + 0.05) << "unbiased for degree 2";
  // and our forward uses exactly those draws: the aux tensors are returned
  const AttentionOutput o = run(*method_of({{"method", "polysketch"}}), in, 1);
  ASSERT_TRUE(o.aux.count("sketch_1_DF") && o.aux.count("sketch_2_DF"));
  EXPECT_EQ(o.aux.at("sketch_1_DF").sizes(), (std::vector<int64_t>{8, 64}));
}

}  // namespace
}  // namespace smyrf
