// The causal-LM pipelines end to end (lm_train, lm_dropin) on the licence texts every Debian machine
// ships (/usr/share/common-licenses), and their text handling: every causal method trains and logs
// every metric, a killed run resumes to the uninterrupted result, a trained model's drop-in with
// dense attention is exact, the held-out split is by document, and bad input gives clear errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <set>

#include "datasets/lm_corpus.h"
#include "experiments/engines/language_model.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::curve_of;
using test::fresh_dir;
using test::metric_value;
using test::run_cli;
using test::run_checkpoints;
using test::smoke_config;
using test::stored_runs;
using test::write_file;

// The held-out documents are those whose path hash falls below the fraction; when none or all do,
// the at-least-one rule moves exactly one across.
void expect_split_by_path_hash(const LmCorpus& corpus, double fraction) {
  std::vector<std::string> documents = corpus.train.documents, natural;
  documents.insert(documents.end(), corpus.held_out.documents.begin(), corpus.held_out.documents.end());
  std::sort(documents.begin(), documents.end());
  for (const std::string& doc : documents)
    if (held_out_document(doc, fraction)) natural.push_back(doc);
  if (!natural.empty() && natural.size() < documents.size())
    EXPECT_EQ(corpus.held_out.documents, natural);
  else
    EXPECT_EQ(corpus.held_out.documents.size(), natural.empty() ? 1u : documents.size() - 1);
}

TEST(LmCorpus, TheHeldOutPartIsWholeDocumentsAndDuplicatesAreDropped) {
  const fs::path dir = fresh_dir("lm_corpus");
  for (int i = 0; i < 12; ++i) write_file(dir / ("doc" + std::to_string(i) + ".txt"), "document " + std::to_string(i) + "\n");
  write_file(dir / "copy.txt", "document 3\n");
  write_file(dir / "empty.txt", "");
  LmCorpusOptions options;
  options.files = {(dir / "*.txt").string()};
  options.held_out_fraction = 0.25;
  const LmCorpus corpus = load_lm_corpus(options, LmTokenizer::from_spec("bytes"), "test");
  EXPECT_EQ(corpus.duplicate_documents, 1);
  EXPECT_EQ(corpus.empty_documents, 1);
  EXPECT_EQ(corpus.train.documents.size() + corpus.held_out.documents.size(), 12u);
  EXPECT_FALSE(corpus.train.documents.empty());
  EXPECT_FALSE(corpus.held_out.documents.empty());
  expect_split_by_path_hash(corpus, 0.25);
  for (const std::string& doc : corpus.held_out.documents)
    EXPECT_EQ(std::count(corpus.train.documents.begin(), corpus.train.documents.end(), doc), 0) << doc;
  // Bytes: one id per byte, so a loss per token is a loss per byte.
  EXPECT_EQ(static_cast<int64_t>(corpus.train.ids.size()), corpus.train.bytes);
  EXPECT_DOUBLE_EQ(corpus.held_out.bytes_per_token(), 1.0);
  // The split of a document does not depend on the others.
  options.files = {(dir / "doc1*.txt").string(), (dir / "doc[2-5].txt").string()};
  const LmCorpus fewer = load_lm_corpus(options, LmTokenizer::from_spec("bytes"), "test");
  EXPECT_EQ(fewer.train.documents.size() + fewer.held_out.documents.size(), 7u);  // doc1, doc10, doc11, doc2..doc5
  expect_split_by_path_hash(fewer, 0.25);
}

TEST(LmCorpus, PatternsThatMatchNothingAndTooFewDocumentsAreNamed) {
  const fs::path dir = fresh_dir("lm_corpus_errors");
  LmCorpusOptions options;
  options.files = {(dir / "nothing*.txt").string()};
  try {
    load_lm_corpus(options, LmTokenizer::from_spec("bytes"), "config 'c.json': 'data.files'");
    ADD_FAILURE() << "expected an IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("nothing*.txt' matches no file"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'data.files'"), std::string::npos) << e.what();
  }
  write_file(dir / "one.txt", "only one document");
  options.files = {(dir / "*.txt").string()};
  EXPECT_THROW(load_lm_corpus(options, LmTokenizer::from_spec("bytes"), "test"), ConfigError);
}

TEST(LmCorpus, HeldOutWindowsDoNotOverlapAndStayInsideTheStream) {
  EXPECT_TRUE(held_out_window_starts(64, 64, 0).empty());  // one window needs 65 ids
  EXPECT_EQ(held_out_window_starts(65, 64, 0), (std::vector<int64_t>{0}));
  EXPECT_EQ(held_out_window_starts(1000, 100, 0).size(), 9u);  // (1000 - 1) / 100
  const std::vector<int64_t> spread = held_out_window_starts(1000, 100, 3);
  EXPECT_EQ(spread, (std::vector<int64_t>{0, 300, 600}));
  std::vector<int32_t> ids(1000);
  std::iota(ids.begin(), ids.end(), 0);
  const at::Tensor batch = window_batch(ids, spread, 100);
  EXPECT_EQ(batch.sizes(), (at::IntArrayRef{3, 101}));
  EXPECT_EQ(batch[2][100].item<int64_t>(), 700);
  EXPECT_THROW(window_batch(ids, {900}, 100), Error);
}

// Every causal method trains a tiny byte-level Llama: the metrics are there and consistent, the
// held-out score is on text the model never trained on, and sdpa matches dense.
TEST(LmTrain, EveryCausalMethodTrainsAndLogsEveryMetric) {
  const fs::path dir = fresh_dir("lm_train_smoke");
  const std::string out = (dir / "lm.h5").string();
  const auto result = run_cli("run --no-progress " + smoke_config(dir, "lm_train_tiny") + " --output " + out);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto runs = stored_runs(out);
  ASSERT_EQ(runs.size(), 10u);
  std::map<std::string, double> loss_of, parameters_of, fraction_of;
  for (const auto& [id, run] : runs) {
    SCOPED_TRACE(id);
    ASSERT_EQ(run.status, "complete") << run.error;
    EXPECT_EQ(metric_value(run, "train_steps"), 6);
    const double loss = metric_value(run, "eval_loss");
    EXPECT_TRUE(std::isfinite(loss));
    EXPECT_LT(loss, std::log(256.0)) << "the model is no better than uniform bytes after training";
    EXPECT_DOUBLE_EQ(metric_value(run, "bytes_per_token"), 1.0);
    EXPECT_NEAR(metric_value(run, "eval_bits_per_byte"), loss / std::log(2.0), 1e-12);
    EXPECT_NEAR(metric_value(run, "eval_ppl"), std::exp(loss), 1e-9 * std::exp(loss));
    EXPECT_EQ(metric_value(run, "eval_tokens"), 4 * 64);
    EXPECT_GT(metric_value(run, "train_steps_per_s"), 0);
    EXPECT_GT(metric_value(run, "train_tokens_per_s"), 0);
    EXPECT_GT(metric_value(run, "peak_rss_bytes"), 0);
    EXPECT_EQ(curve_of(run, "eval_step"), (std::vector<double>{3, 6}));
    EXPECT_EQ(curve_of(run, "eval_loss").back(), loss);
    ASSERT_EQ(curve_of(run, "eval_train_time_s").size(), 2u);
    EXPECT_LT(curve_of(run, "eval_train_time_s")[0], curve_of(run, "eval_train_time_s")[1]);
    EXPECT_EQ(curve_of(run, "train_loss").size(), 3u);
    // One warm-up step (ceil(0.05 * 6)), then linear decay to 0; a point holds the lr of its last step (1, 3, 5).
    const auto& lr = curve_of(run, "lr");
    ASSERT_EQ(lr.size(), 3u);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(lr[i], 0.003 * (6.0 - (2.0 * i + 1)) / 5.0, 1e-15) << i;
    EXPECT_TRUE(fs::is_regular_file(run_checkpoints(out, id) / "final" / "model.safetensors"));
    EXPECT_FALSE(fs::exists(run_checkpoints(out, id) / "ckpt")) << "keep_checkpoint is false";
    const nlohmann::json& attention = run.info.resolved_config.at("attention");
    const bool learned = attention.value("sketch", "") == "learned";
    parameters_of[learned ? "learned" : run.info.method] = metric_value(run, "parameters");
    loss_of[run.info.method] = loss;
    fraction_of[run.info.method] = metric_value(run, "memory_fraction");
  }
  EXPECT_NEAR(loss_of.at("sdpa"), loss_of.at("dense"), 1e-4);
  // the learned sketch's networks train too: 2 layers x 2 branches x (level 0: LayerNorm(16), 16 -> 64 -> 8;
  // level 1: LayerNorm(8), 8 -> 64 -> 8) at head dim 16 and r = 8
  EXPECT_EQ(parameters_of.at("learned") - parameters_of.at("dense"),
            2 * 2 * ((2 * 16 + 64 * 16 + 8 * 64) + (2 * 8 + 64 * 8 + 8 * 64)));
  EXPECT_EQ(fraction_of.at("dense"), 1.0);  // every layer dense
  EXPECT_LT(fraction_of.at("local"), 1.0);  // a window of 16 of 64 keys
}

TEST(LmTrain, KilledRunResumesToTheSameResult) {
  const fs::path dir = fresh_dir("lm_train_resume");
  const nlohmann::json extra = {
      {"attention", {{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 16}, {"k_cluster_size", 16}}},
      {"train", {{"steps", 10}, {"checkpoint_every", 1}}},
      {"data", {{"context", 128}}},
      {"sweep", nullptr}};
  const std::string config = smoke_config(dir, "lm_train_tiny", extra);
  const std::string whole = (dir / "whole.h5").string(), killed = (dir / "killed.h5").string();
  const auto uninterrupted = run_cli("run --no-progress " + config + " --output " + whole);
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;
  const int64_t step_at_kill = test::kill_run_after_checkpoint(config, killed, "run", 3);
  ASSERT_GE(step_at_kill, 3) << "no checkpoint appeared";
  ASSERT_LT(step_at_kill, 10) << "the run finished before it could be killed";
  const auto resumed = run_cli("run --no-progress " + config + " --output " + killed);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  EXPECT_GE(metric_value(stored_runs(killed).at("run"), "resumed_from_step"), 3);
  test::expect_same_results(whole, killed);
}

// lm_dropin on a model lm_train saved: dense drop-in changes nothing, the methods do.
TEST(LmDropin, ReplacingTheLastLayersOfATrainedModel) {
  const fs::path dir = fresh_dir("lm_dropin_smoke");
  const nlohmann::json train = {{"sweep", nullptr}, {"data", {{"context", 128}}}, {"train", {{"steps", 4}}}};
  const std::string trained = (dir / "trained.h5").string();
  const auto trained_run = run_cli("run --no-progress " + smoke_config(dir, "lm_train_tiny", train) + " --output " + trained);
  ASSERT_EQ(trained_run.exit_code, 0) << trained_run.output;
  const std::string model_dir = (run_checkpoints(trained, "run") / "final").string();
  const std::string out = (dir / "dropin.h5").string();
  const auto result = run_cli("run --no-progress " +
                              smoke_config(dir, "lm_dropin_tiny", {{"model", {{"path", model_dir}}}}) + " --output " + out);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto runs = stored_runs(out);
  ASSERT_EQ(runs.size(), 5u);
  for (const auto& [id, run] : runs) {
    SCOPED_TRACE(id);
    ASSERT_EQ(run.status, "complete") << run.error;
    EXPECT_EQ(metric_value(run, "context"), 128);
    EXPECT_EQ(metric_value(run, "tokens"), 2 * 128);
    EXPECT_GT(metric_value(run, "forward_time_s"), 0);
    const double replaced = metric_value(run, "replaced_layers");
    if (run.info.method == "dense") {
      EXPECT_EQ(metric_value(run, "ppl"), metric_value(run, "dense_ppl"));
      EXPECT_EQ(metric_value(run, "attention_rel_error_max"), 0.0);
      EXPECT_EQ(replaced, 1);
    } else {
      EXPECT_GT(metric_value(run, "attention_rel_error_mean"), 1e-4) << "an approximation at 128 tokens is not exact";
      EXPECT_NE(metric_value(run, "ppl"), metric_value(run, "dense_ppl"));
      EXPECT_TRUE(replaced == 1 || replaced == 2) << replaced;
    }
    EXPECT_NEAR(metric_value(run, "ppl_ratio"), metric_value(run, "ppl") / metric_value(run, "dense_ppl"), 1e-9);
  }
}

TEST(LmPipelines, BadConfigsNameTheKeyAndTheFix) {
  const fs::path dir = fresh_dir("lm_errors");
  const std::vector<std::pair<nlohmann::json, std::string>> cases = {
      {{{"model", {{"layer", 2}}}}, "model.layer"},
      {{{"model", {{"architecture", "mamba"}}}}, "model.architecture"},
      {{{"model", {{"heads", 3}}}}, "'model.heads' (3) must divide"},
      {{{"model", {{"architecture", "gpt2"}, {"kv_heads", 1}}}}, "'model.kv_heads' is for Llama"},
      {{{"model", {{"dropout", 0.1}}}}, "Llama has none"},
      {{{"model", {{"attention_layers", {5}}}}}, "'model.attention_layers' holds 5"},
      {{{"model", {{"tokenizer", "/no/such/dir"}}}}, "'model.tokenizer' is '/no/such/dir'"},
      {{{"data", {{"files", {"/no/such/*.txt"}}}}}, "'/no/such/*.txt' matches no file"},
      {{{"data", {{"held_out_fraction", 1.0}}}}, "'data.held_out_fraction' must be in (0, 1)"},
      {{{"data", {{"context", 1}}}}, "'data.context' must be >= 2"},
      {{{"train", {{"lr", -1}}}}, "'train.lr' must be > 0"},
      {{{"eval", {{"batch", 0}}}}, "'eval.batch' must be >= 1"},
      {{{"attention", {{"method", "nystrom"}}}, {"sweep", nullptr}}, "cannot serve a causal language model"},
  };
  for (const auto& [extra, fragment] : cases) {
    SCOPED_TRACE(extra.dump());
    const auto result = run_cli("validate " + smoke_config(dir, "lm_train_tiny", extra));
    EXPECT_NE(result.exit_code, 0);
    EXPECT_NE(result.output.find(fragment), std::string::npos) << result.output;
  }
  const auto dropin = run_cli("validate " + smoke_config(dir, "lm_dropin_tiny", {{"model", {{"path", dir.string()}}}}));
  EXPECT_NE(dropin.exit_code, 0);
  EXPECT_NE(dropin.output.find("holds no config.json"), std::string::npos) << dropin.output;
}

}  // namespace
}  // namespace smyrf
