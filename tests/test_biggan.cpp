// BigGAN G and D (core/models/biggan.h): shapes at every resolution, BigGAN-PyTorch parameter names,
// spectral norm against the SVD, the attention block against a float64 oracle written here from
// the formulas, SMYRF at full memory equal to dense, determinism, gradients, save/load, config errors.
// Shape legend: B batch, Z dim_z, A image side (resolution), C channels, X positions.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/attention/registry.h"
#include "core/models/biggan.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "tests/support/cli_test_support.h"

namespace smyrf {
namespace {

BigGanConfig tiny_biggan(int64_t resolution, int64_t attn) {
  BigGanConfig c;
  c.resolution = resolution;
  c.g_ch = c.d_ch = 8;
  c.dim_z = 24;
  c.n_classes = 3;
  c.g_attn = attn;
  c.d_attn = attn;
  return c;
}

at::Tensor biggan_labels(int64_t b, int64_t n_classes) { return at::arange(b, at::kLong) % n_classes; }

TEST(BigGan, EveryResolutionGivesImagesInRangeAndOneLogitPerImage) {
  for (const int64_t r : {32, 64, 128, 256}) {
    torch::manual_seed(0);
    const BigGanConfig c = tiny_biggan(r, r / 2);
    BigGanGenerator g(c);
    BigGanDiscriminator d(c);
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    const at::Tensor images = g->forward(at::randn({2, c.dim_z}), biggan_labels(2, c.n_classes), gen);
    ASSERT_EQ(images.sizes(), (std::vector<int64_t>{2, 3, r, r})) << r;
    EXPECT_LE(images.abs().max().item<double>(), 1.0);
    EXPECT_GT(images.std().item<double>(), 0.0);
    const at::Tensor logits = d->forward(images, biggan_labels(2, c.n_classes), gen);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2})) << r;
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
    ASSERT_TRUE(g->attention());
    EXPECT_EQ(g->attention_shape(2)->n_queries, (r / 2) * (r / 2));
    EXPECT_EQ(g->attention_shape(2)->n_keys, (r / 2) * (r / 2) / 4);
  }
}

TEST(BigGan, ParameterNamesAreBigGanPyTorchStateDictKeys) {
  BigGanConfig c = tiny_biggan(128, 64);
  c.shared_dim = 16;
  c.hier = true;
  BigGanGenerator g(c);
  const auto g_state = module_state(*g);
  for (const char* key : {"shared.weight", "linear.weight", "linear.bias", "linear.u0", "linear.sv0",
                          "blocks.0.0.conv1.weight", "blocks.0.0.conv1.u0", "blocks.0.0.conv_sc.bias",
                          "blocks.0.0.bn1.gain.weight", "blocks.0.0.bn1.gain.u0", "blocks.0.0.bn1.bias.weight",
                          "blocks.0.0.bn1.stored_mean", "blocks.0.0.bn2.stored_var", "blocks.3.1.theta.weight",
                          "blocks.3.1.phi.u0", "blocks.3.1.g.weight", "blocks.3.1.o.sv0", "blocks.3.1.gamma",
                          "output_layer.0.gain", "output_layer.0.bias", "output_layer.0.stored_mean",
                          "output_layer.2.weight", "output_layer.2.bias", "output_layer.2.u0"})
    EXPECT_TRUE(g_state.count(key)) << key;
  EXPECT_EQ(g_state.at("linear.weight").sizes(), (std::vector<int64_t>{16 * 8 * 16, 24 / 6}));
  EXPECT_EQ(g_state.at("blocks.0.0.bn1.gain.weight").sizes(), (std::vector<int64_t>{16 * 8, 16 + 4}));
  EXPECT_EQ(g_state.at("blocks.3.1.theta.weight").sizes(), (std::vector<int64_t>{2, 16, 1, 1}));
  EXPECT_EQ(g_state.at("linear.u0").sizes(), (std::vector<int64_t>{1, 16 * 8 * 16}));
  EXPECT_FALSE(g_state.count("blocks.3.1.theta.bias"));  // attention convs have no bias

  BigGanDiscriminator d(c);
  const auto d_state = module_state(*d);
  for (const char* key : {"blocks.0.0.conv1.weight", "blocks.0.0.conv_sc.weight", "blocks.0.1.gamma",
                          "blocks.5.0.conv2.u0", "linear.weight", "linear.u0", "embed.weight", "embed.u0"})
    EXPECT_TRUE(d_state.count(key)) << key;
  EXPECT_EQ(d_state.at("embed.u0").sizes(), (std::vector<int64_t>{1, 3}));  // u over the classes
}

// Power iteration from u0 stored in training mode converges to the top singular value.
TEST(BigGan, SpectralNormConvergesToTheLargestSingularValue) {
  torch::manual_seed(3);
  BigGanGenerator g(tiny_biggan(32, 0));
  g->train();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  for (int i = 0; i < 60; ++i) {
    at::NoGradGuard no_grad;
    g->forward(at::randn({2, 24}), biggan_labels(2, 3), gen);
  }
  const auto state = module_state(*g);
  for (const char* name : {"blocks.1.0.conv1", "linear", "output_layer.2"}) {
    const at::Tensor w = state.at(std::string(name) + ".weight").to(at::kDouble);
    const double top = at::linalg_svdvals(w.reshape({w.size(0), -1}))[0].item<double>();
    const double sv = state.at(std::string(name) + ".sv0").item<double>();
    EXPECT_NEAR(sv, top, 1e-3 * top) << name;
  }
  // Eval mode leaves the stored state alone.
  g->eval();
  {
    at::NoGradGuard no_grad;
    g->forward(at::randn({2, 24}), biggan_labels(2, 3), gen);
  }
  EXPECT_TRUE(module_state(*g).at("linear.u0").equal(state.at("linear.u0")));
}

// The block's output from its own parameters by the formulas of biggan.h, in float64.
at::Tensor biggan_attention_oracle(const std::map<std::string, at::Tensor>& p, const at::Tensor& x_BCVW) {
  auto sn = [&](const std::string& name) {
    const at::Tensor w = p.at(name + ".weight").to(at::kDouble), u0 = p.at(name + ".u0").to(at::kDouble);
    const at::Tensor w_mat = w.reshape({w.size(0), -1});
    at::Tensor v = u0.matmul(w_mat);
    v = v / v.norm();
    at::Tensor u = v.matmul(w_mat.t());
    u = u / u.norm();
    return w_mat / v.matmul(w_mat.t()).matmul(u.t()).item<double>();
  };
  const int64_t b = x_BCVW.size(0), c = x_BCVW.size(1), h = x_BCVW.size(2), w = x_BCVW.size(3);
  const at::Tensor x_BCX = x_BCVW.reshape({b, c, h * w});
  auto conv1x1 = [&](const std::string& name, const at::Tensor& in_BCX) { return sn(name).matmul(in_BCX); };
  auto pool = [&](const at::Tensor& t_BCX) {
    return at::max_pool2d(t_BCX.reshape({b, t_BCX.size(1), h, w}), {2, 2}).reshape({b, t_BCX.size(1), -1});
  };
  const at::Tensor theta = conv1x1("theta", x_BCX), phi = pool(conv1x1("phi", x_BCX)), g = pool(conv1x1("g", x_BCX));
  const at::Tensor beta = at::softmax(theta.transpose(1, 2).matmul(phi), -1);  // [B, X, X/4], unscaled
  const at::Tensor o = conv1x1("o", g.matmul(beta.transpose(1, 2)));
  return x_BCVW + p.at("gamma").to(at::kDouble).item<double>() * o.reshape({b, c, h, w});
}

TEST(BigGan, AttentionBlockMatchesTheFloat64OracleWithBuiltInAndRegistryDense) {
  torch::manual_seed(5);
  BigGanAttention block(32, 1e-6);
  {
    at::NoGradGuard no_grad;
    block->named_parameters()["gamma"].fill_(0.7);
  }
  block->eval();
  const at::Tensor x = at::randn({2, 32, 10, 14}, at::kDouble);
  const at::Tensor expected = biggan_attention_oracle(module_state(*block), x);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  block->to(at::kDouble);
  at::NoGradGuard no_grad;
  const at::Tensor built_in = block->forward(x, gen);
  EXPECT_LT((built_in - expected).abs().max().item<double>(), 1e-10);
  block->set_method(std::shared_ptr<const AttentionMethod>(make_attention({{"method", "dense"}})));
  const at::Tensor registry = block->forward(x, gen);
  EXPECT_LT((registry - expected).abs().max().item<double>(), 1e-10);
  EXPECT_GT((registry - x).abs().max().item<double>(), 1e-3);  // gamma != 0: attention matters
}

TEST(BigGan, SmyrfAtFullMemoryEqualsDenseAndSmallClustersDifferDeterministically) {
  torch::manual_seed(7);
  const BigGanConfig c = tiny_biggan(32, 16);  // 256 queries, 64 keys
  BigGanGenerator g(c);
  {
    at::NoGradGuard no_grad;
    g->attention()->named_parameters()["gamma"].fill_(1.0);
  }
  g->eval();
  at::NoGradGuard no_grad;
  const at::Tensor z = at::randn({3, c.dim_z}), y = biggan_labels(3, c.n_classes);
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(11);
  const at::Tensor dense = g->forward(z, y, gen);
  g->attention()->set_method(std::shared_ptr<const AttentionMethod>(
      make_attention({{"method", "smyrf"}, {"n_hashes", 1}, {"q_cluster_size", 256}, {"k_cluster_size", 64}})));
  EXPECT_LT((g->forward(z, y, gen) - dense).abs().max().item<double>(), 1e-5);

  g->attention()->set_method(std::shared_ptr<const AttentionMethod>(
      make_attention({{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 32}, {"k_cluster_size", 8}})));
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(4), b = at::make_generator<at::CPUGeneratorImpl>(4);
  const at::Tensor first = g->forward(z, y, a), again = g->forward(z, y, b);
  EXPECT_TRUE(first.equal(again));  // same generator seed, same bits
  EXPECT_GT((first - dense).abs().max().item<double>(), 1e-4);  // 25% memory is not dense
}

// Gradients through SMYRF at full memory (one cluster per hash) equal those through dense attention;
// at 25% memory every parameter still gets a finite gradient.
TEST(BigGan, GradientsThroughSmyrfMatchDenseAtFullMemoryAndReachEveryParameter) {
  const BigGanConfig c = tiny_biggan(32, 16);  // 256 queries, 64 keys
  torch::manual_seed(8);
  const at::Tensor z = at::randn({4, c.dim_z}), y = biggan_labels(4, c.n_classes);
  auto gradients = [&](const nlohmann::json& attention) {
    torch::manual_seed(9);
    BigGanGenerator g(c);
    BigGanDiscriminator d(c);
    {
      at::NoGradGuard no_grad;
      g->attention()->named_parameters()["gamma"].fill_(1.0);  // gamma 0 would zero the attention's gradients
    }
    if (!attention.is_null()) g->attention()->set_method(std::shared_ptr<const AttentionMethod>(make_attention(attention)));
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
    (-d->forward(g->forward(z, y, gen), y, gen).mean()).backward();
    std::map<std::string, at::Tensor> grads;
    for (const auto& item : g->named_parameters()) {
      EXPECT_TRUE(item.value().grad().defined()) << item.key();
      if (item.value().grad().defined()) grads[item.key()] = item.value().grad().clone();
    }
    return grads;
  };
  const auto dense = gradients(nullptr);
  const auto full = gradients({{"method", "smyrf"}, {"n_hashes", 1}, {"q_cluster_size", 256}, {"k_cluster_size", 64}});
  for (const auto& [name, grad] : dense) {
    const double scale = grad.abs().max().item<double>();
    EXPECT_LE((full.at(name) - grad).abs().max().item<double>(), 1e-4 * scale + 2e-6) << name;  // float32 sums
  }
  EXPECT_GT(dense.at("blocks.1.1.theta.weight").abs().max().item<double>(), 0.0);
  const auto quarter = gradients({{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 32}, {"k_cluster_size", 8}});
  for (const auto& [name, grad] : quarter) EXPECT_TRUE(grad.isfinite().all().item<bool>()) << name;
  EXPECT_GT((quarter.at("blocks.1.1.theta.weight") - dense.at("blocks.1.1.theta.weight")).abs().max().item<double>(),
            0.0);
}

TEST(BigGan, SavedStateLoadsIntoAFreshModelAndAnotherArchitectureIsRefused) {
  const auto dir = test::fresh_dir("biggan_state");
  torch::manual_seed(2);
  const BigGanConfig c = tiny_biggan(32, 16);
  BigGanGenerator g(c);
  g->eval();
  const std::string path = (dir / "g.safetensors").string();
  write_safetensors(path, module_state(*g));
  torch::manual_seed(99);
  BigGanGenerator fresh(c);
  fresh->eval();
  load_module_state(*fresh, path);
  at::NoGradGuard no_grad;
  const at::Tensor z = at::randn({2, c.dim_z}), y = biggan_labels(2, c.n_classes);
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(1), b = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_TRUE(g->forward(z, y, a).equal(fresh->forward(z, y, b)));

  BigGanConfig other = c;
  other.g_attn = 0;
  BigGanGenerator no_attention(other);
  try {
    load_module_state(*no_attention, path);
    FAIL() << "loaded a checkpoint with an attention block into a model without one";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("blocks.1.1"), std::string::npos) << e.what();
  }
  BigGanConfig wider = c;
  wider.g_ch = 16;
  BigGanGenerator wide(wider);
  try {
    load_module_state(*wide, path);
    FAIL() << "loaded a narrower checkpoint";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
}

TEST(BigGan, ImpossibleConfigsAreRefusedWithTheFix) {
  auto error_of = [](const nlohmann::json& j) -> std::string {
    try {
      JsonReader r(j, "model", "cfg.json");
      BigGanConfig::from_json(r);
      r.finish();
    } catch (const ConfigError& e) {
      return e.what();
    }
    return "";
  };
  EXPECT_NE(error_of({{"resolution", 96}}).find("32, 64, 128, 256"), std::string::npos);
  EXPECT_NE(error_of({{"resolution", 128}, {"g_attn", 48}}).find("g_attn 48"), std::string::npos);
  EXPECT_NE(error_of({{"hier", true}}).find("shared_dim"), std::string::npos);
  EXPECT_NE(error_of({{"g_ch", 3}}).find("multiple of 8"), std::string::npos);  // 2 x 3 channels at 64
  EXPECT_EQ(error_of({{"resolution", 32}, {"g_ch", 4}, {"d_ch", 4}, {"g_attn", 16}, {"d_attn", 16}}), "");
  EXPECT_NE(error_of({{"shared_dim", 8}, {"hier", true}, {"dim_z", 100}}).find("split evenly"), std::string::npos);
  EXPECT_NE(error_of({{"g_atn", 64}}).find("g_attn"), std::string::npos);  // unknown key, with a suggestion
  EXPECT_EQ(error_of({{"resolution", 64}, {"g_attn", 32}, {"d_attn", 0}}), "");
  BigGanGenerator g(tiny_biggan(32, 16));
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_THROW(g->forward(at::randn({2, 24}), at::tensor({0, 3}, at::kLong), gen), c10::Error);  // class 3 of 3
  EXPECT_THROW(g->forward(at::randn({2, 23}), biggan_labels(2, 3), gen), c10::Error);
}

}  // namespace
}  // namespace smyrf
