// The sweep runner: expands a config, validates every run before starting any, then measures each
// run in its own worker process (`smyrf worker ...`) so its peak memory is its own, and records
// everything in the results file (experiments/runner/results_store.h, atomic per update).
// Resume: runs already `complete` are skipped (after checking their stored config still matches);
// `running` (killed) and `failed` runs are redone. Tested by tests/test_experiments.cpp, including a
// sweep killed with SIGKILL and resumed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/runner/config.h"

namespace smyrf {

struct RunnerOptions {
  std::string config_path;
  std::optional<std::string> output_override;  // replaces output.path
  std::string worker_executable;               // the `smyrf` binary that runs `worker`
  bool progress = true;
};

struct RunnerSummary {
  std::string output_path;
  int64_t total = 0, skipped = 0, completed = 0, failed = 0;
  std::vector<std::string> failures;  // "run_id: error"
};

// Loads, expands and validates the whole sweep (pipeline sections, attention options, sizes);
// throws ConfigError on the first problem. Returns the experiment and its output path.
struct ExperimentPlan {
  ExperimentConfig experiment;
  std::string pipeline;
  std::string output_path;
};
ExperimentPlan plan_experiment(const std::string& config_path, const std::optional<std::string>& output_override);

RunnerSummary run_experiment(const RunnerOptions& options);

// Entry point of the worker process: runs one sweep point and writes its RunResult (or
// its error) to result_path as HDF5 (write_worker_result, results_store.h). Returns the process
// exit code.
// output_path: the results file (pipelines keep side files such as checkpoints beside it);
// progress_path: where the run's own progress (RunContext::progress) is written as JSON
// {"done", "total", "note", "rate" (per second)} for the runner's bar ("" = nowhere).
int run_worker(const std::string& config_path, const std::string& run_id, const std::string& result_path,
               const std::string& output_path = "", const std::string& progress_path = "");

// Library/version strings recorded as provenance.
std::string torch_version_string();

}  // namespace smyrf
