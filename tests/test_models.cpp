// Tests of core/models: the safetensors reader against crafted (lying) files, the BERT/RoBERTa
// encoder's masks, per-layer attention choice and weight loading, and the classification heads.
// Parity with Hugging Face transformers on real weights is tests/python/test_bert_parity.py.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/attention/registry.h"
#include "core/models/encoder.h"
#include "core/models/safetensors.h"
#include "core/models/sequence_classifier.h"
#include "core/util/check.h"
#include "support/attention_test_support.h"
#include "tests/support/fresh_dir.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

std::string temp_path(const std::string& name) {
  static const fs::path dir = test::fresh_dir("models");
  return (dir / name).string();
}

// A safetensors file from a raw header string and a data buffer: lets a test write any lie.
std::string write_raw_safetensors(const std::string& name, const std::string& header, const std::string& data,
                                  std::optional<uint64_t> claimed_header_length = std::nullopt) {
  const std::string path = temp_path(name);
  std::ofstream out(path, std::ios::binary);
  const uint64_t n = claimed_header_length.value_or(header.size());
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
  return path;
}

void expect_io_error(const std::string& path, const std::string& expected_fragment) {
  try {
    SafetensorsFile::open(path);
    FAIL() << "expected IoError containing '" << expected_fragment << "' for " << path;
  } catch (const IoError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(expected_fragment), std::string::npos) << message;
    EXPECT_NE(message.find(path), std::string::npos) << "message must name the file: " << message;
  }
}

TEST(Safetensors, RoundTripKeepsEveryDtypeShapeAndBit) {
  auto gen = test::make_generator(3);
  std::map<std::string, at::Tensor> tensors{
      {"a.f32", at::randn({3, 5}, gen)},
      {"b.f64", at::randn({7}, gen, at::kDouble)},
      {"c.f16", at::randn({2, 2, 2}, gen).to(at::kHalf)},
      {"d.bf16", at::randn({4}, gen).to(at::kBFloat16)},
      {"e.i64", at::arange(-3, 9, at::kLong).view({3, 4})},
      {"e.i32", at::arange(-3, 3, at::kInt)},
      {"e.i16", at::arange(-3, 3, at::kShort)},
      {"e.i8", at::arange(-3, 3, at::kChar)},
      {"f.u8", at::arange(0, 6, at::kByte)},
      {"g.bool", at::arange(0, 3, at::kLong).remainder(2).eq(0)},
      {"h.empty", at::zeros({0, 3})},
      {"i.scalar", at::full({}, 2.5)}};
  const std::string path = temp_path("roundtrip.safetensors");
  write_safetensors(path, tensors, {{"format", "pt"}});
  const SafetensorsFile file = SafetensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  ASSERT_EQ(file.entries().size(), tensors.size());
  for (const auto& [name, expected] : tensors) {
    const at::Tensor got = file.tensor(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type()) << name;
    EXPECT_EQ(got.sizes(), expected.sizes()) << name;
    EXPECT_TRUE(at::equal(got, expected)) << name;
  }
  try {
    file.tensor("a.f33");
    FAIL() << "unknown tensor name accepted";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("did you mean 'a.f32'"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, RefusesEveryKindOfLyingFile) {
  const std::string eight(8, '\0');
  const std::string ok_entry = R"("w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]})";
  // Sanity: the well-formed version of the crafted file opens.
  EXPECT_NO_THROW(SafetensorsFile::open(write_raw_safetensors("ok.st", "{" + ok_entry + "}", eight)));

  expect_io_error(temp_path("missing.st"), "cannot be opened");
  {
    const std::string path = temp_path("short.st");
    std::ofstream(path, std::ios::binary) << "abc";
    expect_io_error(path, "truncated");
  }
  expect_io_error(write_raw_safetensors("long_header.st", "{" + ok_entry + "}", eight, 1u << 20), "does not fit");
  expect_io_error(write_raw_safetensors("malformed.st", "{\"w\": {\"dtype\": ", eight), "not valid JSON");
  expect_io_error(write_raw_safetensors("array.st", "[1, 2]", ""), "must be a JSON object");
  expect_io_error(write_raw_safetensors("dtype.st", R"({"w": {"dtype": "F31", "shape": [2], "data_offsets": [0, 8]}})", eight),
                  "unsupported dtype 'F31'");
  expect_io_error(write_raw_safetensors("negative.st", R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", eight),
                  "non-negative integer");
  expect_io_error(write_raw_safetensors("order.st", R"({"w": {"dtype": "F32", "shape": [0], "data_offsets": [8, 0]}})", eight),
                  "out of order");
  expect_io_error(write_raw_safetensors("past.st", R"({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}})", eight),
                  "truncated");
  expect_io_error(write_raw_safetensors("length.st", R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", eight),
                  "needs 12");
  expect_io_error(write_raw_safetensors("overlap.st",
                                        R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                            "x": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                                        eight),
                  "overlap");
  expect_io_error(write_raw_safetensors("gap.st", R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", eight),
                  "belong to no tensor");
  expect_io_error(write_raw_safetensors("tail.st", "{" + ok_entry + "}", eight + "xyz"), "holds 11");
  expect_io_error(write_raw_safetensors("duplicate.st", "{" + ok_entry + ", " + ok_entry + "}", eight), "named twice");
  expect_io_error(write_raw_safetensors("fields.st", R"({"w": {"dtype": "F32", "shape": [2], "offsets": [0, 8]}})", eight),
                  "unknown field 'offsets'");
  expect_io_error(write_raw_safetensors("nodtype.st", R"({"w": {"shape": [2], "data_offsets": [0, 8]}})", eight),
                  "no dtype");
  expect_io_error(write_raw_safetensors("noname.st", R"({"": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})", eight),
                  "empty name");
  expect_io_error(write_raw_safetensors("negoffset.st", R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-1, 8]}})", eight),
                  "non-negative integer");
  expect_io_error(write_raw_safetensors("meta.st", R"({"__metadata__": {"format": 1}, )" + ok_entry + "}", eight),
                  "must be a string");
  // A zero dimension makes the byte count 0, but the other dimensions must still be sizes LibTorch can stride.
  expect_io_error(write_raw_safetensors("zero_dim.st",
                                        R"({"w": {"dtype": "F32", "shape": [0, 4294967296, 4294967296], "data_offsets": [0, 0]}})",
                                        ""),
                  "overflows");
  expect_io_error(write_raw_safetensors("empty_header.st", "", ""), "not valid JSON");
  expect_io_error(temp_path(""), "not a file");  // a directory
  // No tensors at all is a valid (empty) file.
  EXPECT_TRUE(SafetensorsFile::open(write_raw_safetensors("empty.st", "{}", "")).entries().empty());
}

EncoderConfig tiny_config(const std::string& model_type = "bert") {
  nlohmann::json j = {{"model_type", model_type}, {"vocab_size", 50},   {"hidden_size", 16},
                      {"num_hidden_layers", 2},   {"num_attention_heads", 2}, {"intermediate_size", 24},
                      {"max_position_embeddings", 40}, {"hidden_dropout_prob", 0.0}};
  return EncoderConfig::from_hf_json(j, "tiny");
}

at::Tensor random_ids(int64_t B, int64_t N, uint64_t seed, int64_t vocab = 50) {
  auto gen = test::make_generator(seed);
  return at::randint(4, vocab, {B, N}, gen, at::kLong);
}

TEST(Encoder, ConfigRefusesWhatItCannotReproduce) {
  nlohmann::json j = {{"vocab_size", 50}, {"hidden_size", 16}, {"num_hidden_layers", 2},
                      {"num_attention_heads", 3}, {"intermediate_size", 24}};
  EXPECT_THROW(EncoderConfig::from_hf_json(j, "x"), ConfigError);  // 16 not a multiple of 3
  j["num_attention_heads"] = 2;
  EXPECT_NO_THROW(EncoderConfig::from_hf_json(j, "x"));
  for (const auto& [key, value] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"position_embedding_type", "relative_key"}, {"hidden_act", "swish"}, {"model_type", "gpt2"},
           {"is_decoder", true}, {"hidden_size", "16"}}) {
    nlohmann::json bad = j;
    bad[key] = value;
    try {
      EncoderConfig::from_hf_json(bad, "cfg.json");
      ADD_FAILURE() << key << " accepted";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find(key), std::string::npos) << e.what();
    }
  }
  nlohmann::json missing = j;
  missing.erase("vocab_size");
  EXPECT_THROW(EncoderConfig::from_hf_json(missing, "x"), ConfigError);
  EXPECT_THROW(EncoderConfig::load(temp_path("no_config.json")), IoError);
}

TEST(Encoder, PaddingDoesNotChangeRealTokens) {
  for (const std::string type : {"bert", "roberta"}) {
    const EncoderConfig config = tiny_config(type);
    TransformerEncoder encoder(config, true, 7);
    encoder->eval();
    torch::NoGradGuard no_grad;
    auto gen = test::make_generator(0);
    // Row 0 alone (9 tokens) vs row 0 padded to 23 beside a longer row 1.
    at::Tensor ids = random_ids(2, 23, 1);
    ids[0].narrow(0, 9, 14).fill_(config.pad_token_id);
    const at::Tensor keep = ids.ne(config.pad_token_id);
    const EncoderOutput batch = encoder->forward(ids, std::nullopt, keep, gen, {true, {}});
    const EncoderOutput alone = encoder->forward(ids.narrow(0, 0, 1).narrow(1, 0, 9).contiguous(), std::nullopt,
                                                 keep.narrow(0, 0, 1).narrow(1, 0, 9).contiguous(), gen, {true, {}});
    ASSERT_EQ(batch.hidden_states.size(), 3u);
    for (size_t l = 0; l < batch.hidden_states.size(); ++l)
      EXPECT_TRUE(at::allclose(batch.hidden_states[l][0].narrow(0, 0, 9), alone.hidden_states[l][0], 1e-5, 1e-5))
          << type << " layer " << l;
    EXPECT_TRUE(at::allclose(batch.pooled_BC[0], alone.pooled_BC[0], 1e-5, 1e-5)) << type;
    EXPECT_TRUE(at::isfinite(batch.hidden_BNC).all().item<bool>());
  }
}

TEST(Encoder, AttentionMethodIsChosenPerLayer) {
  const EncoderConfig config = tiny_config();
  TransformerEncoder encoder(config, true, 11);
  encoder->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor ids = random_ids(2, 37, 2);
  auto run = [&](std::vector<int64_t> layers, const nlohmann::json& attention) {
    encoder->set_attention(std::shared_ptr<const AttentionMethod>(make_attention(attention)), layers);
    auto gen = test::make_generator(5);
    std::vector<std::string> seen;
    EncoderOutput out = encoder->forward(ids, std::nullopt, std::nullopt, gen, {true, {}});
    for (int64_t l = 0; l < config.num_hidden_layers; ++l) seen.push_back(encoder->attention(l).name());
    return std::make_pair(out, seen);
  };
  const auto [dense, dense_names] = run({}, {{"method", "dense"}});
  // smyrf with one cluster holding every token is exact: same hidden states as dense.
  const auto [exact, exact_names] = run({}, {{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 37}, {"k_cluster_size", 37}});
  EXPECT_EQ(exact_names, (std::vector<std::string>{"smyrf", "smyrf"}));
  EXPECT_TRUE(at::allclose(exact.hidden_BNC, dense.hidden_BNC, 1e-4, 1e-5));
  // Small clusters in layer 1 only: layer 0's output is dense's, the last layer's is not.
  run({}, {{"method", "dense"}});
  const auto [mixed, mixed_names] = run({1}, {{"method", "smyrf"}, {"n_hashes", 1}, {"q_cluster_size", 4}, {"k_cluster_size", 4}});
  EXPECT_EQ(mixed_names, (std::vector<std::string>{"dense", "smyrf"}));
  EXPECT_TRUE(at::equal(mixed.hidden_states[1], dense.hidden_states[1]));
  EXPECT_GT((mixed.hidden_BNC - dense.hidden_BNC).abs().max().item<double>(), 1e-3);
  EXPECT_THROW(encoder->set_attention(std::shared_ptr<const AttentionMethod>(make_attention({{"method", "dense"}})), {2}),
               ConfigError);
}

TEST(Encoder, ObserverSeesEveryLayersQueriesKeysAndValues) {
  const EncoderConfig config = tiny_config();
  TransformerEncoder encoder(config, true, 1);
  encoder->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor ids = random_ids(1, 13, 3);
  std::vector<int64_t> layers;
  auto gen = test::make_generator(0);
  EncoderForwardOptions options;
  options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput& out) {
    layers.push_back(layer);
    EXPECT_EQ(in.q_BHND.sizes(), (std::vector<int64_t>{1, 2, 13, 8}));
    EXPECT_DOUBLE_EQ(in.scale, 1.0 / std::sqrt(8.0));
    // The observed output is the attention of the observed inputs.
    EXPECT_TRUE(at::allclose(out.out_BHNE.to(at::kDouble), test::naive_attention_f64(in), 1e-5, 1e-6));
  };
  encoder->forward(ids, std::nullopt, std::nullopt, gen, options);
  EXPECT_EQ(layers, (std::vector<int64_t>{0, 1}));
}

TEST(Encoder, WeightsLoadByNameAndBadCheckpointsAreRefused) {
  const EncoderConfig config = tiny_config();
  TransformerEncoder source(config, true, 21);
  std::map<std::string, at::Tensor> state;
  for (const auto& item : source->named_parameters()) state["bert." + item.key()] = item.value().detach().clone();
  state["cls.predictions.bias"] = at::zeros({50});  // an MLM head the encoder does not use
  const std::string path = temp_path("tiny.safetensors");
  write_safetensors(path, state);
  const SafetensorsFile file = SafetensorsFile::open(path);
  ASSERT_EQ(encoder_prefix_in(file, config), "bert.");

  TransformerEncoder target(config, true, 99);
  const WeightLoadReport report = load_module_weights(*target, file, "bert.");
  EXPECT_EQ(report.unused, (std::vector<std::string>{"cls.predictions.bias"}));
  const at::Tensor ids = random_ids(2, 11, 4);
  auto g1 = test::make_generator(0), g2 = test::make_generator(0);
  source->eval();
  target->eval();
  EXPECT_TRUE(at::equal(source->forward(ids, std::nullopt, std::nullopt, g1).hidden_BNC,
                        target->forward(ids, std::nullopt, std::nullopt, g2).hidden_BNC));

  // TensorFlow-converted names (LayerNorm.gamma/beta) load too.
  auto renamed = state;
  renamed["bert.embeddings.LayerNorm.gamma"] = renamed["bert.embeddings.LayerNorm.weight"];
  renamed.erase("bert.embeddings.LayerNorm.weight");
  write_safetensors(temp_path("gamma.safetensors"), renamed);
  TransformerEncoder gamma(config, true, 5);
  EXPECT_NO_THROW(load_module_weights(*gamma, SafetensorsFile::open(temp_path("gamma.safetensors")), "bert."));
  EXPECT_TRUE(at::equal(gamma->named_parameters()["embeddings.LayerNorm.weight"],
                        state["bert.embeddings.LayerNorm.weight"]));

  auto expect_refused = [&](std::map<std::string, at::Tensor> tensors, const std::string& fragment) {
    const std::string bad_path = temp_path("bad.safetensors");
    write_safetensors(bad_path, tensors);
    TransformerEncoder model(config, true, 0);
    try {
      load_module_weights(*model, SafetensorsFile::open(bad_path), "bert.");
      ADD_FAILURE() << "accepted a checkpoint that should fail with '" << fragment << "'";
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto missing = state;
  missing.erase("bert.encoder.layer.1.output.dense.weight");
  expect_refused(missing, "bert.encoder.layer.1.output.dense.weight");
  auto wrong_shape = state;
  wrong_shape["bert.encoder.layer.0.attention.self.query.weight"] = at::zeros({16, 15});
  expect_refused(wrong_shape, "[16, 15]");
  auto wrong_type = state;
  wrong_type["bert.pooler.dense.bias"] = at::zeros({16}, at::kLong);
  expect_refused(wrong_type, "not a floating-point");
  std::map<std::string, at::Tensor> unrelated{{"transformer.h.0.attn.weight", at::zeros({2})}};
  write_safetensors(temp_path("gpt.safetensors"), unrelated);
  EXPECT_THROW(encoder_prefix_in(SafetensorsFile::open(temp_path("gpt.safetensors")), config), IoError);
}

TEST(Encoder, PretrainedDirectoryLoadsAndOptionalPoolerIsReported) {
  const EncoderConfig config = tiny_config("roberta");
  TransformerEncoder source(config, false, 8);
  std::map<std::string, at::Tensor> state;
  for (const auto& item : source->named_parameters()) state["roberta." + item.key()] = item.value().detach().clone();
  const fs::path dir = temp_path("roberta_dir");
  fs::create_directories(dir);
  write_safetensors((dir / "model.safetensors").string(), state);
  std::ofstream(dir / "config.json") << R"({"model_type": "roberta", "vocab_size": 50, "hidden_size": 16,
      "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 40})";
  const PretrainedEncoder loaded = load_pretrained_encoder(dir.string());
  EXPECT_FALSE(loaded.encoder->has_pooler());
  EXPECT_EQ(loaded.config.pad_token_id, 1);  // RoBERTa's default
  EXPECT_EQ(loaded.config.max_tokens(), 38);
  EXPECT_THROW(load_pretrained_encoder(temp_path("nowhere")), IoError);

  // A classifier over this encoder-only checkpoint gets a fresh head; it needs the label count.
  EXPECT_THROW(load_pretrained_classifier(dir.string(), 0, 0.1, 0), ConfigError);
  PretrainedClassifier classifier = load_pretrained_classifier(dir.string(), 3, 0.1, 0);
  EXPECT_FALSE(classifier.head_loaded);
  const at::Tensor ids = random_ids(2, 9, 6);
  auto gen = test::make_generator(0);
  torch::NoGradGuard no_grad;
  EXPECT_EQ(classifier.model->forward(ids, std::nullopt, std::nullopt, gen).sizes(), (std::vector<int64_t>{2, 3}));
}

TEST(SequenceClassifier, HeadsTrainAndSaveUnderTransformersNames) {
  for (const std::string type : {"bert", "roberta"}) {
    const EncoderConfig config = tiny_config(type);
    for (int64_t labels : {1, 3}) {
      SequenceClassifier model(config, labels, 0.0, 4);
      std::vector<std::string> names;
      for (const auto& item : model->named_parameters()) names.push_back(item.key());
      const std::string head = type == "bert" ? "classifier.weight" : "classifier.out_proj.weight";
      EXPECT_NE(std::find(names.begin(), names.end(), head), names.end()) << type;
      EXPECT_NE(std::find(names.begin(), names.end(), type + ".encoder.layer.1.output.LayerNorm.bias"), names.end());

      // A few Adam steps on a fixed batch must cut the loss: gradients reach every part.
      const at::Tensor ids = random_ids(6, 12, 9);
      const at::Tensor labels_B = labels == 1 ? at::linspace(-1, 1, 6) : at::tensor({0, 1, 2, 0, 1, 2}, at::kLong);
      torch::optim::Adam adam(model->parameters(), torch::optim::AdamOptions(1e-2));
      model->train();
      auto gen = test::make_generator(0);
      double first = 0, last = 0;
      for (int step = 0; step < 15; ++step) {
        adam.zero_grad();
        at::Tensor loss = model->loss(model->forward(ids, std::nullopt, std::nullopt, gen), labels_B);
        loss.backward();
        if (step == 0)
          for (const auto& item : model->named_parameters()) {
            // the padding row of the word embeddings is the only parameter no token of this batch reaches
            if (item.key().find("word_embeddings") != std::string::npos) continue;
            ASSERT_TRUE(item.value().grad().defined()) << item.key();
            EXPECT_GT(item.value().grad().abs().sum().item<double>(), 0.0) << type << ": no gradient reaches " << item.key();
          }
        adam.step();
        (step == 0 ? first : last) = loss.item<double>();
      }
      EXPECT_LT(last, 0.5 * first) << type << " labels " << labels;
    }
  }
  SequenceClassifier model(tiny_config(), 2, 0.0, 0);
  EXPECT_THROW(model->loss(at::zeros({3, 2}), at::tensor({0, 2, 1}, at::kLong)), c10::Error);
  EXPECT_THROW(SequenceClassifier(tiny_config(), 0, 0.1, 0), ConfigError);
}

TEST(SequenceClassifier, FineTunedCheckpointReloadsWithItsHead) {
  for (const std::string type : {"bert", "roberta"}) {
    const EncoderConfig config = tiny_config(type);
    SequenceClassifier model(config, 3, 0.0, 12);
    model->eval();
    std::map<std::string, at::Tensor> state;
    for (const auto& item : model->named_parameters()) state[item.key()] = item.value().detach().clone();
    const fs::path dir = temp_path("finetuned_" + type);
    fs::create_directories(dir);
    write_safetensors((dir / "model.safetensors").string(), state);
    std::ofstream(dir / "config.json") << fmt::format(R"({{"model_type": "{}", "vocab_size": 50, "hidden_size": 16,
        "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 24, "max_position_embeddings": 40,
        "hidden_dropout_prob": 0.0}})", type);
    PretrainedClassifier loaded = load_pretrained_classifier(dir.string(), 0, std::nullopt, 99);
    EXPECT_TRUE(loaded.head_loaded) << type;
    EXPECT_EQ(loaded.model->num_labels(), 3);
    EXPECT_TRUE(loaded.report.unused.empty()) << type;
    const at::Tensor ids = random_ids(2, 9, 6);
    auto g1 = test::make_generator(0), g2 = test::make_generator(0);
    torch::NoGradGuard no_grad;
    EXPECT_TRUE(at::equal(loaded.model->forward(ids, std::nullopt, std::nullopt, g1),
                          model->forward(ids, std::nullopt, std::nullopt, g2))) << type;
    try {
      load_pretrained_classifier(dir.string(), 2, std::nullopt, 0);
      ADD_FAILURE() << "a head of 3 labels loaded as 2";
    } catch (const ConfigError& e) {
      EXPECT_NE(std::string(e.what()).find("3 labels"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace smyrf
