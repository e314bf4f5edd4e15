// See merge.h.
#include "experiments/runner/merge.h"

#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <optional>
#include <set>

#include "core/util/check.h"
#include "experiments/runner/results_store.h"
#include "experiments/runner/status.h"

namespace smyrf {
namespace {

nlohmann::json provenance_json(const Provenance& p, const std::string& shard_file, const ShardSpec& shard) {
  return {{"harness_version", p.harness_version}, {"git_sha", p.git_sha}, {"git_dirty", p.git_dirty},
          {"created_utc", p.created_utc},         {"host", p.host},       {"device", p.device},
          {"torch_version", p.torch_version},     {"shard", shard.label()}, {"shard_file", shard_file}};
}

struct Shard {
  std::string path;
  ResultsHeader header;
  std::vector<StoredRun> runs;
};

// Opens every shard and checks that they belong together; IoError naming the file otherwise.
std::vector<Shard> open_shards(const std::vector<std::string>& paths) {
  if (paths.empty()) throw ConfigError("smyrf merge needs at least one shard file (smyrf merge OUT.h5 SHARD.h5...)");
  std::vector<Shard> shards;
  for (const std::string& path : paths) {
    const ResultsStore store = ResultsStore::open_existing(path);
    Shard s{path, store.header(), store.read_runs(true)};
    if (!s.header.shard)
      throw IoError(fmt::format("'{}' is not a shard file (it has no shard_json attribute); merge only files written "
                                "by `smyrf run --shard I/N`", path));
    if (!shards.empty()) {
      const Shard& first = shards.front();
      if (s.header.config != first.header.config)
        throw IoError(fmt::format("'{}' holds a shard of another config than '{}' (their config_json attributes "
                                  "differ); merge shards of one sweep only", path, first.path));
      if (s.header.provenance.harness_version != first.header.provenance.harness_version)
        throw IoError(fmt::format("'{}' was written by harness version {}, '{}' by {}; rerun the shards with one "
                                  "version", path, s.header.provenance.harness_version, first.path,
                                  first.header.provenance.harness_version));
      if (s.header.shard->count != first.header.shard->count)
        throw IoError(fmt::format("'{}' is shard {} but '{}' is shard {}: shards of different splits of the sweep "
                                  "cannot be merged", path, s.header.shard->label(), first.path,
                                  first.header.shard->label()));
    }
    shards.push_back(std::move(s));
  }
  return shards;
}

bool same_run(const StoredRun& a, const StoredRun& b) {
  return a.status == b.status && a.started == b.started && a.finished == b.finished && a.provenance == b.provenance;
}

}  // namespace

// A run left "running" by a task that has ended: failed, with what Slurm says of the task.
void record_dead_task(StoredRun& run, const ShardSpec& shard, const std::string& array,
                      const std::map<int64_t, std::string>& states) {
  const auto state = states.find(shard.index);
  run.status = "failed";  // `finished` stays unset: when the task died is not known
  run.error = fmt::format("its Slurm task (array job {}, task {}) ended while the run was running: {}; see the task's "
                          "log (logs/task-{}_{}.out); submitting again resumes it from its last checkpoint",
                          array, shard.index,
                          state != states.end() ? "Slurm state " + state->second
                                                : std::string("Slurm's accounting does not say why (killed, out of "
                                                              "memory or node failure)"),
                          array, shard.index);
}

MergeReport merge_shards(const std::string& out_path, const std::vector<std::string>& shard_paths,
                         const std::string& ended_array) {
  const std::vector<Shard> shards = open_shards(shard_paths);
  const Shard& first = shards.front();
  const WriterLock lock(out_path);
  ResultsStore out = ResultsStore::open_or_create(out_path, first.header.config, first.header.provenance);
  if (out.header().config != first.header.config)
    throw IoError(fmt::format("'{}' holds results of another config than the shards (config_json differs); merge "
                              "into a new file", out_path));
  std::map<std::string, StoredRun> existing;
  for (StoredRun& run : out.read_runs(false)) existing.emplace(run.info.run_id, std::move(run));

  MergeReport report;
  report.sweep_runs = first.header.shard->sweep_runs;
  std::map<std::string, std::string> taken_from;  // run id -> shard file of its complete version
  std::vector<StoredRun> to_import;
  std::set<int64_t> given;
  const std::map<int64_t, std::string> task_states = slurm_task_states(ended_array);
  for (const Shard& shard : shards) {
    given.insert(shard.header.shard->index);
    for (StoredRun run : shard.runs) {
      const std::string id = run.info.run_id;
      if (run.status == "complete" && taken_from.count(id)) {
        report.duplicates.push_back(fmt::format("{} (kept from '{}', also complete in '{}')", id, taken_from[id],
                                                shard.path));
        continue;
      }
      if (run.status == "complete") taken_from[id] = shard.path;
      else if (existing.count(id) && existing[id].status == "complete") continue;  // never replace a complete run
      run.provenance = provenance_json(shard.header.provenance, shard.path, *shard.header.shard);
      if (run.status == "running" && !ended_array.empty())
        record_dead_task(run, *shard.header.shard, ended_array, task_states);
      if (existing.count(id) && same_run(existing[id], run)) {
        report.unchanged.push_back(id);
        continue;
      }
      to_import.erase(std::remove_if(to_import.begin(), to_import.end(),
                                     [&](const StoredRun& r) { return r.info.run_id == id; }),
                      to_import.end());
      to_import.push_back(std::move(run));
    }
  }
  for (const StoredRun& run : to_import) report.imported.push_back(run.info.run_id);
  if (!to_import.empty()) out.import_runs(to_import);

  for (const StoredRun& run : out.read_runs(false)) {
    if (run.status == "complete") ++report.complete;
    else report.missing.push_back(fmt::format("{} ({})", run.info.run_id, run.status));
  }
  // Runs of shards not given and never merged before have no ids here: name their shards.
  const int64_t absent = report.sweep_runs - static_cast<int64_t>(report.complete + report.missing.size());
  if (absent > 0)
    for (int64_t i = 0; i < first.header.shard->count; ++i)
      if (!given.count(i))
        report.missing.push_back(fmt::format("shard {}/{} (not given; {} runs of the sweep are not in '{}' at all)", i,
                                             first.header.shard->count, absent, out_path));
  return report;
}

}  // namespace smyrf
