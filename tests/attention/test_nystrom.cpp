// nystrom (core/attention/nystrom.cpp): the iterative Newton-Schulz pseudo-inverse converges to
// LibTorch's exact one (at::linalg_pinv), and with landmarks = N it approaches the float64 loop
// oracle. The exactness limit (exact pseudo-inverse), padding, determinism, the refusal of causal
// masks and gradients: test_method_contract.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/attention/nystrom.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::make_generator;
using test::method_of;
using test::naive_attention_f64;
using test::random_inputs;
using test::relative_error;
using test::run;

// ---- nystrom ---------------------------------------------------------------------------------------

TEST(Nystrom, IterativePseudoInverseConvergesToTheExactOne) {
  // a softmax kernel with a dominant diagonal, as Nystromformer's landmark kernels are
  const at::Tensor x = at::randn({2, 16, 8}, make_generator(5), at::kDouble);
  const at::Tensor k = at::softmax(at::matmul(x, x.transpose(-1, -2)) / 2, -1);
  EXPECT_CLOSE(newton_schulz_pinv(k, 40), at::linalg_pinv(k), 1e-8, 1e-6);
  const double err6 = (newton_schulz_pinv(k, 6) - at::linalg_pinv(k)).norm().item<double>();
  const double err12 = (newton_schulz_pinv(k, 12) - at::linalg_pinv(k)).norm().item<double>();
  EXPECT_LT(err12, err6);
  // landmarks = N with the iterative inverse approaches dense
  const AttentionInputs in = random_inputs(1, 1, 32, 32, 8, 4, at::kDouble, 2, 2.0);
  const double e =
      relative_error(run(*method_of({{"method", "nystrom"}, {"landmarks", 32}, {"pinv_iterations", 60}}), in, 0).out_BHNE,
                     naive_attention_f64(in));
  EXPECT_LT(e, 1e-6);
}

}  // namespace
}  // namespace smyrf
