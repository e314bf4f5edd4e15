// The sweep runner: expands a config, plans every run before starting any, then measures each run
// in its own worker process (`smyrf worker ...`) so its peak memory is its own, up to `jobs` at once,
// and records everything in the results file (experiments/runner/results_store.h, atomic per
// update; this process is its only writer, under a WriterLock).
//   --jobs N     N workers at once, each with cores / N threads unless the config sets `threads`;
//   --gpus LIST  worker slot k sees only GPU LIST[k] (CUDA_VISIBLE_DEVICES);
//   --shard I/N  only the runs whose sweep position is I modulo N, into a shard file that records
//                I/N (merged by `smyrf merge`, experiments/runner/merge.h).
// Resume: runs already `complete` are skipped (after checking their stored config still matches);
// `running` (killed), `failed` and `interrupted` runs are redone. Each run's worker log is kept in
// <results without .h5>.logs/<run_id>.log. Asked to stop (interrupt.h), the runner forwards the
// signal to its workers and starts no more runs.
// Tested by tests/test_experiments.cpp (a sweep killed with SIGKILL and resumed) and
// tests/test_scale_out.cpp (jobs, shards, locks, interrupts).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/runner/config.h"
#include "experiments/runner/results_store.h"

namespace smyrf {

struct RunnerOptions {
  std::string config_path;
  std::optional<std::string> output_override;  // replaces output.path
  std::string worker_executable;               // the `smyrf` binary that runs `worker`
  bool progress = true;
  int64_t jobs = 1;                            // workers at once
  std::vector<std::string> gpus;               // CUDA_VISIBLE_DEVICES of each worker slot; empty: inherited
  std::optional<ShardSpec> shard;              // only this shard's runs, into a shard file
  int64_t max_runs = kDefaultMaxRuns;          // a larger sweep is refused (config.h)
  int64_t worker_memory_bytes = 0;             // each worker's data-segment limit (setrlimit); 0 = none
};

struct RunnerSummary {
  std::string output_path;
  int64_t total = 0, skipped = 0, completed = 0, failed = 0;
  int64_t interrupted = 0;  // stopped on a signal (interrupt.h); redone by the next run
  std::vector<std::string> failures;  // "run_id: error"
};

// Loads, expands and validates the whole sweep (pipeline sections, attention options, sizes);
// throws ConfigError on the first problem. Returns the experiment and its output path.
// With a shard, output_path defaults to shard_file_name(output.path) and `selected` holds its runs.
struct ExperimentPlan {
  ExperimentConfig experiment;
  std::string pipeline;
  std::string output_path;
  std::vector<size_t> selected;  // positions in experiment.runs that this process runs
};
ExperimentPlan plan_experiment(const std::string& config_path, const std::optional<std::string>& output_override,
                               const std::optional<ShardSpec>& shard = std::nullopt,
                               int64_t max_runs = kDefaultMaxRuns);

// "<results without .h5>.shard-I-of-N.h5" and "<results without .h5>.logs".
std::string shard_file_name(const std::string& results_path, const ShardSpec& shard);
std::string logs_folder(const std::string& results_path);

RunnerSummary run_experiment(const RunnerOptions& options);

// Entry point of the worker process: runs one sweep point and writes its RunResult (or
// its error) to result_path as HDF5 (write_worker_result, results_store.h). Returns the process
// exit code.
// output_path: the results file (pipelines keep side files such as checkpoints beside it);
// progress_path: where the run's own progress (RunContext::progress) is written as JSON
// {"done", "total", "note", "rate" (per second)} for the runner's bar ("" = nowhere).
// default_threads: LibTorch's threads when the config leaves `threads` at 0 (0 = every core).
// memory_limit_bytes: RLIMIT_DATA for this process (0 = none); an allocation beyond it fails the run
// with an error that names the limit.
// Exit code 0, 1 (the run failed) or kInterruptedExitCode (interrupt.h).
int run_worker(const std::string& config_path, const std::string& run_id, const std::string& result_path,
               const std::string& output_path = "", const std::string& progress_path = "", int default_threads = 0,
               int64_t memory_limit_bytes = 0);

// Library/version strings recorded as provenance.
std::string torch_version_string();

}  // namespace smyrf
