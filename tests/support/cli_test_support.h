// Helpers of the tests that drive the `smyrf` CLI (SMYRF_CLI_PATH) end to end: run it and capture
// its exit code and output, fresh temporary directories, small files, and read back what runs stored.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <utility>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "experiments/runner/results_store.h"
#include "tests/support/fresh_dir.h"

namespace smyrf::test {

struct CliResult {
  int exit_code;
  std::string output;
};

// A shell command line: its exit code and its stdout and stderr together.
inline CliResult run_shell(const std::string& command) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

inline CliResult run_cli(const std::string& args) { return run_shell(std::string(SMYRF_CLI_PATH) + " " + args); }

// `smyrf run --no-progress CONFIG --output OUT` in the background with its output discarded, for
// tests that kill it mid-sweep; returns its pid (-1 when fork failed).
inline pid_t start_run_in_background(const std::string& config, const std::string& out) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(SMYRF_CLI_PATH, SMYRF_CLI_PATH, "run", "--no-progress", config.c_str(), "--output", out.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

inline std::string write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

// ---- results and configs of end-to-end runs ----------------------------------------------------

// A path in the source tree (ctest runs in the build tree).
inline std::string repo_path(const std::string& relative) {
  return (std::filesystem::path(SMYRF_SOURCE_DIR) / relative).string();
}

// Objects merge key by key; anything else (null included) replaces, as `extends` does.
inline void merge_into(nlohmann::json& base, const nlohmann::json& extra) {
  for (const auto& [key, value] : extra.items()) {
    if (value.is_object() && base.contains(key) && base[key].is_object()) {
      merge_into(base[key], value);
    } else {
      base[key] = value;
    }
  }
}

inline std::map<std::string, StoredRun> stored_runs(const std::string& h5) {
  std::map<std::string, StoredRun> runs;
  for (auto& run : ResultsStore::open_existing(h5).read_runs()) runs[run.info.run_id] = run;
  return runs;
}

inline double metric_value(const StoredRun& run, const std::string& name) {
  const auto it = run.result.metrics.find(name);
  if (it == run.result.metrics.end()) {
    ADD_FAILURE() << run.info.run_id << " has no metric " << name;
    return std::nan("");
  }
  return it->second.value;
}

inline const std::vector<double>& curve_of(const StoredRun& run, const std::string& name) {
  static const std::vector<double> kEmpty;
  const auto it = run.result.curves.find(name);
  if (it == run.result.curves.end()) {
    ADD_FAILURE() << run.info.run_id << " has no curve " << name;
    return kEmpty;
  }
  return it->second;
}

// <results file without .h5>.checkpoints/<run_id>: where a training run keeps its checkpoints.
inline std::filesystem::path run_checkpoints(const std::string& h5, const std::string& run_id) {
  std::filesystem::path p(h5);
  p.replace_extension();
  return std::filesystem::path(p.string() + ".checkpoints") / run_id;
}

// Starts `smyrf run CONFIG --output OUT` in the background and sends it `signal` once the checkpoint
// of run `run_id` records at least `min_step` steps (or after 300 s); returns the step it recorded
// and the run's exit code (-1 when a signal ended it).
inline std::pair<int64_t, int> signal_run_after_checkpoint(const std::string& config, const std::string& out,
                                                           const std::string& run_id, int64_t min_step, int signal) {
  const pid_t pid = start_run_in_background(config, out);
  if (pid < 0) return {-1, -1};
  const std::filesystem::path state = run_checkpoints(out, run_id) / "ckpt" / "state.json";
  int64_t step = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline && step < min_step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(state);
    const auto saved = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (saved.is_object()) step = saved.at("state").at("step");
  }
  kill(pid, signal);
  int status = 0;
  waitpid(pid, &status, 0);
  return {step, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

// As above with SIGKILL (a killed sweep); returns the step.
inline int64_t kill_run_after_checkpoint(const std::string& config, const std::string& out, const std::string& run_id,
                                         int64_t min_step) {
  return signal_run_after_checkpoint(config, out, run_id, min_step, SIGKILL).first;
}

// A config file in `dir` that extends configs/smoke/<smoke>.json with `extra` merged in.
inline std::string smoke_config(const std::filesystem::path& dir, const std::string& smoke,
                                const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json config = {{"version", 1}, {"extends", repo_path("configs/smoke/" + smoke + ".json")}};
  merge_into(config, extra);
  return write_file(dir / (smoke + ".json"), config.dump());
}

// Two results files hold the same runs with the same statuses, configs and numbers, except what
// differs between any two runs of the same config: times, rates, memory, thread counts, the step a
// run resumed from, and the curves of times (step_time_s, eval_train_time_s).
inline void expect_same_results(const std::string& a_path, const std::string& b_path) {
  static const std::regex kMeasured("(.*_time_s|.*_per_s|.*rss.*|wall_time_s|threads|resumed_from_step)");
  const auto a = stored_runs(a_path), b = stored_runs(b_path);
  ASSERT_EQ(a.size(), b.size()) << a_path << " vs " << b_path;
  for (const auto& [id, run] : a) {
    ASSERT_TRUE(b.count(id)) << id << " is missing from " << b_path;
    const StoredRun& other = b.at(id);
    EXPECT_EQ(run.status, other.status) << id;
    EXPECT_EQ(run.info.resolved_config, other.info.resolved_config) << id;
    for (const auto& [name, metric] : run.result.metrics)
      if (!std::regex_match(name, kMeasured)) {
        ASSERT_TRUE(other.result.metrics.count(name)) << id << " " << name;
        EXPECT_EQ(metric.value, other.result.metrics.at(name).value) << id << " " << name;
      }
    for (const auto& [name, curve] : run.result.curves)
      if (!std::regex_match(name, kMeasured)) EXPECT_EQ(curve, other.result.curves.at(name)) << id << " " << name;
    for (const auto& [name, tensor] : run.result.tensors) EXPECT_EQ(tensor.data, other.result.tensors.at(name).data) << id;
  }
}

}  // namespace smyrf::test
