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
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "experiments/runner/results_store.h"

namespace smyrf::test {

struct CliResult {
  int exit_code;
  std::string output;
};

inline CliResult run_cli(const std::string& args) {
  const std::string cmd = std::string(SMYRF_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

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

inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("smyrf_test_{}_{}", name, getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
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

// Starts `smyrf run CONFIG --output OUT` in the background and SIGKILLs it once the checkpoint of
// run `run_id` records at least `min_step` steps (or after 300 s); returns the step it recorded.
inline int64_t kill_run_after_checkpoint(const std::string& config, const std::string& out, const std::string& run_id,
                                         int64_t min_step) {
  const pid_t pid = start_run_in_background(config, out);
  if (pid < 0) return -1;
  const std::filesystem::path state = run_checkpoints(out, run_id) / "ckpt" / "state.json";
  int64_t step = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (std::chrono::steady_clock::now() < deadline && step < min_step) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::ifstream in(state);
    const auto saved = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (saved.is_object()) step = saved.at("state").at("step");
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  return step;
}

}  // namespace smyrf::test
