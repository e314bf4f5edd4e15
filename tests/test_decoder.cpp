// TransformerDecoder (core/models/decoder.h): every causal attention method inside the model is
// causal the strict way (the tokens from position 40 on change; the logits of positions 0..39 must
// not), with the methods whose headers say otherwise checked to still say so; shapes and hidden
// states; config.json errors; set_attention's refusals; a round trip of to_hf_json. Parity with
// transformers is tests/python/test_decoder_parity.py.
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "core/attention/registry.h"
#include "core/models/decoder.h"
#include "core/util/check.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

DecoderConfig tiny(DecoderArchitecture architecture) {
  DecoderConfig c;
  c.architecture = architecture;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.num_layers = 2;
  c.num_heads = 4;
  c.num_kv_heads = architecture == DecoderArchitecture::kLlama ? 2 : 4;
  c.intermediate_size = 48;
  c.max_positions = 128;
  c.head_dim = 8;
  c.initializer_range = 0.3;  // large enough that every layer matters
  return c;
}

// Options that make each causal method approximate (not at its exactness limit) at N = 64.
const std::map<std::string, nlohmann::json>& approximate_options() {
  static const std::map<std::string, nlohmann::json> options = {
      {"dense", {}}, {"sdpa", {}}, {"polynomial", {}},
      {"smyrf", {{"n_hashes", 2}, {"q_cluster_size", 4}, {"k_cluster_size", 8}, {"block", 8}}},
      {"e2lsh", {{"n_hashes", 2}, {"q_cluster_size", 4}, {"k_cluster_size", 8}, {"block", 8}}},
      {"local", {{"window", 8}}},
      {"performer", {{"features", 16}, {"block", 8}}},
      {"polysketch", {{"sketch_size", 8}, {"block", 8}}},
      {"hyper", {{"block_size", 8}, {"sample_size", 8}, {"min_seq_len", 16}}},
      {"reformer", {{"chunk_size", 8}, {"n_rounds", 2}}}};
  return options;
}

// Which earlier rows the method's header says later tokens may move, and by how much at most
// (0: strictly causal).
double allowed_leak(const std::string& name) {
  if (name == "hyper" || name == "reformer") return INFINITY;  // hyper.h, reformer.h: sorted with later tokens
  if (name == "performer") return 1e-5;  // performer.h: one key stabiliser per row moves the rounding
  return 0.0;
}

// Later tokens change later logits and never earlier ones (beyond allowed_leak).
void expect_causal_in_model(const std::string& name, const std::shared_ptr<const AttentionMethod>& method) {
  for (const auto architecture : {DecoderArchitecture::kLlama, DecoderArchitecture::kGpt2}) {
      TransformerDecoder model(tiny(architecture), 5);
      model->eval();
      model->set_attention(method);
      const at::Tensor ids = at::randint(61, {1, 64}, test::make_generator(7), at::kLong);
      at::Tensor changed = ids.clone();
      changed.narrow(1, 40, 24).add_(13).remainder_(61);
      torch::NoGradGuard no_grad;
      auto logits = [&](const at::Tensor& x) {
        auto generator = test::make_generator(3);  // the same draws for both
        return model->forward(x, std::nullopt, generator).logits_BNV;
      };
      const at::Tensor before = logits(ids), after = logits(changed);
      const double earlier = (after.narrow(1, 0, 40) - before.narrow(1, 0, 40)).abs().max().item<double>();
      const double later = (after.narrow(1, 40, 24) - before.narrow(1, 40, 24)).abs().max().item<double>();
      if (std::isinf(allowed_leak(name)))
        EXPECT_GT(earlier, 0.0) << name << " became strictly causal: update its header and allowed_leak()";
      else
        EXPECT_LE(earlier, allowed_leak(name)) << name << ": a later token changed an earlier row";
      EXPECT_GT(later, 1e-4) << name;
  }
}

TEST(Decoder, EveryCausalMethodIsCausalInsideTheModel) {
  std::set<std::string> checked;
  for (const std::string& name : attention_method_names()) {
    nlohmann::json options = approximate_options().count(name) ? approximate_options().at(name) : nlohmann::json::object();
    options["method"] = name;
    const auto method = std::shared_ptr<const AttentionMethod>(make_attention(options));
    if (!method->capabilities().causal) continue;
    ASSERT_TRUE(approximate_options().count(name)) << name << " is causal: give it approximate options here";
    expect_causal_in_model(name, method);
    checked.insert(name);
  }
  EXPECT_TRUE(checked.count("smyrf") && checked.count("e2lsh") && checked.count("polysketch")) << checked.size();
  // PolySketchFormer's learned sketch, alone and with exact local blocks: the model's feature network
  for (const bool local_exact : {false, true}) {
    nlohmann::json options = approximate_options().at("polysketch");
    options["method"] = "polysketch";
    options["sketch"] = "learned";
    options["local_exact"] = local_exact;
    expect_causal_in_model("polysketch learned", std::shared_ptr<const AttentionMethod>(make_attention(options)));
  }
}

// The learned sketch's network is part of the model: named parameters in the chosen layers only,
// reached by the gradient, drawn from the init seed; one size per layer.
TEST(Decoder, LearnedSketchIsAModelParameterThatTrains) {
  for (const auto architecture : {DecoderArchitecture::kLlama, DecoderArchitecture::kGpt2}) {
    TransformerDecoder model(tiny(architecture), 5);
    const size_t before = model->parameters().size();
    const auto learned = std::shared_ptr<const AttentionMethod>(
        make_attention({{"method", "polysketch"}, {"sketch_size", 8}, {"block", 8}, {"sketch", "learned"}}));
    model->set_attention(learned, {1});
    EXPECT_EQ(model->parameters().size(), before + 16);  // 2 branches x 2 levels x (norm w, b, up, down)
    const std::string prefix = architecture == DecoderArchitecture::kLlama ? "model.layers.1.self_attn.sketch."
                                                                          : "transformer.h.1.attn.sketch.";
    const auto params = model->named_parameters();
    ASSERT_TRUE(params.contains(prefix + "0.0.up.weight")) << prefix;
    EXPECT_EQ(params[prefix + "1.1.down.weight"].sizes(), (at::IntArrayRef{8, 64}));
    const std::string layer0 = architecture == DecoderArchitecture::kLlama ? "model.layers.0.self_attn.sketch."
                                                                          : "transformer.h.0.attn.sketch.";
    EXPECT_FALSE(params.contains(layer0 + "0.0.up.weight")) << "layer 0 stays dense";
    model->set_attention(learned, {1});  // again: the same network, nothing added
    EXPECT_EQ(model->parameters().size(), before + 16);
    const auto other = std::shared_ptr<const AttentionMethod>(
        make_attention({{"method", "polysketch"}, {"sketch_size", 4}, {"sketch", "learned"}}));
    EXPECT_THROW(model->set_attention(other, {1}), ConfigError);
    auto generator = test::make_generator(1);
    const at::Tensor ids = at::randint(61, {2, 16}, test::make_generator(2), at::kLong);
    model->forward(ids, std::nullopt, generator).logits_BNV.square().mean().backward();
    EXPECT_GT(params[prefix + "0.0.up.weight"].grad().abs().sum().item<double>(), 0.0);
    EXPECT_GT(params[prefix + "1.0.norm.weight"].grad().abs().sum().item<double>(), 0.0);
    TransformerDecoder twin(tiny(architecture), 5);
    twin->set_attention(learned, {1});
    EXPECT_TRUE(at::equal(twin->named_parameters()[prefix + "0.1.up.weight"], params[prefix + "0.1.up.weight"]));
  }
}

TEST(Decoder, ShapesHiddenStatesAndPadding) {
  TransformerDecoder model(tiny(DecoderArchitecture::kLlama), 1);
  model->eval();
  auto generator = test::make_generator(1);
  const at::Tensor ids = at::randint(61, {2, 13}, test::make_generator(2), at::kLong);
  at::Tensor keep = at::ones({2, 13}, at::kBool);
  keep[1].narrow(0, 9, 4).fill_(false);
  const DecoderOutput out = model->forward(ids, keep, generator, {true, {}});
  EXPECT_EQ(out.logits_BNV.sizes(), (at::IntArrayRef{2, 13, 61}));
  EXPECT_EQ(out.hidden_states.size(), 3u);
  EXPECT_TRUE(at::isfinite(out.logits_BNV).all().item<bool>());
  // right padding never reaches real tokens: row 1's first 9 positions equal a run without the pads
  const DecoderOutput alone = model->forward(ids.narrow(0, 1, 1).narrow(1, 0, 9), std::nullopt, generator);
  EXPECT_CLOSE(out.logits_BNV[1].narrow(0, 0, 9), alone.logits_BNV[0], 1e-5, 1e-5);
}

// Llama's RoPE runs past max_position_embeddings (what it was trained to, as in transformers);
// GPT-2's learned position table cannot.
TEST(Decoder, OnlyGpt2IsBoundByItsPositions) {
  auto generator = test::make_generator(1);
  const at::Tensor ids = at::randint(61, {1, 200}, test::make_generator(2), at::kLong);
  TransformerDecoder llama(tiny(DecoderArchitecture::kLlama), 1);
  EXPECT_EQ(llama->forward(ids, std::nullopt, generator).logits_BNV.size(1), 200);
  TransformerDecoder gpt2(tiny(DecoderArchitecture::kGpt2), 1);
  try {
    gpt2->forward(ids, std::nullopt, generator);
    ADD_FAILURE() << "GPT-2 took 200 tokens with 128 positions";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("128 learned positions"), std::string::npos) << e.what();
  }
}

TEST(Decoder, ConfigErrorsNameTheKeyAndTheFix) {
  auto error_of = [](const nlohmann::json& j) {
    try {
      DecoderConfig::from_hf_json(j, "m/config.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const nlohmann::json llama = tiny(DecoderArchitecture::kLlama).to_hf_json();
  EXPECT_NE(error_of({{"model_type", "t5"}}).find("'model_type' = 't5' is not supported"), std::string::npos);
  nlohmann::json j = llama;
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("has no 'hidden_size'"), std::string::npos) << error_of(j);
  j = llama;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8}};
  EXPECT_NE(error_of(j).find("only the default RoPE"), std::string::npos) << error_of(j);
  j = llama;
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("must divide num_attention_heads"), std::string::npos) << error_of(j);
  j = llama;
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("SwiGLU"), std::string::npos);
  for (const auto architecture : {DecoderArchitecture::kLlama, DecoderArchitecture::kGpt2}) {
    const DecoderConfig back = DecoderConfig::from_hf_json(tiny(architecture).to_hf_json(), "round trip");
    EXPECT_EQ(back.to_hf_json(), tiny(architecture).to_hf_json());
  }
}

TEST(Decoder, SetAttentionRefusesNonCausalMethodsAndMissingLayers) {
  TransformerDecoder model(tiny(DecoderArchitecture::kGpt2), 1);
  const auto nystrom = std::shared_ptr<const AttentionMethod>(make_attention({{"method", "nystrom"}}));
  EXPECT_THROW(model->set_attention(nystrom), ConfigError);
  const auto local = std::shared_ptr<const AttentionMethod>(make_attention({{"method", "local"}}));
  EXPECT_THROW(model->set_attention(local, {2}), ConfigError);
  model->set_attention(local, {1});
  EXPECT_EQ(model->attention(0).name(), "dense");
  EXPECT_EQ(model->attention(1).name(), "local");
}

}  // namespace
}  // namespace smyrf
