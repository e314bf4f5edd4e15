// Tests of experiments/image_metrics (FID, KID, IS) and core/models/inception_fid (FID Inception-v3):
// the Fréchet distance against closed forms (identical stats, diagonal Gaussians, a common rotation),
// the unbiased polynomial MMD² against explicit double loops, KID's subsets and seed, the Inception
// Score's two limits (uniform predictions: 1; confident distinct classes: their number), and the
// network's loading errors and output shapes on random weights. scipy/numpy oracles and parity of
// the network with an independent PyTorch forward are in tests/python/test_fid.py.
// Run: smyrf_tests --gtest_filter='Fid*:Kid*:InceptionScore*'
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "core/models/inception_fid.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "experiments/metrics/image_metrics.h"
#include "support/attention_test_support.h"
#include "support/light_test_support.h"

namespace smyrf {
namespace {

// A fresh directory per test (file(name)), removed afterwards.
class FidInceptionFiles : public test::TempDirTest {};

// A random symmetric positive definite D×D matrix (float64).
at::Tensor fid_random_spd(int64_t D, at::Generator& gen) {
  const at::Tensor a = at::randn({D, D}, gen, at::kDouble);
  return at::matmul(a, a.transpose(0, 1)) / static_cast<double>(D) + 0.1 * at::eye(D, at::kDouble);
}

FeatureStats fid_stats_of(const at::Tensor& mu, const at::Tensor& sigma) { return FeatureStats{mu, sigma, 100}; }

TEST(FidFrechet, IdenticalStatisticsGiveZero) {
  auto gen = test::make_generator(1);
  const FeatureStats s = feature_stats(at::randn({60, 12}, gen, at::kDouble));
  EXPECT_NEAR(frechet_distance(s, s), 0.0, 1e-9);
  // Singular covariance (N <= D): still zero against itself.
  const FeatureStats singular = feature_stats(at::randn({5, 40}, gen, at::kDouble));
  EXPECT_NEAR(frechet_distance(singular, singular), 0.0, 1e-9);
}

TEST(FidFrechet, SingularCovariancesMatchTheNuclearNormForm) {
  // tr(sqrt(S_a S_b)) is also the sum of the singular values of sqrt(S_a) sqrt(S_b), which an SVD
  // gets to eps·σ_max even where S_a S_b is singular (N = 30 < D = 80 features).
  auto gen = test::make_generator(11);
  const FeatureStats a = feature_stats(at::randn({30, 80}, gen, at::kDouble));
  const FeatureStats b = feature_stats(at::randn({30, 80}, gen, at::kDouble) * 1.3 + 0.2);
  const auto sqrt_psd = [](const at::Tensor& s) {
    const auto [w, v] = at::linalg_eigh(s);
    return at::matmul(v * w.clamp_min(0).sqrt(), v.t());
  };
  const double nuclear = at::linalg_svdvals(at::matmul(sqrt_psd(a.sigma_CC), sqrt_psd(b.sigma_CC))).sum().item<double>();
  const at::Tensor diff = a.mu_D - b.mu_D;
  const double expected = at::dot(diff, diff).item<double>() + a.sigma_CC.trace().item<double>() +
                          b.sigma_CC.trace().item<double>() - 2 * nuclear;
  EXPECT_NEAR(frechet_distance(a, b), expected, 1e-10 * expected);
}

TEST(FidFrechet, FeatureStatsAreMeanAndUnbiasedCovariance) {
  auto gen = test::make_generator(2);
  const at::Tensor x = at::randn({7, 3}, gen, at::kFloat);
  const FeatureStats s = feature_stats(x);
  EXPECT_EQ(s.count, 7);
  EXPECT_EQ(s.mu_D.scalar_type(), at::kDouble);
  const at::Tensor xd = x.to(at::kDouble);
  auto xa = xd.accessor<double, 2>();
  for (int64_t i = 0; i < 3; ++i) {
    double mean_i = 0;
    for (int64_t n = 0; n < 7; ++n) mean_i += xa[n][i] / 7.0;
    EXPECT_NEAR(s.mu_D[i].item<double>(), mean_i, 1e-12);
    for (int64_t j = 0; j < 3; ++j) {
      double mean_j = 0, cov = 0;
      for (int64_t n = 0; n < 7; ++n) mean_j += xa[n][j] / 7.0;
      for (int64_t n = 0; n < 7; ++n) cov += (xa[n][i] - mean_i) * (xa[n][j] - mean_j) / 6.0;  // N - 1
      EXPECT_NEAR(s.sigma_CC[i][j].item<double>(), cov, 1e-12);
    }
  }
  EXPECT_THROW(feature_stats(at::randn({1, 3})), c10::Error);  // one row has no covariance
}

TEST(FidFrechet, DiagonalGaussiansMatchClosedForm) {
  // Commuting covariances: tr(sqrt(S_a S_b)) = sum sqrt(a_i b_i), so FID = |Δμ|² + sum (sqrt(a_i) - sqrt(b_i))².
  auto gen = test::make_generator(3);
  const int64_t D = 33;
  const at::Tensor a = at::rand({D}, gen, at::kDouble) * 3 + 0.01, b = at::rand({D}, gen, at::kDouble) * 3 + 0.01;
  const at::Tensor mu_a = at::randn({D}, gen, at::kDouble), mu_b = at::randn({D}, gen, at::kDouble);
  double expected = 0;
  for (int64_t i = 0; i < D; ++i) {
    const double dm = mu_a[i].item<double>() - mu_b[i].item<double>();
    const double ds = std::sqrt(a[i].item<double>()) - std::sqrt(b[i].item<double>());
    expected += dm * dm + ds * ds;
  }
  const double got = frechet_distance(fid_stats_of(mu_a, at::diag(a)), fid_stats_of(mu_b, at::diag(b)));
  EXPECT_NEAR(got, expected, 1e-10 * expected);
  // A zero variance (rank-deficient) is fine: the clamp keeps sqrt(0) = 0.
  const at::Tensor a0 = a.clone();
  a0[0] = 0.0;
  const double expected0 = expected - std::pow(std::sqrt(a[0].item<double>()) - std::sqrt(b[0].item<double>()), 2) +
                           b[0].item<double>();
  EXPECT_NEAR(frechet_distance(fid_stats_of(mu_a, at::diag(a0)), fid_stats_of(mu_b, at::diag(b))), expected0,
              1e-9 * expected0);
}

TEST(FidFrechet, InvariantUnderACommonRotationAndSymmetric) {
  auto gen = test::make_generator(4);
  const int64_t D = 24;
  const at::Tensor s_a = fid_random_spd(D, gen), s_b = fid_random_spd(D, gen);
  const at::Tensor mu_a = at::randn({D}, gen, at::kDouble), mu_b = at::randn({D}, gen, at::kDouble);
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({D, D}, gen, at::kDouble)));
  const double plain = frechet_distance(fid_stats_of(mu_a, s_a), fid_stats_of(mu_b, s_b));
  const double rotated = frechet_distance(fid_stats_of(at::matmul(q, mu_a), at::matmul(at::matmul(q, s_a), q.t())),
                                          fid_stats_of(at::matmul(q, mu_b), at::matmul(at::matmul(q, s_b), q.t())));
  EXPECT_GT(plain, 1.0);
  EXPECT_NEAR(rotated, plain, 1e-9 * plain);
  EXPECT_NEAR(frechet_distance(fid_stats_of(mu_b, s_b), fid_stats_of(mu_a, s_a)), plain, 1e-9 * plain);
}

TEST(FidFrechet, RefusesMismatchedOrBrokenStatistics) {
  auto gen = test::make_generator(5);
  const FeatureStats a = feature_stats(at::randn({10, 4}, gen)), b = feature_stats(at::randn({10, 5}, gen));
  EXPECT_THROW(frechet_distance(a, b), c10::Error);
  FeatureStats nan = a;
  nan.sigma_CC = a.sigma_CC.clone();
  nan.sigma_CC[0][0] = std::nan("");
  EXPECT_THROW(frechet_distance(a, nan), c10::Error);
  FeatureStats bad_shape = a;
  bad_shape.sigma_CC = at::zeros({4, 3}, at::kDouble);
  EXPECT_THROW(frechet_distance(a, bad_shape), c10::Error);
}

// The unbiased MMD² by its definition, one pair at a time.
double fid_mmd2_by_loops(const at::Tensor& x, const at::Tensor& y) {
  const int64_t N = x.size(0), M = y.size(0), D = x.size(1);
  auto xa = x.accessor<double, 2>();
  auto ya = y.accessor<double, 2>();
  const auto k = [&](auto& p, int64_t i, auto& q, int64_t j) {
    double dot = 0;
    for (int64_t d = 0; d < D; ++d) dot += p[i][d] * q[j][d];
    return std::pow(dot / static_cast<double>(D) + 1.0, 3);
  };
  double xx = 0, yy = 0, xy = 0;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j)
      if (i != j) xx += k(xa, i, xa, j);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < M; ++j)
      if (i != j) yy += k(ya, i, ya, j);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < M; ++j) xy += k(xa, i, ya, j);
  return xx / static_cast<double>(N * (N - 1)) + yy / static_cast<double>(M * (M - 1)) - 2 * xy / static_cast<double>(N * M);
}

TEST(Kid, UnbiasedMmdMatchesExplicitLoops) {
  // Hand-checkable: x = {(0,0), (1,1)}, y = {(1,0), (0,1)}, D = 2.
  // k(x0,x1) = 1, k(y0,y1) = 1, k(x_i, y_j) = 1 for x0, (1/2 + 1)³ = 27/8 for x1:
  // MMD² = 2·1/2 + 2·1/2 - 2·(2·1 + 2·27/8)/(2·2) = 2 - 35/8 = -19/8.
  const at::Tensor x = at::tensor({0.0, 0.0, 1.0, 1.0}, at::kDouble).view({2, 2});
  const at::Tensor y = at::tensor({1.0, 0.0, 0.0, 1.0}, at::kDouble).view({2, 2});
  EXPECT_NEAR(polynomial_mmd2_unbiased(x, y), -19.0 / 8.0, 1e-14);
  auto gen = test::make_generator(6);
  const at::Tensor a = at::randn({5, 7}, gen, at::kDouble), b = at::randn({6, 7}, gen, at::kDouble) + 0.5;
  EXPECT_NEAR(polynomial_mmd2_unbiased(a, b), fid_mmd2_by_loops(a, b), 1e-12);
  // KID with one subset of the whole (equal-sized) sets is that value, whatever the seed.
  const at::Tensor c = at::randn({5, 7}, gen, at::kDouble);
  const MeanStd whole = kid(a, c, /*subsets=*/1, /*subset_size=*/5, /*seed=*/123);
  EXPECT_NEAR(whole.mean, fid_mmd2_by_loops(a, c), 1e-12);
  EXPECT_EQ(whole.std, 0.0);
}

TEST(Kid, NearZeroForOneDistributionPositiveForShiftedOne) {
  auto gen = test::make_generator(7);
  const int64_t D = 16;
  const at::Tensor a = at::randn({300, D}, gen), b = at::randn({300, D}, gen), shifted = at::randn({300, D}, gen) + 0.5;
  const MeanStd same = kid(a, b, /*subsets=*/20, /*subset_size=*/100, /*seed=*/0);
  const MeanStd apart = kid(a, shifted, /*subsets=*/20, /*subset_size=*/100, /*seed=*/0);
  EXPECT_GT(apart.mean, 0.1);
  EXPECT_LT(std::abs(same.mean), 0.05 * apart.mean) << same.mean << " vs " << apart.mean;
  EXPECT_GT(same.std, 0.0);
  // The seed fixes the subsets; another seed draws others.
  const MeanStd again = kid(a, shifted, 20, 100, 0), other = kid(a, shifted, 20, 100, 1);
  EXPECT_EQ(again.mean, apart.mean);
  EXPECT_EQ(again.std, apart.std);
  EXPECT_NE(other.mean, apart.mean);
  // subset_size is capped at the smaller set: 50 rows against 300, each subset all of the 50.
  const MeanStd capped = kid(a.narrow(0, 0, 50), shifted, /*subsets=*/3, /*subset_size=*/1000, /*seed=*/0);
  EXPECT_GT(capped.mean, 0.1);
  EXPECT_THROW(kid(a, shifted.narrow(1, 0, 8)), c10::Error);
  EXPECT_THROW(kid(a, shifted, /*subsets=*/0), c10::Error);
}

TEST(InceptionScore, UniformPredictionsScoreOne) {
  const MeanStd is = inception_score(at::zeros({20, kFidInceptionClasses}), /*splits=*/4);
  EXPECT_NEAR(is.mean, 1.0, 1e-12);
  EXPECT_NEAR(is.std, 0.0, 1e-12);
}

TEST(InceptionScore, ConfidentDistinctClassesScoreTheirNumber) {
  // Image i certain of class 3·i: p(y|x) one-hot, p(y) uniform over the 12 classes, KL = log 12.
  const int64_t n = 12;
  at::Tensor logits = at::zeros({n, kFidInceptionClasses}, at::kDouble);
  for (int64_t i = 0; i < n; ++i) logits[i][3 * i] = 1000.0;
  EXPECT_NEAR(inception_score(logits, /*splits=*/1).mean, 12.0, 1e-9);
  const MeanStd split = inception_score(logits, /*splits=*/3);  // 4 distinct classes per split
  EXPECT_NEAR(split.mean, 4.0, 1e-9);
  EXPECT_NEAR(split.std, 0.0, 1e-9);
  EXPECT_THROW(inception_score(logits, /*splits=*/13), c10::Error);
}

// Random weights under pytorch-fid's names, as scripts/convert_fid_inception.py writes them.
std::map<std::string, at::Tensor> fid_random_weights() {
  FidInceptionV3 net;
  std::map<std::string, at::Tensor> state;
  for (const auto& item : net->named_parameters()) state[item.key()] = item.value().detach().clone();
  for (const auto& item : net->named_buffers())
    if (item.key().find("num_batches_tracked") == std::string::npos) state[item.key()] = item.value().clone();
  return state;
}

TEST(FidInception, NamesAreThoseOfPytorchFid) {
  const auto state = fid_random_weights();
  // 94 BasicConv2d (conv weight + 4 BatchNorm tensors) and fc.weight, fc.bias.
  EXPECT_EQ(state.size(), 94u * 5u + 2u);
  for (const char* key : {"Conv2d_1a_3x3.conv.weight", "Conv2d_1a_3x3.bn.running_var", "Mixed_5b.branch_pool.conv.weight",
                          "Mixed_6a.branch3x3.bn.bias", "Mixed_6e.branch7x7dbl_5.conv.weight",
                          "Mixed_7a.branch7x7x3_4.bn.running_mean", "Mixed_7c.branch3x3dbl_3b.conv.weight", "fc.weight",
                          "fc.bias"})
    EXPECT_TRUE(state.count(key)) << key;
  EXPECT_EQ(state.at("Conv2d_1a_3x3.conv.weight").sizes(), at::IntArrayRef({32, 3, 3, 3}));
  EXPECT_EQ(state.at("Mixed_5b.branch_pool.conv.weight").sizes(), at::IntArrayRef({32, 192, 1, 1}));
  EXPECT_EQ(state.at("Mixed_6b.branch7x7_2.conv.weight").sizes(), at::IntArrayRef({128, 128, 1, 7}));
  EXPECT_EQ(state.at("fc.weight").sizes(), at::IntArrayRef({1008, 2048}));
}

TEST_F(FidInceptionFiles, LoadingErrorsNameTheFileAndTheKey) {
  const std::string missing_file = file("nowhere.safetensors");
  std::string message = test::error_of<IoError>([&] { FidInceptionV3Impl::load(missing_file); });
  EXPECT_NE(message.find(missing_file), std::string::npos) << message;
  EXPECT_NE(message.find("scripts/convert_fid_inception.py"), std::string::npos) << message;
  EXPECT_NE(fid_unavailable_reason(missing_file).find("file not found"), std::string::npos);
  EXPECT_NE(fid_unavailable_reason("").find("no Inception weights file given (eval.inception_weights)"), std::string::npos);

  auto state = fid_random_weights();
  const std::string good = file("good.safetensors");
  write_safetensors(good, state, {{"source_sha256", "abc123"}});
  FidInceptionV3 net = FidInceptionV3Impl::load(good);
  EXPECT_EQ(net->weights_sha256(), "abc123");
  EXPECT_EQ(net->weights_path(), good);
  EXPECT_TRUE(at::equal(net->named_buffers()["Mixed_6c.branch7x7_1.bn.running_var"],
                        state.at("Mixed_6c.branch7x7_1.bn.running_var")));
  EXPECT_EQ(fid_unavailable_reason(good), "");

  const auto expect_key_error = [&](const std::string& name, const std::map<std::string, at::Tensor>& tensors,
                                    const std::string& key) {
    const std::string path = file(name);
    write_safetensors(path, tensors);
    const std::string m = test::error_of<IoError>([&] { FidInceptionV3Impl::load(path); });
    EXPECT_NE(m.find(path), std::string::npos) << m;
    EXPECT_NE(m.find("'" + key + "'"), std::string::npos) << m;
  };
  auto without = state;
  without.erase("Mixed_6d.branch7x7dbl_3.bn.running_mean");
  expect_key_error("missing_key.safetensors", without, "Mixed_6d.branch7x7dbl_3.bn.running_mean");
  auto wrong_shape = state;
  wrong_shape["Mixed_5c.branch5x5_2.conv.weight"] = at::zeros({64, 48, 3, 3});
  expect_key_error("wrong_shape.safetensors", wrong_shape, "Mixed_5c.branch5x5_2.conv.weight");
  auto extra = state;
  extra["AuxLogits.fc.weight"] = at::zeros({1008, 768});
  expect_key_error("extra_key.safetensors", extra, "AuxLogits.fc.weight");
  // num_batches_tracked from a raw state_dict is accepted and ignored.
  auto with_counter = state;
  with_counter["Conv2d_1a_3x3.bn.num_batches_tracked"] = at::zeros({}, at::kLong);
  const std::string counter_path = file("counter.safetensors");
  write_safetensors(counter_path, with_counter);
  EXPECT_NO_THROW(FidInceptionV3Impl::load(counter_path));
}

// He-scaled convolutions keep activations at unit scale through the 94 layers. PyTorch's default
// initialisation shrinks them layer by layer into denormal floats, which made a forward 3-10x slower.
FidInceptionV3 fid_unit_scale_net() {
  FidInceptionV3 net;
  torch::NoGradGuard no_grad;
  auto gen = test::make_generator(12);
  for (auto& item : net->named_parameters())
    if (item.value().dim() == 4) {
      const at::Tensor& w = item.value();
      const double fan_in = static_cast<double>(w.size(1) * w.size(2) * w.size(3));
      w.normal_(0.0, std::sqrt(2.0 / fan_in), gen);
    }
  return net;
}

TEST(FidInception, ForwardGivesPool3AndLogitsForAnyImageSize) {
  FidInceptionV3 net = fid_unit_scale_net();
  auto gen = test::make_generator(8);
  for (int64_t size : {64, 299}) {
    const at::Tensor images = at::rand({2, 3, size, size}, gen);
    const InceptionOutputs out = net->forward(images);
    EXPECT_EQ(out.pool3_B2048.sizes(), at::IntArrayRef({2, kFidInceptionFeatures})) << size;
    EXPECT_EQ(out.logits_B1008.sizes(), at::IntArrayRef({2, kFidInceptionClasses})) << size;
    EXPECT_EQ(out.pool3_B2048.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::isfinite(out.logits_B1008).all().item<bool>());
    EXPECT_FALSE(out.pool3_B2048.requires_grad());
  }
  EXPECT_THROW(net->forward(at::rand({2, 1, 32, 32})), c10::Error);            // one channel
  EXPECT_THROW(net->forward(at::zeros({2, 3, 32, 32}, at::kByte)), c10::Error);  // uint8 needs /255 first
}

TEST(FidInception, BatchedRunTakesUint8AndRefusesOutOfRangeFloats) {
  FidInceptionV3 net = fid_unit_scale_net();
  auto gen = test::make_generator(9);
  const at::Tensor images_u8 = at::randint(0, 256, {3, 3, 40, 36}, gen, at::kByte);
  int64_t last_done = 0;
  const InceptionBatchOutputs batched = run_inception(
      net, [&](int64_t start, int64_t count) { return images_u8.narrow(0, start, count); }, 3, /*batch=*/2,
      [&](int64_t done, int64_t total) {
        EXPECT_EQ(total, 3);
        last_done = done;
      });
  EXPECT_EQ(last_done, 3);
  const at::Tensor whole = net->forward(images_u8.to(at::kFloat) / 255.0).pool3_B2048;
  EXPECT_TRUE(at::allclose(batched.pool3_B2048, whole, /*rtol=*/1e-4, /*atol=*/1e-5));
  EXPECT_EQ(inception_features(net, images_u8.narrow(0, 0, 1), 3).sizes(), at::IntArrayRef({1, kFidInceptionFeatures}));
  const std::string m = test::error_of<c10::Error>([&] { inception_outputs(net, images_u8.to(at::kFloat) / 127.5 - 1.0, 3); });
  EXPECT_NE(m.find("(x + 1) / 2"), std::string::npos) << m;
}

TEST_F(FidInceptionFiles, StatsFilesRoundTripAndRefuseOtherNetworks) {
  auto gen = test::make_generator(10);
  const FeatureStats stats = feature_stats(at::randn({20, 6}, gen));
  FeatureSource source;
  source.feature_network = kFidInceptionNetwork;
  source.feature = "pool3";
  source.weights_sha256 = "abc";
  const std::string path = file("stats.h5");
  write_feature_stats(path, stats, source);
  const StoredFeatureStats back = read_feature_stats(path);
  EXPECT_TRUE(at::equal(back.stats.mu_D, stats.mu_D));
  EXPECT_TRUE(at::equal(back.stats.sigma_CC, stats.sigma_CC));
  EXPECT_EQ(back.stats.count, 20);
  EXPECT_EQ(back.source.weights_sha256, "abc");
  FeatureSource other = source;
  other.weights_sha256 = "def";
  EXPECT_THROW(check_same_features(source, "a.h5", other, "b.h5"), ConfigError);
  EXPECT_TRUE(check_same_features(source, "a.h5", source, "b.h5").empty());
  EXPECT_EQ(check_same_features(source, "a.h5", FeatureSource{}, "b.h5").size(), 3u);  // b records nothing
  EXPECT_THROW(read_feature_stats(file("absent.h5")), IoError);
}

}  // namespace
}  // namespace smyrf
