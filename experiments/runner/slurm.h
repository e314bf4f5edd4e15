// `smyrf submit CONFIG --slurm`: a sweep as a Slurm job array. Task i runs
// `smyrf run CONFIG --shard i/S` (S shards of runs_per_task runs each; sweep position p belongs to
// shard p mod S) into <folder>/shards/shard-i-of-S.h5; a last job, which depends on the array
// (afterany), merges the shards into the results file (`smyrf merge`) and writes the report.
//
// Folder: <results without .h5>.slurm/ holds array.sbatch, merge.sbatch, submission.json (the
// config, the results file, S, runs_per_task, each shard's run ids and every submission's job ids),
// shards/ and logs/ (task-<array job>_<task>.out, merge-<job>.out).
// Preemption and time limits: tasks are submitted with --requeue and --signal=B:USR1@signal_lead_s;
// the batch script forwards USR1 (and SIGTERM) to `smyrf run`, whose training runs checkpoint
// (experiments/runner/interrupt.h); when it exits with 75 the task requeues itself
// (`scontrol requeue`) and, run again, resumes without redoing a completed run.
// Submitting again submits only the shards that are not complete (in their shard files or the
// merged results), plus the merge job; with nothing left it submits nothing.
// --dry-run returns the scripts without calling sbatch (and needs no Slurm).
// Tested by tests/test_slurm.cpp against a real one-node Slurm (scripts/slurm/local_slurm.sh) and a
// golden --dry-run file.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "experiments/runner/config.h"

namespace smyrf {

struct SlurmOptions {
  std::string partition, account, time, mem;  // --partition, --account, --time, --mem ("" = cluster default)
  int64_t gpus_per_task = 0, cpus_per_task = 0;  // 0 = not asked
  int64_t runs_per_task = 1;
  int64_t throttle = 0;           // at most this many tasks at once (--array=...%K); 0 = no limit
  int64_t signal_lead_s = 120;    // SIGUSR1 this many seconds before the time limit
  std::vector<std::string> sbatch_lines;  // extra lines, "#SBATCH --qos=high" or "--qos=high"
  std::string setup;              // one shell line run before smyrf (module load ..., source venv/bin/activate)
  int64_t max_runs = kDefaultMaxRuns;  // --max-runs, passed on to the tasks' `smyrf run`
  bool dry_run = false;
};

struct SlurmSubmission {
  std::string folder;
  int64_t shard_count = 0, runs = 0;
  std::vector<int64_t> shards_to_run;  // array task ids submitted (empty: nothing left to run)
  std::string array_script, merge_script;
  std::string array_job_id, merge_job_id;  // "" with dry_run or when nothing was submitted
};

// smyrf_exe: the binary the tasks run (this one). Throws ConfigError for bad options, IoError when
// sbatch is missing or refuses a script (with its message).
SlurmSubmission submit_to_slurm(const std::string& config_path, const std::optional<std::string>& output_override,
                                const SlurmOptions& options, const std::string& smyrf_exe);

// <results without .h5>.slurm
std::string slurm_folder(const std::string& results_path);

// Runs `command` (words quoted for the shell, stderr joined to stdout) and returns its output
// without trailing newlines; IoError with that output when it exits non-zero or prints nothing.
std::string run_program(const std::vector<std::string>& command);
// Whether an executable `program` is on PATH.
bool on_path(const std::string& program);

}  // namespace smyrf
