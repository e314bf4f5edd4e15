// See status.h.
#include "experiments/runner/status.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "experiments/runner/results_store.h"
#include "experiments/runner/runner.h"
#include "experiments/runner/slurm.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

RunState state_of(const StoredRun& run, const std::string& file) {
  RunState s{run.info.run_id, run.status, file, run.error, {}};
  const std::string log = logs_folder(file) + "/" + run.info.run_id + ".log";
  if (fs::exists(log)) s.logs.push_back(log);
  return s;
}

std::map<std::string, StoredRun> runs_by_id(const std::string& path) {
  std::map<std::string, StoredRun> runs;
  if (!fs::exists(path)) return runs;
  for (StoredRun& run : ResultsStore::open_existing(path).read_runs(false)) runs.emplace(run.info.run_id, std::move(run));
  return runs;
}

SweepStatus file_status(const std::string& path) {
  const ResultsStore store = ResultsStore::open_existing(path);
  SweepStatus status;
  status.source = path;
  const auto runs = runs_by_id(path);
  for (const auto& [id, run] : runs) status.runs.push_back(state_of(run, path));
  if (const auto shard = store.header().shard)
    for (const std::string& id : shard->run_ids)
      if (!runs.count(id)) status.runs.push_back({id, "missing", "", fmt::format("not run yet (shard {})", shard->label()), {}});
  return status;
}

// The Slurm jobs of the last submission, and which array tasks are still queued or running.
std::vector<std::string> slurm_jobs(const json& submission, std::set<int64_t>& active_tasks,
                                    std::map<int64_t, std::string>& task_states) {
  const json subs = submission.value("submissions", json::array());
  if (subs.empty()) return {"no job was submitted from this folder"};
  const json& last = subs.back();
  std::vector<std::string> ids;
  for (const char* key : {"array_job", "merge_job"})
    if (!last.value(key, std::string()).empty()) ids.push_back(last.value(key, std::string()));
  std::vector<std::string> lines{fmt::format("last submission {}: array job {}, merge job {}",
                                             last.value("submitted_utc", std::string()), last.value("array_job", std::string("-")),
                                             last.value("merge_job", std::string("-")))};
  if (!on_path("squeue")) {
    lines.push_back("squeue is not on PATH: job states unknown");
    return lines;
  }
  try {
    const std::string out = run_program({"squeue", "-h", "-r", "-j", join(ids, ","), "-o", "%i %T %R"});
    for (const std::string& line : split_lines(out)) {
      lines.push_back("squeue: " + line);
      const auto underscore = line.find('_');
      if (underscore != std::string::npos) active_tasks.insert(std::atoll(line.c_str() + underscore + 1));
    }
  } catch (const IoError&) {
    lines.push_back("squeue: none of these jobs is queued or running");
  }
  task_states = slurm_task_states(last.value("array_job", std::string()));
  for (const auto& [task, state] : task_states) lines.push_back(fmt::format("sacct: task {}: {}", task, state));
  return lines;
}

SweepStatus folder_status(const std::string& folder) {
  const json submission = read_json_file_or_discarded(folder + "/submission.json");
  if (!submission.is_object() || !submission.contains("shards"))
    throw IoError(fmt::format("'{}/submission.json' is not a smyrf Slurm submission; point smyrf status at a results "
                              "file or at the folder `smyrf submit` made", folder));
  SweepStatus status;
  status.source = folder;
  std::set<int64_t> active;
  std::map<int64_t, std::string> task_states;  // array task -> its last state in sacct
  status.jobs = slurm_jobs(submission, active, task_states);
  const bool queue_known = on_path("squeue");
  const std::string results = submission.value("results", std::string());
  const auto merged = runs_by_id(results);
  const json& shards = submission.at("shards");
  for (size_t i = 0; i < shards.size(); ++i) {
    const std::string file = fmt::format("{}/shards/shard-{}-of-{}.h5", folder, i, shards.size());
    const auto in_shard = runs_by_id(file);
    for (const std::string id : shards[i]) {
      RunState s{id, "missing", "", "no file holds it yet", {}};
      if (const auto m = merged.find(id); m != merged.end() && m->second.status == "complete") {
        s = state_of(m->second, results);
      } else if (const auto r = in_shard.find(id); r != in_shard.end()) {
        s = state_of(r->second, file);
        if (s.status == "running" && queue_known && !active.count(static_cast<int64_t>(i))) {
          s.status = "stopped";
          const auto state = task_states.find(static_cast<int64_t>(i));
          s.detail = state != task_states.end()
                         ? "its Slurm task ended as " + state->second + " (see the task log)"
                         : "its Slurm task is no longer queued or running (killed? out of memory? see the task log)";
        }
      }
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(folder + "/logs", ec))
        if (entry.path().filename().string().find(fmt::format("_{}.out", i)) != std::string::npos)
          s.logs.push_back(entry.path().string());
      status.runs.push_back(std::move(s));
    }
  }
  return status;
}

}  // namespace

std::map<int64_t, std::string> slurm_task_states(const std::string& array_job) {
  std::map<int64_t, std::string> states;
  if (array_job.empty() || !on_path("sacct")) return states;
  for (const bool completion : {false, true}) {
    std::vector<std::string> command{"sacct", "-n", "-P", "-X", "-j", array_job, "-o", "JobID,State"};
    if (completion) command.insert(command.begin() + 1, "-c");
    try {
      for (const std::string& line : split_lines(run_program(command))) {
        const std::vector<std::string> fields = split(line, '|');
        const auto underscore = fields.front().find('_');
        if (fields.size() >= 2 && underscore != std::string::npos)
          states[std::atoll(fields.front().c_str() + underscore + 1)] = fields[1];
      }
      if (!states.empty()) return states;
    } catch (const IoError&) {
      // no accounting storage: try the completion log
    }
  }
  return states;
}

SweepStatus sweep_status(const std::string& path) {
  SweepStatus status;
  if (fs::is_directory(path)) {
    if (!fs::exists(fs::path(path) / "submission.json"))
      throw IoError(fmt::format("'{}' is a folder without submission.json; give a results file or the folder that "
                                "`smyrf submit --slurm` made (<results>.slurm)", path));
    status = folder_status(path);
  } else {
    status = file_status(path);
  }
  for (const RunState& run : status.runs) ++status.counts[run.status];
  return status;
}

std::string format_status(const SweepStatus& status) {
  std::string out = fmt::format("{}: {} runs", status.source, status.runs.size());
  for (const auto& [name, count] : status.counts) out += fmt::format(", {} {}", count, name);
  out += "\n";
  for (const RunState& run : status.runs) {
    out += fmt::format("  {:12} {}{}\n", run.status, run.run_id, run.where.empty() ? "" : "  [" + run.where + "]");
    if (run.status != "complete" && !run.detail.empty()) out += fmt::format("               {}\n", run.detail);
    if (run.status != "complete")
      for (const std::string& log : run.logs) out += fmt::format("               log: {}\n", log);
  }
  for (const std::string& line : status.jobs) out += "  " + line + "\n";
  return out;
}

}  // namespace smyrf
