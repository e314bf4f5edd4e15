// Command family: running experiments.
//   smyrf run CONFIG [--output FILE.h5] [--no-progress] [--jobs N] [--gpus 0,1] [--shard I/N]
//                      run a sweep (resumes; prints the report at the end); exit 1 when a run failed,
//                      75 when it was asked to stop (experiments/runner/interrupt.h) and should be
//                      run again
//   smyrf validate CONFIG
//                      load, expand and check every run; runs nothing
//   smyrf worker ...   internal: one run in its own process (started by `run`)
// Tested by tests/test_experiments.cpp through the binary.
#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <optional>

#include "experiments/cli/command_table.h"
#include "experiments/report/report.h"
#include "core/util/check.h"
#include "core/util/strings.h"
#include "experiments/runner/interrupt.h"
#include "experiments/runner/runner.h"

namespace smyrf {
namespace {

struct RunArgs {
  std::string config_path, output, gpus, shard;
  int64_t jobs = 0;  // 0: one, or one per GPU with --gpus
  int64_t max_runs = kDefaultMaxRuns;
  std::string worker_memory;  // "" = no limit
  bool no_progress = false;
};

int run_command(const RunArgs& args, const CliEnvironment& environment) {
  RunnerOptions options;
  options.config_path = args.config_path;
  if (!args.output.empty()) options.output_override = args.output;
  options.worker_executable = environment.self_executable;
  options.progress = !args.no_progress;
  if (!args.gpus.empty()) options.gpus = split(args.gpus, ',');
  options.jobs = args.jobs > 0 ? args.jobs : std::max<int64_t>(1, static_cast<int64_t>(options.gpus.size()));
  if (args.jobs < 0) throw ConfigError(fmt::format("--jobs is {}; it must be >= 1", args.jobs));
  if (!args.shard.empty()) options.shard = ShardSpec::parse(args.shard, "--shard");
  options.max_runs = args.max_runs;
  if (!args.worker_memory.empty()) options.worker_memory_bytes = parse_byte_size(args.worker_memory, "--worker-memory");
  const RunnerSummary summary = run_experiment(options);
  fmt::print("\n{}", format_report(summary.output_path, false));
  fmt::print("\n{} runs: {} completed, {} already complete, {} failed, {} interrupted -> {}\n", summary.total,
             summary.completed, summary.skipped, summary.failed, summary.interrupted, summary.output_path);
  for (const auto& f : summary.failures) fmt::print(stderr, "failed: {}\n", f);
  if (summary.interrupted > 0) {
    fmt::print(stderr, "stopped on request: {} runs were interrupted (checkpointed where their pipeline can); run "
                       "the same command again to finish\n", summary.interrupted);
    return kInterruptedExitCode;
  }
  return summary.failed > 0 ? 1 : 0;
}

struct ValidateArgs {
  std::string config_path;
  int64_t max_runs = kDefaultMaxRuns;
};

struct WorkerArgs {
  std::string config_path, run_id, result_path, output, progress;
  int threads = 0;
  int64_t memory_limit = 0;
};

}  // namespace

void add_experiment_commands(CLI::App& app, CommandTable& table, const CliEnvironment& environment) {
  auto run_args = std::make_shared<RunArgs>();
  auto* run = app.add_subcommand("run", "Run every point of a config's sweep into its HDF5 results file");
  run->add_option("config", run_args->config_path, "experiment config (JSON)")->required();
  run->add_option("--output,-o", run_args->output, "results file (overrides output.path)");
  run->add_flag("--no-progress", run_args->no_progress, "no progress bar");
  run->add_option("--jobs,-j", run_args->jobs, "worker processes at once (default 1, or one per --gpus device)");
  run->add_option("--gpus", run_args->gpus, "comma-separated CUDA devices; worker slot k sees only the k-th");
  run->add_option("--shard", run_args->shard,
                  "I/N: run only the runs at sweep positions I modulo N (0 <= I < N) into a shard file");
  run->add_option("--max-runs", run_args->max_runs, "refuse sweeps of more runs than this")->capture_default_str();
  run->add_option("--worker-memory", run_args->worker_memory,
                  "limit each worker's memory (e.g. 512M, 4G); a run that needs more fails, naming the limit");
  table.add(run, [run_args, environment] { return run_command(*run_args, environment); });

  auto validate_args = std::make_shared<ValidateArgs>();
  auto* validate = app.add_subcommand("validate", "Check a config: every run expanded and validated, nothing run");
  validate->add_option("config", validate_args->config_path, "experiment config (JSON)")->required();
  validate->add_option("--max-runs", validate_args->max_runs, "refuse sweeps of more runs than this")->capture_default_str();
  table.add(validate, [validate_args] {
    const std::string& config = validate_args->config_path;
    const ExperimentPlan plan = plan_experiment(config, std::nullopt, std::nullopt, validate_args->max_runs);
    fmt::print("{}: OK — pipeline {}, {} runs, results to {}\n", config, plan.pipeline,
               plan.experiment.runs.size(), plan.output_path);
    return 0;
  });

  auto worker_args = std::make_shared<WorkerArgs>();
  auto* worker = app.add_subcommand("worker", "Internal: run one sweep point (used by `smyrf run`)");
  worker->group("");  // hidden from --help
  worker->add_option("config", worker_args->config_path)->required();
  worker->add_option("--run-id", worker_args->run_id)->required();
  worker->add_option("--result", worker_args->result_path)->required();
  worker->add_option("--output", worker_args->output);
  worker->add_option("--progress", worker_args->progress);
  worker->add_option("--threads", worker_args->threads);
  worker->add_option("--memory-limit", worker_args->memory_limit);
  table.add(worker, [worker_args] {
    const WorkerArgs& a = *worker_args;
    return run_worker(a.config_path, a.run_id, a.result_path, a.output, a.progress, a.threads, a.memory_limit);
  });
}

}  // namespace smyrf
