// dense and sdpa (core/attention/dense.cpp, sdpa.cpp): dense against the naive float64 loop oracle
// (tests/support/attention_test_support.h) with padding and causal masks, in float64 and float32;
// its lse against logsumexp of the scaled logits; causality; finite-difference gradients; the
// entry-point validation every method shares (non-finite values, shape mismatches). sdpa against
// dense on rows that have no key to attend to. Both also run through the contract suite
// (test_method_contract.cpp: exactness at N = 97, 1013 and M != N, padding, determinism, gradients).
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>

#include "core/attention/dense.h"
#include "core/attention/sdpa.h"
#include "core/util/check.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::check_gradients_by_finite_differences;
using test::keep_mask;
using test::naive_attention_f64;
using test::nan_padded;
using test::random_inputs;
using test::run;

// ---- dense -------------------------------------------------------------------------------------

TEST(Dense, MatchesNaiveLoopFloat64WithPaddingAndCausal) {
  for (bool causal : {false, true}) {
    const int64_t N = 13, M = causal ? 13 : 17;
    AttentionInputs in = random_inputs(2, 3, N, M, 5, 7, at::kDouble, 1);
    in.causal = causal;
    in.key_keep_BM = keep_mask({M, M - 4}, M);
    const at::Tensor expected = naive_attention_f64(in);
    const auto out = run(DenseAttention(), in, 0);
    EXPECT_CLOSE(out.out_BHNE, expected, 1e-13, 1e-12);
  }
}

TEST(Dense, Float32WithinFloat32RoundingOfTheOracle) {
  AttentionInputs in = random_inputs(1, 2, 97, 61, 16, 8, at::kFloat, 2);
  const at::Tensor expected = naive_attention_f64(in);
  const auto out = run(DenseAttention(), in, 0);
  EXPECT_EQ(out.out_BHNE.scalar_type(), at::kFloat);
  EXPECT_CLOSE(out.out_BHNE, expected, 2e-6, 1e-5);
}

TEST(Dense, LseIsLogSumExpOfScaledLogits) {
  AttentionInputs in = random_inputs(1, 1, 11, 9, 4, 3, at::kDouble, 3);
  in.scale = 0.37;
  const auto out = run(DenseAttention(), in, 0);
  const at::Tensor expected = at::logsumexp(at::matmul(in.q_BHND, in.k_BHMD.transpose(-1, -2)) * 0.37, -1);
  ASSERT_TRUE(out.lse_BHN.has_value());
  EXPECT_CLOSE(*out.lse_BHN, expected, 1e-12, 1e-12);
}

TEST(Dense, CausalRowDoesNotDependOnLaterKeys) {
  AttentionInputs in = random_inputs(1, 2, 40, 40, 8, 8, at::kDouble, 4);
  in.causal = true;
  const at::Tensor before = run(DenseAttention(), in, 0).out_BHNE;
  AttentionInputs changed = in;
  changed.k_BHMD = in.k_BHMD.clone();
  changed.v_BHME = in.v_BHME.clone();
  changed.k_BHMD.narrow(2, 21, 19).normal_();
  changed.v_BHME.narrow(2, 21, 19).normal_();
  const at::Tensor after = run(DenseAttention(), changed, 0).out_BHNE;
  EXPECT_TRUE(at::equal(before.narrow(2, 0, 21), after.narrow(2, 0, 21)));
  EXPECT_FALSE(at::allclose(before.narrow(2, 21, 19), after.narrow(2, 21, 19)));
}

TEST(Gradients, DenseMatchesFiniteDifferences) { check_gradients_by_finite_differences(DenseAttention(), true); }

// ---- bad input (the validation in AttentionMethod::forward, run through dense) -------------------

TEST(BadInput, NonFiniteUnpaddedValueIsNamed) {
  AttentionInputs in = random_inputs(1, 2, 10, 10, 4, 4, at::kFloat, 1);
  in.k_BHMD[0][1][3][2] = std::numeric_limits<float>::infinity();
  try {
    run(DenseAttention(), in, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("k_BHMD contains a non-finite value (inf) at [b=0, h=1, position=3, dim=2]"),
              std::string::npos)
        << e.what();
  }
}

TEST(BadInput, ShapeMismatchNamesTheTensor) {
  AttentionInputs in = random_inputs(1, 2, 10, 12, 4, 4, at::kFloat, 1);
  in.v_BHME = at::zeros({1, 2, 11, 4});
  try {
    run(DenseAttention(), in, 0);
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find("v_BHME has shape [1, 2, 11, 4], expected [1, 2, 12, -1]"),
              std::string::npos)
        << e.what_without_backtrace();
  }
}

// ---- sdpa ----------------------------------------------------------------------------------------

TEST(Sdpa, RowsWithoutAKeyAreZerosAsInDenseAndThereIsNoLse) {
  // batch row 1 has its first 5 keys padded (NaN there): causal rows 0..4 of it have no key at all;
  // without the causal mask, batch row 1 has no real key anywhere
  const int64_t N = 37;
  for (bool causal : {false, true}) {
    AttentionInputs in = random_inputs(2, 3, N, N, 8, 5, at::kDouble, 17);
    in.causal = causal;
    at::Tensor keep = at::ones({2, N}, at::kBool);
    if (causal) {
      keep[1].narrow(0, 0, 5).fill_(false);
    } else {
      keep[1].fill_(false);
    }
    in.key_keep_BM = keep;
    in.k_BHMD = nan_padded(in.k_BHMD, keep);
    in.v_BHME = nan_padded(in.v_BHME, keep);
    const AttentionOutput out = run(SdpaAttention(), in, 0);
    EXPECT_FALSE(out.lse_BHN.has_value());
    ASSERT_TRUE(at::isfinite(out.out_BHNE).all().item<bool>()) << "causal=" << causal;
    const int64_t empty_rows = causal ? 5 : N;
    EXPECT_EQ(out.out_BHNE[1].narrow(1, 0, empty_rows).abs().max().item<double>(), 0.0) << "causal=" << causal;
    EXPECT_CLOSE(out.out_BHNE, run(DenseAttention(), in, 0).out_BHNE, 1e-10, 1e-9) << "causal=" << causal;
    EXPECT_CLOSE(out.out_BHNE, naive_attention_f64(in), 1e-10, 1e-9) << "causal=" << causal;
  }
}

}  // namespace
}  // namespace smyrf
