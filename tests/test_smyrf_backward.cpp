// SMYRF training through the fused kernels (clustered_attention_cpu.h): the backward against the
// LibTorch twin (`kernel: reference`), float64 finite differences and dense attention at one
// cluster, at odd sizes with padding that holds NaN; every instruction set; attention dropout (the
// backward's mask is the forward's and the twin's, independent of the thread count, unbiased).
#include <ATen/Parallel.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <tuple>
#include <vector>

#include "core/attention/clustered_attention_cpu.h"
#include "core/attention/dense.h"
#include "core/attention/smyrf.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::keep_mask;
using test::make_generator;
using test::nan_padded;
using test::random_inputs;

std::unique_ptr<SmyrfAttention> smyrf_method(int64_t n_hashes, int64_t q_cluster, SmyrfKernel kernel,
                                             double dropout = 0.0) {
  SmyrfOptions o;
  o.n_hashes = n_hashes;
  o.q_cluster_size = q_cluster;
  o.kernel = kernel;
  o.dropout = dropout;
  return std::make_unique<SmyrfAttention>(o);
}

struct Gradients {
  at::Tensor out, lse, dq, dk, dv;
};

// The output and the gradients of sum(out * w_out) + sum(lse * w_lse) (finite lse only) through
// method.forward with the generator seeded by `seed`.
Gradients gradients_through(const AttentionMethod& method, const AttentionInputs& in, uint64_t seed,
                            const at::Tensor& w_out, const at::Tensor& w_lse) {
  AttentionInputs x = in;
  x.q_BHND = in.q_BHND.detach().clone().requires_grad_();
  x.k_BHMD = in.k_BHMD.detach().clone().requires_grad_();
  x.v_BHME = in.v_BHME.detach().clone().requires_grad_();
  const AttentionOutput o = test::run(method, x, seed);
  const at::Tensor lse = *o.lse_BHN;
  const at::Tensor finite_lse = at::where(at::isfinite(lse), lse, at::zeros({}, lse.options()));
  ((o.out_BHNE * w_out).sum() + (finite_lse * w_lse).sum()).backward();
  return {o.out_BHNE.detach(), lse.detach(), x.q_BHND.grad(), x.k_BHMD.grad(), x.v_BHME.grad()};
}

void expect_same_gradients(const Gradients& a, const Gradients& b, double atol, double rtol, const std::string& where) {
  EXPECT_CLOSE(a.out, b.out, atol, rtol) << where << " out";
  EXPECT_CLOSE(a.lse.exp(), b.lse.exp(), atol, rtol) << where << " lse";
  EXPECT_CLOSE(a.dq, b.dq, atol, rtol) << where << " dq";
  EXPECT_CLOSE(a.dk, b.dk, atol, rtol) << where << " dk";
  EXPECT_CLOSE(a.dv, b.dv, atol, rtol) << where << " dv";
}

struct Case {
  int64_t B, H, N, M, D, E, q_cluster, n_hashes;
  bool padded;
};

// Hostile sizes: N = 97 and 1013, M != N both ways, D and E off the vector width, cluster sizes
// that do not divide N, # in {1, 2, 3, 4}, padded keys and queries holding NaN.
const std::vector<Case>& hostile_cases() {
  static const std::vector<Case> cases = {{2, 2, 97, 97, 16, 12, 16, 1, true},  {1, 3, 97, 61, 40, 5, 16, 2, true},
                                          {1, 2, 1013, 1013, 64, 64, 64, 2, false}, {2, 1, 200, 77, 20, 24, 25, 3, true},
                                          {1, 2, 61, 150, 8, 3, 8, 4, false},    {2, 2, 300, 300, 64, 64, 128, 4, true}};
  return cases;
}

AttentionInputs case_inputs(const Case& c, at::ScalarType dtype, uint64_t seed) {
  AttentionInputs in = random_inputs(c.B, c.H, c.N, c.M, c.D, c.E, dtype, seed);
  if (c.padded) {
    std::vector<int64_t> key_lengths, query_lengths;
    for (int64_t b = 0; b < c.B; ++b) {
      key_lengths.push_back(c.M - b * c.M / 3 - 1);
      query_lengths.push_back(c.N - b * c.N / 4);
    }
    in.key_keep_BM = keep_mask(key_lengths, c.M);
    in.query_keep_BN = keep_mask(query_lengths, c.N);
    in.k_BHMD = nan_padded(in.k_BHMD, *in.key_keep_BM);
    in.v_BHME = nan_padded(in.v_BHME, *in.key_keep_BM);
    in.q_BHND = nan_padded(in.q_BHND, *in.query_keep_BN);
  }
  return in;
}

std::string describe(const Case& c, at::ScalarType dtype) {
  return fmt::format("{} B {} H {} N {} M {} D {} E {} C {} # {}{}", c10::toString(dtype), c.B, c.H, c.N, c.M, c.D,
                     c.E, c.q_cluster, c.n_hashes, c.padded ? " padded" : "");
}

TEST(SmyrfBackward, FusedGradientsEqualTheTwinsAtHostileSizesAndNaNNeverLeaks) {
  for (const Case& c : hostile_cases()) {
    for (auto [dtype, atol, rtol] : {std::tuple<at::ScalarType, double, double>{at::kDouble, 1e-11, 1e-9},
                                     {at::kFloat, 2e-5, 1e-4}}) {
      const AttentionInputs in = case_inputs(c, dtype, 300 + c.N);
      auto gen = make_generator(301);
      const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, dtype);
      const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, dtype);
      const Gradients fused = gradients_through(*smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused), in, 7,
                                                w_out, w_lse);
      const Gradients twin = gradients_through(*smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kReference), in, 7,
                                               w_out, w_lse);
      const std::string where = describe(c, dtype);
      expect_same_gradients(fused, twin, atol, rtol, where);
      for (const at::Tensor* g : {&fused.dq, &fused.dk, &fused.dv})
        EXPECT_TRUE(at::isfinite(*g).all().item<bool>()) << where << ": a NaN of a padded position leaked";
      if (c.padded) {  // padded keys and values get no gradient at all
        const at::Tensor pad_k = in.key_keep_BM->logical_not().view({c.B, 1, c.M, 1}).expand_as(fused.dk);
        EXPECT_EQ(fused.dk.masked_select(pad_k).abs().max().item<double>(), 0.0) << where;
      }
    }
  }
}

TEST(SmyrfBackward, EveryInstructionSetMatchesTheTwinsGradients) {
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::kAvx512, KernelIsa::kAvx2, KernelIsa::kPortable})
    if (kernel_isa_available(isa)) isas.push_back(isa);
  ASSERT_FALSE(isas.empty());
  for (const Case& c : hostile_cases()) {
    for (auto [dtype, atol, rtol] : {std::tuple<at::ScalarType, double, double>{at::kDouble, 1e-11, 1e-9},
                                     {at::kFloat, 2e-5, 1e-4}}) {
      AttentionInputs in = case_inputs(c, dtype, 400 + c.N);
      in.query_keep_BN.reset();  // the kernel itself has no query mask (forward() zeroes padded queries)
      in.q_BHND = in.q_BHND.nan_to_num(0.0);
      const int64_t R = c.B * c.H;
      auto gen = make_generator(401);
      const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, dtype);
      const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, dtype);
      const auto twin_method = smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kReference);
      const Gradients twin = gradients_through(*twin_method, in, 9, w_out, w_lse);
      AttentionInputs zeroed = in;  // cluster() wants padded positions zeroed, as forward() hands them on
      if (c.padded) {
        zeroed.k_BHMD = in.k_BHMD.nan_to_num(0.0);
        zeroed.v_BHME = in.v_BHME.nan_to_num(0.0);
      }
      zeroed.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
      auto cluster_gen = make_generator(9);
      const SmyrfClusters clusters = twin_method->cluster(zeroed, cluster_gen);
      ClusteredCall call;
      if (c.padded) call.key_keep_RM = in.key_keep_BM->unsqueeze(1).expand({c.B, c.H, c.M}).reshape({R, c.M}).contiguous();
      call.perm_q_RUN = clusters.perm_q_RUN;
      call.perm_k_RUM = clusters.perm_k_RUM;
      call.q_cluster_size = clusters.geometry.q_cluster_size;
      call.k_cluster_size = clusters.geometry.k_cluster_size;
      call.scale = zeroed.scale;
      const at::Tensor q = in.q_BHND.reshape({R, c.N, c.D}).contiguous();
      const at::Tensor k = in.k_BHMD.reshape({R, c.M, c.D}).contiguous();  // NaN where padded
      const at::Tensor v = in.v_BHME.reshape({R, c.M, c.E}).contiguous();
      for (KernelIsa isa : isas) {
        call.isa = isa;
        at::Tensor out = at::empty({R, c.N, c.E}, dtype), lse = at::empty({R, c.N}, dtype);
        clustered_attention_forward_cpu(q, k, v, call, out, lse);
        const at::Tensor dout = w_out.reshape({R, c.N, c.E}).contiguous();
        const at::Tensor dlse = at::where(at::isfinite(lse), w_lse.reshape({R, c.N}), at::zeros({}, lse.options()));
        at::Tensor dq = at::zeros_like(q), dk = at::zeros({R, c.M, c.D}, dtype), dv = at::zeros({R, c.M, c.E}, dtype);
        clustered_attention_backward_cpu(q, k, v, call, out, lse, dout, dlse, dq, dk, dv);
        const Gradients kernel{out.view({c.B, c.H, c.N, c.E}), lse.view({c.B, c.H, c.N}), dq.view_as(twin.dq),
                               dk.view_as(twin.dk), dv.view_as(twin.dv)};
        expect_same_gradients(kernel, twin, atol, rtol, std::string(kernel_isa_name(isa)) + " " + describe(c, dtype));
      }
    }
  }
}

TEST(SmyrfBackward, FusedAndTwinMatchFiniteDifferences) {
  for (int64_t n_hashes : {1, 2, 4}) {
    test::check_gradients_by_finite_differences(*smyrf_method(n_hashes, 8, SmyrfKernel::kFused), true);
    test::check_gradients_by_finite_differences(*smyrf_method(n_hashes, 8, SmyrfKernel::kReference), true);
  }
  test::check_gradients_by_finite_differences(*smyrf_method(2, 6, SmyrfKernel::kFused), false);  // 24 = 4 x 6
}

TEST(SmyrfBackward, OneClusterEqualsDenseGradients) {
  const Case c{2, 2, 97, 97, 16, 12, 97, 2, true};
  const AttentionInputs in = case_inputs(c, at::kDouble, 500);
  auto gen = make_generator(501);
  const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, at::kDouble);
  const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, at::kDouble);
  for (int64_t n_hashes : {1, 2, 4}) {
    Gradients fused = gradients_through(*smyrf_method(n_hashes, c.N, SmyrfKernel::kFused), in, 3, w_out, w_lse);
    const Gradients dense = gradients_through(DenseAttention(), in, 3, w_out, w_lse);
    // U hashes of the same single cluster: lse grows by log U, the output and its gradients do not
    // (the lse weight's gradient is spread over # copies of every key)
    fused.lse = fused.lse - std::log(static_cast<double>(n_hashes));
    expect_same_gradients(fused, dense, 1e-11, 1e-9, fmt::format("# {}", n_hashes));
  }
}

// out.sum()'s gradient is one value expanded (every stride 0): the kernel reads it in place.
TEST(SmyrfBackward, ExpandedOutputGradientIsReadThroughItsStrides) {
  const Case c{1, 3, 97, 61, 16, 12, 16, 2, true};
  const AttentionInputs in = case_inputs(c, at::kDouble, 900);
  std::vector<std::vector<at::Tensor>> grads;
  for (SmyrfKernel kernel : {SmyrfKernel::kFused, SmyrfKernel::kReference}) {
    AttentionInputs x = in;
    x.q_BHND = in.q_BHND.clone().requires_grad_();
    x.k_BHMD = in.k_BHMD.clone().requires_grad_();
    x.v_BHME = in.v_BHME.clone().requires_grad_();
    test::run(*smyrf_method(c.n_hashes, c.q_cluster, kernel), x, 5).out_BHNE.sum().backward();
    grads.push_back({x.q_BHND.grad(), x.k_BHMD.grad(), x.v_BHME.grad()});
  }
  for (size_t i = 0; i < 3; ++i) EXPECT_CLOSE(grads[0][i], grads[1][i], 1e-11, 1e-9) << "input " << i;
}

// The encoder hands q, k, v on as head views of [B, L, H*D] projections ([B, H, L, D] with strides
// (L*H*D, D, H*D, 1)): the kernels read them in place and must give what contiguous copies give.
TEST(SmyrfBackward, HeadViewsOfAProjectionAreReadInPlace) {
  const Case c{2, 3, 97, 61, 16, 12, 16, 2, true};
  const AttentionInputs base = case_inputs(c, at::kFloat, 950);
  AttentionInputs views = base;
  for (at::Tensor* x : {&views.q_BHND, &views.k_BHMD, &views.v_BHME})
    *x = x->transpose(1, 2).contiguous().transpose(1, 2);  // same values, projection layout
  ASSERT_FALSE(views.q_BHND.is_contiguous());
  auto gen = make_generator(951);
  const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, at::kFloat);
  const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, at::kFloat);
  const auto method = smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused, 0.2);
  for (bool training : {false, true}) {
    AttentionInputs a = base, b = views;
    a.training = b.training = training;
    expect_same_gradients(gradients_through(*method, b, 3, w_out, w_lse), gradients_through(*method, a, 3, w_out, w_lse),
                          0, 0, training ? "training" : "inference");
  }
}

TEST(SmyrfBackward, SecondDerivativesAreRefusedSayingWhatToUse) {
  AttentionInputs in = random_inputs(1, 2, 32, 32, 8, 8, at::kDouble, 1);
  in.q_BHND.requires_grad_();
  const at::Tensor out = test::run(*smyrf_method(2, 8, SmyrfKernel::kFused), in, 1).out_BHNE;
  try {
    torch::autograd::grad({out.pow(2).sum()}, {in.q_BHND}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    FAIL() << "expected the fused backward to refuse create_graph";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("\"kernel\": \"reference\""), std::string::npos) << e.what();
  }
  // first derivatives are fine, and the twin serves second ones
  EXPECT_NO_THROW(torch::autograd::grad({out.sum()}, {in.q_BHND}));
  const at::Tensor twin = test::run(*smyrf_method(2, 8, SmyrfKernel::kReference), in, 1).out_BHNE;
  EXPECT_NO_THROW(torch::autograd::grad({twin.pow(2).sum()}, {in.q_BHND}, {}, true, true));
}

// ---- dropout --------------------------------------------------------------------------------------

TEST(SmyrfDropout, BackwardUsesTheForwardsMaskWhichIsTheTwins) {
  for (const Case& c : {Case{2, 2, 97, 61, 16, 12, 16, 2, true}, Case{1, 1, 1013, 1013, 32, 32, 64, 3, false}}) {
    AttentionInputs in = case_inputs(c, at::kDouble, 600);
    in.training = true;
    auto gen = make_generator(601);
    const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, at::kDouble);
    const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, at::kDouble);
    const Gradients fused =
        gradients_through(*smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused, 0.25), in, 11, w_out, w_lse);
    const Gradients twin =
        gradients_through(*smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kReference, 0.25), in, 11, w_out, w_lse);
    expect_same_gradients(fused, twin, 1e-11, 1e-9, describe(c, at::kDouble) + " dropout 0.25");
    // and it does drop: the output differs from the undropped one
    AttentionInputs eval = in;
    eval.training = false;
    const Gradients undropped =
        gradients_through(*smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused, 0.25), eval, 11, w_out, w_lse);
    EXPECT_GT((fused.out - undropped.out).abs().max().item<double>(), 1e-3);
  }
}

TEST(SmyrfDropout, SameBitsForOneAndTwoThreads) {
  const int saved = at::get_num_threads();
  for (const Case& c : {Case{1, 1, 1013, 1013, 32, 32, 32, 2, false}, Case{2, 2, 97, 97, 16, 12, 16, 2, true}}) {
    AttentionInputs in = case_inputs(c, at::kFloat, 700);
    in.training = true;
    auto gen = make_generator(701);
    const at::Tensor w_out = at::randn({c.B, c.H, c.N, c.E}, gen, at::kFloat);
    const at::Tensor w_lse = at::randn({c.B, c.H, c.N}, gen, at::kFloat);
    const auto method = smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused, 0.1);
    at::set_num_threads(1);
    const Gradients one = gradients_through(*method, in, 13, w_out, w_lse);
    at::set_num_threads(2);
    const Gradients two = gradients_through(*method, in, 13, w_out, w_lse);
    const std::vector<std::pair<at::Tensor, at::Tensor>> pairs = {
        {one.out, two.out}, {one.dq, two.dq}, {one.dk, two.dk}, {one.dv, two.dv}};
    for (const auto& [a, b] : pairs)
      EXPECT_TRUE(at::equal(a, b)) << describe(c, at::kFloat);
  }
  at::set_num_threads(saved);
}

TEST(SmyrfDropout, KeepsOneMinusPOfTheKeysAndIsUnbiased) {
  const Case c{1, 2, 64, 64, 8, 6, 16, 2, false};
  const AttentionInputs in = case_inputs(c, at::kDouble, 800);
  const int64_t R = c.B * c.H;
  const double p = 0.3;
  const auto method = smyrf_method(c.n_hashes, c.q_cluster, SmyrfKernel::kFused, p);
  AttentionInputs scaled = in;
  scaled.scale = 1.0 / std::sqrt(static_cast<double>(c.D));
  auto gen = make_generator(801);
  const SmyrfClusters clusters = method->cluster(scaled, gen);
  ClusteredCall call;
  call.perm_q_RUN = clusters.perm_q_RUN;
  call.perm_k_RUM = clusters.perm_k_RUM;
  call.q_cluster_size = clusters.geometry.q_cluster_size;
  call.k_cluster_size = clusters.geometry.k_cluster_size;
  call.scale = scaled.scale;
  const at::Tensor q = in.q_BHND.reshape({R, c.N, c.D}).contiguous(), k = in.k_BHMD.reshape({R, c.M, c.D}).contiguous();
  const at::Tensor v = in.v_BHME.reshape({R, c.M, c.E}).contiguous();
  at::Tensor expected = at::empty({R, c.N, c.E}, at::kDouble), lse = at::empty({R, c.N}, at::kDouble);
  clustered_attention_forward_cpu(q, k, v, call, expected, lse);
  const int64_t seeds = 400;
  at::Tensor sum = at::zeros_like(expected), sum_sq = at::zeros_like(expected);
  int64_t kept = 0, draws = 0;
  call.dropout = p;
  for (int64_t s = 0; s < seeds; ++s) {
    call.dropout_seed = 1000003 * static_cast<uint64_t>(s) + 17;
    at::Tensor out = at::empty_like(expected);
    clustered_attention_forward_cpu(q, k, v, call, out, lse);
    sum += out;
    sum_sq += out * out;
    const at::Tensor factors = clustered_dropout_factors(call, c.N, c.M, at::kDouble);
    kept += factors.ne(0).sum().item<int64_t>();
    draws += factors.numel();
  }
  const double keep_rate = static_cast<double>(kept) / static_cast<double>(draws);
  EXPECT_NEAR(keep_rate, 1 - p, 5 * std::sqrt(p * (1 - p) / static_cast<double>(draws)));
  // the mean over seeds converges to the undropped output: its distance is the size of the
  // standard error (sum of variances / seeds), not of p * |out| as a biased scaling would give
  const at::Tensor mean = sum / seeds;
  const double sq_error = (mean - expected).pow(2).sum().item<double>();
  const double variance_of_mean = ((sum_sq / seeds - mean * mean) * seeds / (seeds - 1)).sum().item<double>() / seeds;
  EXPECT_LT(sq_error, 2.0 * variance_of_mean) << "squared error " << sq_error << ", variance of the mean "
                                              << variance_of_mean;
  EXPECT_GT(expected.pow(2).sum().item<double>() * p * p, 50 * variance_of_mean);  // the test can tell bias apart
}

}  // namespace
}  // namespace smyrf
