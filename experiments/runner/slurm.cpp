// See slurm.h.
#include "experiments/runner/slurm.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/provenance.h"
#include "core/util/strings.h"
#include "experiments/runner/results_store.h"
#include "experiments/runner/runner.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// A word for a shell script: single-quoted unless it needs no quotes.
std::string shell_quote(const std::string& word) {
  if (!word.empty() && word.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-=:,+%")
                           == std::string::npos)
    return word;
  std::string quoted = "'";
  for (char c : word) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

void check_options(const SlurmOptions& o) {
  const auto fail = [](const std::string& what) { throw ConfigError("smyrf submit: " + what); };
  if (o.runs_per_task < 1) fail(fmt::format("--runs-per-task is {}; it must be >= 1", o.runs_per_task));
  if (o.throttle < 0) fail(fmt::format("--throttle is {}; it must be >= 0 (0 = no limit)", o.throttle));
  if (o.gpus_per_task < 0 || o.cpus_per_task < 0) fail("--gpus-per-task and --cpus-per-task must be >= 0");
  if (o.signal_lead_s < 0) fail(fmt::format("--signal-lead is {}; it must be >= 0 seconds", o.signal_lead_s));
  for (const std::string& line : o.sbatch_lines)
    if (line.find('\n') != std::string::npos) fail(fmt::format("--sbatch line '{}' spans lines; give one per flag", line));
  if (o.setup.find('\n') != std::string::npos) fail("--setup must be one line (join commands with &&)");
}

// The #SBATCH lines every script of the submission shares.
std::string common_directives(const SlurmOptions& o, const std::string& job_name) {
  std::string s = fmt::format("#SBATCH --job-name={}\n", shell_quote(job_name));
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", shell_quote(o.partition));
  if (!o.account.empty()) s += fmt::format("#SBATCH --account={}\n", shell_quote(o.account));
  return s;
}

std::string array_script(const SlurmOptions& o, const std::string& job_name, const std::string& array_spec,
                         const std::string& folder, int64_t shards, const std::string& exe, const std::string& config) {
  std::string s = "#!/bin/bash\n" + common_directives(o, job_name);
  s += fmt::format("#SBATCH --array={}\n", array_spec);
  s += fmt::format("#SBATCH --output={}/logs/task-%A_%a.out\n#SBATCH --open-mode=append\n", folder);
  s += fmt::format("#SBATCH --requeue\n#SBATCH --signal=B:USR1@{}\n", o.signal_lead_s);
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", shell_quote(o.time));
  if (!o.mem.empty()) s += fmt::format("#SBATCH --mem={}\n", shell_quote(o.mem));
  if (o.cpus_per_task > 0) s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  if (o.gpus_per_task > 0) s += fmt::format("#SBATCH --gpus-per-task={}\n", o.gpus_per_task);
  for (const std::string& line : o.sbatch_lines) s += (line.rfind("#SBATCH", 0) == 0 ? line : "#SBATCH " + line) + "\n";
  s += "\n# One shard of the sweep per task; Slurm's USR1 (before the time limit) and TERM (requeue,\n"
       "# preemption) reach smyrf, which checkpoints its training runs and exits with 75: then requeue.\n";
  if (!o.setup.empty()) s += o.setup + "\n";
  const std::string max_runs = o.max_runs == kDefaultMaxRuns ? "" : fmt::format("--max-runs {} ", o.max_runs);
  s += fmt::format("shard=\"${{SLURM_ARRAY_TASK_ID}}\"\n{} run {} --shard \"$shard/{}\" --output \"{}/shards/shard-$shard-of-{}.h5\" "
                   "{}--no-progress &\n",
                   shell_quote(exe), shell_quote(config), shards, folder, shards, max_runs);
  s += "pid=$!\ntrap 'kill -USR1 \"$pid\" 2>/dev/null' USR1\ntrap 'kill -TERM \"$pid\" 2>/dev/null' TERM\n"
       "while :; do wait \"$pid\"; rc=$?; kill -0 \"$pid\" 2>/dev/null || break; done\n"
       "if [ \"$rc\" -eq 75 ]; then\n  echo \"smyrf: stopped early on Slurm's signal; requeueing $SLURM_JOB_ID\"\n"
       "  scontrol requeue \"$SLURM_JOB_ID\"\nfi\nexit \"$rc\"\n";
  return s;
}

std::string merge_script(const SlurmOptions& o, const std::string& job_name, const std::string& folder,
                         const std::string& exe, const std::string& results) {
  std::string s = "#!/bin/bash\n" + common_directives(o, job_name + "-merge");
  s += fmt::format("#SBATCH --output={}/logs/merge-%j.out\n#SBATCH --time=30\n", folder);
  s += "\n# After the array (afterany): every shard written so far into the results file, then the report\n"
       "# (also when runs are missing: `smyrf status` and `smyrf submit` again tell and fix what is).\n";
  if (!o.setup.empty()) s += o.setup + "\n";
  s += fmt::format("{} merge {} {}/shards/*.h5 --ended-array \"${{SMYRF_ARRAY_JOB:-}}\" ||\n"
                   "  echo \"smyrf merge: runs are missing, failed or duplicated (above)\"\n"
                   "{} report {} > {}/report.txt\n",
                   shell_quote(exe), shell_quote(results), folder, shell_quote(exe), shell_quote(results), folder);
  return s;
}

// Whether every run of `ids` is complete in the file at `path` (false when it does not exist).
bool all_complete(const std::string& path, const std::vector<std::string>& ids) {
  if (!fs::exists(path)) return false;
  const ResultsStore store = ResultsStore::open_existing(path);
  for (const std::string& id : ids)
    if (store.status(id) != std::optional<std::string>("complete")) return false;
  return true;
}

// The job id sbatch --parsable printed ("123" or "123;cluster").
std::string sbatch(const std::string& script_path, const std::vector<std::string>& extra) {
  std::vector<std::string> command{"sbatch", "--parsable"};
  command.insert(command.end(), extra.begin(), extra.end());
  command.push_back(script_path);
  const std::string out = run_program(command);
  const std::string id = split(split_lines(out).back(), ';').front();
  if (id.empty() || id.find_first_not_of("0123456789") != std::string::npos)
    throw IoError(fmt::format("sbatch did not print a job id for '{}': {}", script_path, out));
  return id;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  if (!out) throw IoError(fmt::format("cannot write '{}'; the results folder must be writable", path));
}

// Records the submission in submission.json (appending to earlier ones) after checking that the
// sharding is the one earlier submissions used.
void record_submission(const std::string& folder, const json& layout, const SlurmSubmission& sub) {
  const std::string path = folder + "/submission.json";
  json record = layout;
  if (fs::exists(path)) {
    const json old = read_json_file_or_discarded(path);
    if (old.is_object() && old.value("shards", json()) != layout.at("shards"))
      throw ConfigError(fmt::format("'{}' was submitted with another sharding (runs per task or sweep changed); use "
                                    "the same --runs-per-task, or another --output", folder));
    if (old.is_object()) record["submissions"] = old.value("submissions", json::array());
  }
  if (!sub.array_job_id.empty() || !sub.merge_job_id.empty())
    record["submissions"].push_back({{"array_job", sub.array_job_id}, {"merge_job", sub.merge_job_id},
                                     {"shards", sub.shards_to_run}, {"submitted_utc", utc_now_iso8601()}});
  write_text(path + ".tmp", record.dump(1) + "\n");
  fs::rename(path + ".tmp", path);
}

}  // namespace

std::string run_program(const std::vector<std::string>& command) {
  std::string line;
  for (const auto& word : command) line += shell_quote(word) + " ";
  line += "2>&1";
  FILE* pipe = popen(line.c_str(), "r");
  if (!pipe) throw IoError(fmt::format("cannot run '{}': {}", line, std::strerror(errno)));
  std::string out;
  char buffer[4096];
  while (const size_t n = fread(buffer, 1, sizeof buffer, pipe)) out.append(buffer, n);
  const int status = pclose(pipe);
  if (status != 0 || out.empty())
    throw IoError(fmt::format("'{}' failed (exit {}): {}", command.front(), WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                              out.empty() ? "no output" : out));
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

bool on_path(const std::string& program) {
  const char* path = std::getenv("PATH");
  for (const std::string& dir : split(path ? path : "", ':'))
    if (!dir.empty() && ::access((fs::path(dir) / program).c_str(), X_OK) == 0) return true;
  return false;
}

std::string slurm_folder(const std::string& results_path) {
  fs::path p(results_path);
  if (p.extension() == ".h5") p.replace_extension();
  return p.string() + ".slurm";
}

SlurmSubmission submit_to_slurm(const std::string& config_path, const std::optional<std::string>& output_override,
                                const SlurmOptions& o, const std::string& smyrf_exe) {
  check_options(o);
  const ExperimentPlan plan = plan_experiment(config_path, output_override, std::nullopt, o.max_runs);
  SlurmSubmission sub;
  sub.runs = static_cast<int64_t>(plan.experiment.runs.size());
  sub.shard_count = (sub.runs + o.runs_per_task - 1) / o.runs_per_task;
  const std::string results = fs::absolute(plan.output_path).string(), folder = slurm_folder(results);
  json layout{{"config", fs::absolute(config_path).string()}, {"results", results}, {"runs_per_task", o.runs_per_task},
              {"shards", json::array()}, {"submissions", json::array()}};
  for (int64_t i = 0; i < sub.shard_count; ++i) {
    std::vector<std::string> ids;
    for (size_t p = static_cast<size_t>(i); p < plan.experiment.runs.size(); p += static_cast<size_t>(sub.shard_count))
      ids.push_back(plan.experiment.runs[p].run_id);
    layout["shards"].push_back(ids);
    const std::string shard_file = fmt::format("{}/shards/shard-{}-of-{}.h5", folder, i, sub.shard_count);
    if (!all_complete(shard_file, ids) && !all_complete(results, ids)) sub.shards_to_run.push_back(i);
  }
  std::vector<std::string> indices;
  for (int64_t i : sub.shards_to_run) indices.push_back(std::to_string(i));
  const std::string array_spec = join(indices, ",") + (o.throttle > 0 ? fmt::format("%{}", o.throttle) : "");
  const std::string name = "smyrf-" + plan.experiment.runs.front().config.value("name", std::string("sweep"));
  const std::string config = fs::absolute(config_path).string();
  sub.folder = folder;
  sub.array_script = array_script(o, name, array_spec, folder, sub.shard_count, smyrf_exe, config);
  sub.merge_script = merge_script(o, name, folder, smyrf_exe, results);
  if (o.dry_run) return sub;
  if (!on_path("sbatch"))
    throw IoError("smyrf submit --slurm needs Slurm's `sbatch` on PATH (run it on the cluster's login node, or load "
                  "Slurm's module); --dry-run prints the scripts without submitting");
  for (const char* sub_folder : {"shards", "logs"}) fs::create_directories(fs::path(folder) / sub_folder);
  write_text(folder + "/array.sbatch", sub.array_script);
  write_text(folder + "/merge.sbatch", sub.merge_script);
  if (!sub.shards_to_run.empty()) sub.array_job_id = sbatch(folder + "/array.sbatch", {});
  std::vector<std::string> all_ids;
  for (const RunSpec& run : plan.experiment.runs) all_ids.push_back(run.run_id);
  if (!all_complete(results, all_ids))
    sub.merge_job_id = sbatch(folder + "/merge.sbatch",
                              sub.array_job_id.empty()
                                  ? std::vector<std::string>{}
                                  : std::vector<std::string>{"--dependency=afterany:" + sub.array_job_id,
                                                             "--export=ALL,SMYRF_ARRAY_JOB=" + sub.array_job_id});
  record_submission(folder, layout, sub);
  return sub;
}

}  // namespace smyrf
