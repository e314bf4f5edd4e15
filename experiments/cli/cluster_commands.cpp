// Command family: sweeps beyond one process.
//   smyrf merge OUT.h5 SHARD.h5...     shard files of one sweep into one results file (runner/merge.h)
//   smyrf status RESULTS_OR_FOLDER     runs complete / running / failed / missing (runner/status.h)
//   smyrf submit CONFIG --slurm [...]  the sweep as a Slurm job array plus a merge job (runner/slurm.h)
// (`smyrf run --jobs N` and `--shard I/N` are in experiment_commands.cpp.) Exit codes: merge 1 when
// runs are missing or duplicated, status 1 when any run is not complete.
// Tested by tests/test_scale_out.cpp and, against a real Slurm, tests/test_slurm.cpp.
#include <fmt/format.h>

#include <memory>
#include <optional>

#include "core/util/check.h"
#include "experiments/cli/command_table.h"
#include "experiments/runner/merge.h"
#include "experiments/runner/slurm.h"
#include "experiments/runner/status.h"

namespace smyrf {
namespace {

struct MergeArgs {
  std::string out, ended_array;
  std::vector<std::string> shards;
};

int merge_command(const MergeArgs& args) {
  const MergeReport report = merge_shards(args.out, args.shards, args.ended_array);
  fmt::print("{}: {} runs imported, {} already there; {} of {} runs complete\n", args.out, report.imported.size(),
             report.unchanged.size(), report.complete, report.sweep_runs);
  for (const std::string& d : report.duplicates) fmt::print(stderr, "duplicate: {}\n", d);
  for (const std::string& m : report.missing) fmt::print(stderr, "missing: {}\n", m);
  return report.duplicates.empty() && report.missing.empty() ? 0 : 1;
}

struct SubmitArgs {
  std::string config_path, output;
  bool slurm = false;
  SlurmOptions options;
};

int submit_command(const SubmitArgs& args, const CliEnvironment& environment) {
  if (!args.slurm) throw ConfigError("smyrf submit: say where to submit: --slurm (the scheduler this harness supports)");
  const SlurmSubmission sub = submit_to_slurm(
      args.config_path, args.output.empty() ? std::nullopt : std::optional<std::string>(args.output), args.options,
      environment.self_executable);
  if (args.options.dry_run) {
    fmt::print("# {}/array.sbatch\n{}\n# {}/merge.sbatch\n{}", sub.folder, sub.array_script, sub.folder, sub.merge_script);
    return 0;
  }
  if (sub.shards_to_run.empty() && sub.merge_job_id.empty()) {
    fmt::print("nothing to submit: all {} runs are complete and merged ({})\n", sub.runs, sub.folder);
    return 0;
  }
  fmt::print("submitted {} of {} shards ({} runs in all): array job {}, merge job {}; follow with `smyrf status {}`\n",
             sub.shards_to_run.size(), sub.shard_count, sub.runs, sub.array_job_id.empty() ? "-" : sub.array_job_id,
             sub.merge_job_id, sub.folder);
  return 0;
}

void add_submit(CLI::App& app, CommandTable& table, const CliEnvironment& environment) {
  auto args = std::make_shared<SubmitArgs>();
  auto* submit = app.add_subcommand("submit", "Submit a config's sweep to a cluster scheduler (Slurm job array)");
  submit->add_option("config", args->config_path, "experiment config (JSON)")->required();
  submit->add_flag("--slurm", args->slurm, "submit to Slurm (sbatch)");
  submit->add_option("--output,-o", args->output, "merged results file (overrides output.path)");
  SlurmOptions& o = args->options;
  submit->add_option("--runs-per-task", o.runs_per_task, "sweep points per array task (default 1)");
  submit->add_option("--partition", o.partition, "Slurm partition");
  submit->add_option("--account", o.account, "Slurm account");
  submit->add_option("--time", o.time, "time limit per task, as sbatch --time (e.g. 4:00:00)");
  submit->add_option("--gpus-per-task", o.gpus_per_task, "GPUs per task");
  submit->add_option("--cpus-per-task", o.cpus_per_task, "CPUs per task");
  submit->add_option("--mem", o.mem, "memory per task, as sbatch --mem (e.g. 32G)");
  submit->add_option("--throttle", o.throttle, "at most this many tasks at once (--array=...%K)");
  submit->add_option("--max-runs", o.max_runs, "refuse sweeps of more runs than this (passed on to the tasks)")
      ->capture_default_str();
  submit->add_option("--signal-lead", o.signal_lead_s, "seconds before the time limit when tasks checkpoint (default 120)");
  submit->add_option("--sbatch", o.sbatch_lines, "an extra #SBATCH line (repeatable), e.g. --sbatch=--qos=high");
  submit->add_option("--setup", o.setup, "a shell line run first in every job (module load ..., source venv/bin/activate)");
  submit->add_flag("--dry-run", o.dry_run, "print the sbatch scripts; submit nothing");
  table.add(submit, [args, environment] { return submit_command(*args, environment); });
}

}  // namespace

void add_cluster_commands(CLI::App& app, CommandTable& table, const CliEnvironment& environment) {
  auto merge_args = std::make_shared<MergeArgs>();
  auto* merge = app.add_subcommand("merge", "Merge shard results files (smyrf run --shard) into one results file");
  merge->add_option("out", merge_args->out, "merged results file (created or updated)")->required();
  merge->add_option("shards", merge_args->shards, "shard results files")->required();
  merge->add_option("--ended-array", merge_args->ended_array,
                    "the Slurm array that wrote the shards has ended (its job id): runs still running died with "
                    "their task and are recorded failed, with Slurm's state");
  table.add(merge, [merge_args] { return merge_command(*merge_args); });

  auto status_path = std::make_shared<std::string>();
  auto* status = app.add_subcommand("status", "Runs of a sweep: complete, running, failed, missing (file or Slurm folder)");
  status->add_option("path", *status_path, "results file, shard file, or the <results>.slurm folder")->required();
  table.add(status, [status_path] {
    const SweepStatus s = sweep_status(*status_path);
    fmt::print("{}", format_status(s));
    return static_cast<int64_t>(s.runs.size()) == (s.counts.count("complete") ? s.counts.at("complete") : 0) ? 0 : 1;
  });

  add_submit(app, table, environment);
}

}  // namespace smyrf
