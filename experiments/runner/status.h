// `smyrf status RESULTS_OR_FOLDER`: where a sweep stands.
//   a results file (whole sweep, shard or merged): every run it holds with its status, and for a
//     shard file the runs of the shard it does not hold yet ("missing");
//   a Slurm folder (experiments/runner/slurm.h): every run of the sweep across the merged results
//     and the shard files (a complete run anywhere counts), "missing" where no file has it, and the
//     Slurm jobs of the last submission as squeue and sacct report them (when they are on PATH and
//     answer; sacct needs Slurm accounting). A run still "running" in a shard whose task Slurm no
//     longer runs is shown as "stopped", with the task's state where sacct knows it.
// Each failed or interrupted run shows its error and the path of its worker log (and of the Slurm
// task's log). Tested by tests/test_scale_out.cpp and tests/test_slurm.cpp.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace smyrf {

struct RunState {
  std::string run_id;
  std::string status;  // complete | running | failed | interrupted | missing | stopped
  std::string where;   // the file it is in ("" when missing)
  std::string detail;  // error, or what Slurm says
  std::vector<std::string> logs;  // worker log, Slurm task log (those that exist)
};

struct SweepStatus {
  std::string source;
  std::vector<RunState> runs;
  std::vector<std::string> jobs;  // squeue / sacct lines, or why they are not shown
  std::map<std::string, int64_t> counts;  // status -> runs
};

// The last state Slurm's accounting (sacct, else its job completion log, sacct -c) records for each
// task of job array `array_job` ("COMPLETED", "CANCELLED", "OUT_OF_MEMORY", "NODE_FAIL", ...);
// empty when sacct is missing or knows nothing.
std::map<int64_t, std::string> slurm_task_states(const std::string& array_job);

// IoError when `path` is neither a results file nor a folder with submission.json.
SweepStatus sweep_status(const std::string& path);
std::string format_status(const SweepStatus& status);

}  // namespace smyrf
