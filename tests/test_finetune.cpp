// The fine-tuning pipelines (glue, imdb) on the offline MiniLM and the fixture data in tests/data:
// every GLUE task and IMDB train (the loss goes down) and log every metric, the schedule is the one
// asked for, a run killed mid-training resumes from its checkpoint to the same result as an
// uninterrupted run, the saved model scores the same when reloaded with each attention
// (interchangeability), and bad input gives clear errors.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "experiments/runner/results_store.h"
#include "experiments/metrics/task_metrics.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::fresh_dir;
using test::run_cli;
using test::write_file;
using test::curve_of;
using test::merge_into;
using test::metric_value;
using test::repo_path;
using test::run_checkpoints;
using test::stored_runs;

std::string minilm_path() {
  const std::string dir = repo_path("models/all-MiniLM-L6-v2");
  // Not a skip: setup.sh creates this link, and a test that silently passes without it tests nothing.
  EXPECT_TRUE(fs::is_regular_file(fs::path(dir) / "model.safetensors")) << dir << " is missing: run scripts/setup.sh";
  return dir;
}

// A config extending `base` (a repository path) with the model and data made absolute (ctest runs
// in the build tree), merged with `extra` top-level keys ("" or a leading-comma JSON fragment).
std::string finetune_config(const fs::path& dir, const std::string& name, const std::string& base,
                            const std::string& data_dir, const std::string& extra = "") {
  nlohmann::json config = {{"version", 1}, {"extends", repo_path(base)}, {"model", {{"path", minilm_path()}}},
                           {"data", {{"dir", repo_path(data_dir)}}}};
  if (!extra.empty()) merge_into(config, nlohmann::json::parse("{" + extra.substr(1) + "}"));
  return write_file(dir / (name + ".json"), config.dump(1));
}


TEST(Finetune, EveryGlueTaskTrainsWithSmyrfAndLogsEveryMetric) {
  const fs::path dir = fresh_dir("glue_smoke");
  // Named like the paper's SMYRF-BERT 2x16 row (the same attention), so that `report --paper` fills it.
  const std::string config = finetune_config(dir, "glue", "configs/smoke/glue_tiny.json", "tests/data/glue",
                                             R"(, "name": "paper_glue_smyrf_2x16")");
  const std::string out = (dir / "glue.h5").string();
  const auto result = run_cli("run --no-progress " + config + " --output " + out);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto runs = stored_runs(out);
  ASSERT_EQ(runs.size(), 9u);
  const auto paper = run_cli("report --paper glue " + out + " --targets " + repo_path("configs/paper/targets.json"));
  ASSERT_EQ(paper.exit_code, 0) << paper.output;
  const size_t row = paper.output.find("SMYRF-BERT 2x16");
  ASSERT_NE(row, std::string::npos) << paper.output;
  const size_t ours = paper.output.find("ours", row), line_end = paper.output.find('\n', ours);
  ASSERT_NE(ours, std::string::npos) << paper.output;
  const std::string ours_line = paper.output.substr(ours, line_end - ours);
  EXPECT_EQ(ours_line.find("not run"), std::string::npos) << "every cell and the average are filled: " << ours_line;
  for (const auto& [id, run] : runs) {
    SCOPED_TRACE(id);
    ASSERT_EQ(run.status, "complete") << run.error;
    const std::string task = run.info.resolved_config.at("data").at("task");
    // 32 fixture examples, batch 8, 3 epochs.
    EXPECT_EQ(metric_value(run, "train_steps"), 12);
    EXPECT_EQ(metric_value(run, "train_examples"), 32);
    const auto& epoch_loss = curve_of(run, "train_loss_epoch");
    ASSERT_EQ(epoch_loss.size(), 3u);
    EXPECT_LT(epoch_loss.back(), epoch_loss.front()) << "the training loss did not go down";
    // Linear warmup over ceil(0.1 * 12) = 2 steps, then linear decay to 0 at step 12.
    const auto& lr = curve_of(run, "lr");
    ASSERT_EQ(lr.size(), 12u);
    for (size_t s = 0; s < lr.size(); ++s) {
      const double expected = s < 2 ? 1e-4 * static_cast<double>(s) / 2.0 : 1e-4 * static_cast<double>(12 - s) / 10.0;
      EXPECT_NEAR(lr[s], expected, 1e-15) << "step " << s;
    }
    EXPECT_EQ(curve_of(run, "eval_epoch"), (std::vector<double>{1, 2, 3}));
    const std::vector<std::string> splits =
        task == "mnli" ? std::vector<std::string>{"_matched", "_mismatched"} : std::vector<std::string>{""};
    for (const std::string& name : task_metric_names(task))
      for (const std::string& split : splits) {
        EXPECT_TRUE(std::isfinite(metric_value(run, name + split))) << name + split;
        EXPECT_TRUE(std::isfinite(metric_value(run, name + split + "_with_dense"))) << name + split;
        EXPECT_EQ(curve_of(run, "eval_" + name + split).size(), 3u);
        EXPECT_EQ(curve_of(run, "eval_" + name + split).back(), metric_value(run, name + split));
      }
    EXPECT_EQ(metric_value(run, "eval_examples"), task == "mnli" ? 24 : 16);
    // SMYRF 2 hashes x 16 at 64 tokens computes 2 * 16 / 64 of dense's scores.
    EXPECT_DOUBLE_EQ(metric_value(run, "memory_fraction"), 0.5);
    EXPECT_GT(metric_value(run, "train_tokens_per_s"), 0);
    EXPECT_GT(metric_value(run, "peak_rss_bytes"), 0);
    EXPECT_EQ(metric_value(run, "resumed_from_step"), 0);
    const fs::path run_dir = run_checkpoints(out, id);
    EXPECT_TRUE(fs::is_regular_file(run_dir / "final" / "model.safetensors"));
    EXPECT_TRUE(fs::is_regular_file(run_dir / "final" / "config.json"));
    EXPECT_FALSE(fs::exists(run_dir / "ckpt")) << "checkpoints are removed after a completed run";
  }
}

TEST(Finetune, ImdbTrainsDenseAndIsScoredWithSmyrf) {
  const fs::path dir = fresh_dir("imdb_smoke");
  const std::string config = finetune_config(dir, "imdb", "configs/smoke/imdb_tiny.json", "tests/data/aclImdb");
  const std::string out = (dir / "imdb.h5").string();
  const auto result = run_cli("run --no-progress " + config + " --output " + out);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto runs = stored_runs(out);
  ASSERT_EQ(runs.size(), 1u);
  const StoredRun& run = runs.begin()->second;
  ASSERT_EQ(run.status, "complete") << run.error;
  const auto& epoch_loss = curve_of(run, "train_loss_epoch");
  ASSERT_EQ(epoch_loss.size(), 3u);
  EXPECT_LT(epoch_loss.back(), epoch_loss.front());
  for (const char* name : {"accuracy", "accuracy_with_smyrf", "eval_loss", "eval_loss_with_smyrf"})
    EXPECT_TRUE(std::isfinite(metric_value(run, name))) << name;
  EXPECT_EQ(metric_value(run, "memory_fraction"), 1.0);
  EXPECT_EQ(metric_value(run, "train_examples"), 24);
  EXPECT_EQ(metric_value(run, "eval_examples"), 24);
}

// Whether a metric is a measurement of time or memory (which differ between any two runs).
bool is_measured(const std::string& name) {
  for (const char* part : {"time", "per_s", "rss", "bytes", "peak"})
    if (name.find(part) != std::string::npos) return true;
  return false;
}

// Training through the fused SMYRF kernels (forward, backward and attention dropout 0.1 from
// config.json) ends where training through the LibTorch twin ends, up to float32 rounding (4.9e-7
// relative at most when written; 1e-5 allowed); the values are printed. IMDB trains dense and scores with SMYRF both ways.
TEST(Finetune, FusedSmyrfTrainsToTheTwinsMetrics) {
  const fs::path dir = fresh_dir("fused_vs_twin");
  const std::string glue = finetune_config(dir, "glue", "configs/smoke/glue_tiny.json", "tests/data/glue",
                                           R"(, "sweep": {"data.task": ["rte", "stsb"],
                                                "attention.kernel": ["fused", "reference"]})");
  const std::string imdb = finetune_config(dir, "imdb", "configs/smoke/imdb_tiny.json", "tests/data/aclImdb",
                                           R"(, "eval": {"attention_variants": {
      "smyrf_twin": {"method": "smyrf", "n_hashes": 2, "q_cluster_size": 32, "k_cluster_size": 32, "kernel": "reference"}}})");
  for (const std::string& config : {glue, imdb}) {
    const auto result = run_cli("run --no-progress " + config + " --output " + config + ".h5");
    ASSERT_EQ(result.exit_code, 0) << result.output;
  }
  std::vector<std::pair<StoredRun, StoredRun>> pairs;  // (fused, twin)
  const auto glue_runs = stored_runs(glue + ".h5");
  for (const char* task : {"rte", "stsb"})
    pairs.emplace_back(glue_runs.at(fmt::format("kernel=fused,task={}", task)),
                       glue_runs.at(fmt::format("kernel=reference,task={}", task)));
  double worst = 0;
  for (const auto& [fused, twin] : pairs) {
    ASSERT_EQ(fused.status, "complete") << fused.error;
    ASSERT_EQ(twin.status, "complete") << twin.error;
    for (const auto& [name, m] : fused.result.metrics) {
      if (is_measured(name)) continue;
      const double other = metric_value(twin, name), diff = std::abs(m.value - other) / std::max(1.0, std::abs(other));
      worst = std::max(worst, diff);
      std::printf("%s %s: fused %.9g twin %.9g\n", fused.info.run_id.c_str(), name.c_str(), m.value, other);
      EXPECT_LE(diff, 1e-5) << fused.info.run_id << " " << name << ": fused " << m.value << ", twin " << other;
    }
    const auto &loss_fused = curve_of(fused, "train_loss"), &loss_twin = curve_of(twin, "train_loss");
    ASSERT_EQ(loss_fused.size(), loss_twin.size());
    for (size_t i = 0; i < loss_fused.size(); ++i)
      EXPECT_NEAR(loss_fused[i], loss_twin[i], 1e-5 * std::max(1.0, std::abs(loss_twin[i]))) << "step " << i;
  }
  std::printf("largest relative metric difference, fused vs twin training: %.3g\n", worst);
  const StoredRun scored = stored_runs(imdb + ".h5").begin()->second;
  ASSERT_EQ(scored.status, "complete") << scored.error;
  EXPECT_EQ(metric_value(scored, "accuracy_with_smyrf"), metric_value(scored, "accuracy_with_smyrf_twin"));
  EXPECT_NEAR(metric_value(scored, "eval_loss_with_smyrf"), metric_value(scored, "eval_loss_with_smyrf_twin"), 1e-5);
}

// A run killed mid-training (SIGKILL to the runner, whose worker dies with it) continues from its last
// checkpoint and ends exactly where an uninterrupted run ends; its saved model, reloaded, scores the
// same with the training attention and with dense (interchangeability through the saved weights).
TEST(Finetune, KilledRunResumesToTheSameResultAndItsSavedModelScoresAlike) {
  const fs::path dir = fresh_dir("finetune_resume");
  const std::string extra = R"(, "data": {"task": "rte"},
      "attention": {"method": "smyrf", "n_hashes": 2, "q_cluster_size": 16, "k_cluster_size": 16, "dropout": 0.1},
      "train": {"epochs": 2, "checkpoint_every": 1}, "sweep": null)";
  const std::string config = finetune_config(dir, "resume", "configs/smoke/glue_tiny.json", "tests/data/glue", extra);
  const std::string whole = (dir / "whole.h5").string(), killed = (dir / "killed.h5").string();
  const auto uninterrupted = run_cli("run --no-progress " + config + " --output " + whole);
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;

  const int64_t step_at_kill = test::kill_run_after_checkpoint(config, killed, "run", 3);
  ASSERT_GE(step_at_kill, 3) << "no checkpoint appeared";
  ASSERT_LT(step_at_kill, 8) << "the run finished before it could be killed";
  ASSERT_EQ(stored_runs(killed).at("run").status, "running");

  const auto resumed = run_cli("run --no-progress " + config + " --output " + killed);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const StoredRun a = stored_runs(whole).at("run"), b = stored_runs(killed).at("run");
  ASSERT_EQ(b.status, "complete") << b.error;
  EXPECT_GE(metric_value(b, "resumed_from_step"), 3);
  for (const auto& [name, m] : a.result.metrics) {
    const bool measured = name.find("time") != std::string::npos || name.find("per_s") != std::string::npos ||
                          name.find("rss") != std::string::npos || name == "resumed_from_step";
    if (!measured) EXPECT_EQ(metric_value(b, name), m.value) << name;
  }
  for (const char* name : {"train_loss", "lr", "eval_accuracy", "eval_loss", "train_loss_epoch"})
    EXPECT_EQ(curve_of(b, name), curve_of(a, name)) << name;

  // The exported model, evaluated only (epochs 0), with the training attention and with dense.
  const std::string final_dir = (run_checkpoints(whole, "run") / "final").string();
  for (const auto& [attention, suffix] :
       std::vector<std::pair<std::string, std::string>>{{R"({"method": "smyrf", "n_hashes": 2, "q_cluster_size": 16,
                                                           "k_cluster_size": 16, "dropout": 0.1})", ""},
                                                        {R"({"method": "dense"})", "_with_dense"}}) {
    // Written out in full (no extends: attention objects would merge key by key). Same seed, eval
    // batch and length as the training config, so the evaluation draws and padding are the same.
    const std::string eval_config = write_file(
        dir / "eval.json",
        fmt::format(R"({{"version": 1, "name": "eval_only", "pipeline": "glue", "seed": 7, "model": {{"path": "{}"}},
                        "attention": {}, "data": {{"dir": "{}", "task": "rte", "max_seq_len": 64}},
                        "train": {{"epochs": 0}}, "eval": {{"batch": 16}}, "output": {{"path": "unused.h5"}}}})",
                    final_dir, attention, repo_path("tests/data/glue")));
    const std::string out = (dir / ("eval" + suffix + ".h5")).string();
    const auto evaluated = run_cli("run --no-progress " + eval_config + " --output " + out);
    ASSERT_EQ(evaluated.exit_code, 0) << evaluated.output;
    const StoredRun e = stored_runs(out).at("run");
    ASSERT_EQ(e.status, "complete") << e.error;
    EXPECT_EQ(metric_value(e, "accuracy"), metric_value(a, "accuracy" + suffix)) << suffix;
    EXPECT_EQ(metric_value(e, "eval_loss"), metric_value(a, "eval_loss" + suffix)) << suffix;
    EXPECT_EQ(metric_value(e, "train_steps"), 0);
  }
}

// Every paper-table row config is valid as written (only the weights, data and device are swapped for
// what this machine has), sweeps the nine tasks (GLUE) and sets its row's SMYRF knobs.
TEST(Finetune, PaperRowConfigsValidate) {
  const fs::path dir = fresh_dir("paper_configs");
  const std::vector<std::tuple<std::string, std::string, std::string>> rows = {
      {"glue_bert128", "9 runs", ""},           {"glue_smyrf_2x32", "9 runs", "q_cluster_size\": 32"},
      {"glue_smyrf_2x16", "9 runs", "q_cluster_size\": 16"}, {"glue_bert64", "9 runs", ""},
      {"glue_bert32", "9 runs", ""},            {"imdb_roberta", "1 runs", ""},
      {"imdb_smyrf_roberta", "1 runs", "n_hashes\": 8"},   {"imdb_bert", "1 runs", ""},
      {"imdb_smyrf_bert", "1 runs", "n_hashes\": 8"}};
  for (const auto& [row, runs, knob] : rows) {
    const bool glue = row.rfind("glue", 0) == 0;
    const std::string child = write_file(
        dir / (row + ".json"),
        fmt::format(R"({{"version": 1, "extends": "{}", "device": "cpu", "model": {{"path": "{}"}}, "data": {{"dir": "{}"}}}})",
                    repo_path("configs/paper/" + row + ".json"), minilm_path(),
                    repo_path(glue ? "tests/data/glue" : "tests/data/aclImdb")));
    const auto result = run_cli("validate " + child);
    EXPECT_EQ(result.exit_code, 0) << row << "\n" << result.output;
    EXPECT_NE(result.output.find(runs), std::string::npos) << row << "\n" << result.output;
    std::ifstream in(repo_path("configs/paper/" + row + ".json"));
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!knob.empty()) EXPECT_NE(text.find(knob), std::string::npos) << row;
  }
}

TEST(Finetune, BadInputGivesClearErrors) {
  const fs::path dir = fresh_dir("finetune_errors");
  const auto validate = [&](const std::string& name, const std::string& extra) {
    return run_cli("validate " + finetune_config(dir, name, "configs/smoke/glue_tiny.json", "tests/data/glue", extra));
  };
  struct Case {
    std::string extra;
    int exit_code;
    std::vector<std::string> parts;
  };
  const std::vector<Case> cases = {
      {R"(, "sweep": null, "data": {"task": "sst"})", 2, {"data.task", "sst2"}},
      {R"(, "data": {"max_seq_len": 1000})", 2, {"data.max_seq_len", "512"}},
      {R"(, "train": {"epoch": 2})", 2, {"train.epoch", "epochs"}},
      {R"(, "train": {"warmup_steps": 3})", 2, {"warmup_steps", "warmup_ratio", "not both"}},
      {R"(, "eval": {"attention_variants": {"with space": {"method": "dense"}}})", 2, {"with space"}},
      {R"(, "eval": {"attention_variants": {"x": {"method": "smyrf", "q_cluster_size": 0}}})", 2,
       {"eval.attention_variants.x"}},
      {R"(, "model": {"attention_layers": [6]})", 2, {"attention_layers", "6 layers"}},
      {R"(, "device": "tpu")", 2, {"device", "cuda"}},
      {R"(, "data": {"dir": "/nonexistent/glue"})", 3, {"/nonexistent/glue", "fetch_glue.sh"}},
  };
  for (const Case& c : cases) {
    const auto result = validate("case", c.extra);
    EXPECT_EQ(result.exit_code, c.exit_code) << c.extra << "\n" << result.output;
    for (const std::string& part : c.parts) EXPECT_NE(result.output.find(part), std::string::npos) << part << "\n" << result.output;
  }
  const auto imdb = run_cli("validate " + finetune_config(dir, "imdb", "configs/smoke/imdb_tiny.json", "tests/data/aclImdb",
                                                           R"(, "data": {"br": "strip"})"));
  EXPECT_EQ(imdb.exit_code, 2) << imdb.output;
  EXPECT_NE(imdb.output.find("data.br"), std::string::npos) << imdb.output;

  // A label the task does not have fails the run with the file and line.
  const fs::path glue = dir / "glue";
  fs::create_directories(glue / "SST-2");
  write_file(glue / "SST-2" / "train.tsv", "sentence\tlabel\na fine film\t1\nan awful film\t2\n");
  write_file(glue / "SST-2" / "dev.tsv", "sentence\tlabel\na fine film\t1\n");
  const std::string bad = write_file(dir / "bad_label.json", fmt::format(R"({{"version": 1, "extends": "{}",
      "model": {{"path": "{}"}}, "data": {{"dir": "{}", "task": "sst2"}}, "sweep": null}})",
      repo_path("configs/smoke/glue_tiny.json"), minilm_path(), glue.string()));
  const auto failed = run_cli("run --no-progress " + bad + " --output " + (dir / "bad.h5").string());
  EXPECT_EQ(failed.exit_code, 1) << failed.output;
  const StoredRun run = stored_runs((dir / "bad.h5").string()).at("run");
  EXPECT_EQ(run.status, "failed");
  EXPECT_NE(run.error.find("train.tsv:3"), std::string::npos) << run.error;
}

}  // namespace
}  // namespace smyrf
