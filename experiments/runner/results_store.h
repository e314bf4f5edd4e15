// ResultsStore: the HDF5 results file of one experiment (schema: results/README.md).
//
//   /                      attrs: schema_version, harness_version, git_sha, git_dirty, created_utc,
//                                 host, device, torch_version, config_json (config as given),
//                                 [shard_json {"index", "count", "runs", "sweep_runs"}: a shard file
//                                 of `smyrf run --shard`]
//   /runs/<run_id>/        attrs: status, config_json (resolved), sweep_point_json, method,
//                                 knobs_json and one integer attribute per knob it names, seed,
//                                 started, [finished, error, memory_fraction, provenance_json (the
//                                 shard file's provenance, for runs merged from one)]
//   /runs/<run_id>/metrics/<name>   float64 scalar, attrs unit, higher_is_better
//   /runs/<run_id>/curves/<name>    1-D float64
//   /runs/<run_id>/tensors/<name>   N-D float64 (float32 when NamedArray::store_float32)
//   /summary               compound table, one row per run, rebuilt on every change
//
// Writers: one process per file, enforced by WriterLock (an flock on `<path>.lock`, released when
// the process dies); readers (report, status) need no lock.
//
// Crash safety: a sweep may be killed (SIGKILL, node preemption) at any instant, and an HDF5 1.10
// file that is open for writing when its process dies can be left unreadable. So the file is
// never open between operations, and every mutation is atomic at the file level: the current
// file is copied to `<path>.tmp-<pid>` (repacked instead, to drop space HDF5 cannot reuse, on
// this object's first change and whenever the file has doubled), the copy is modified and
// closed, fsync'ed, and rename()d over `<path>`. A crash leaves the old or the new file, never a
// mix; a mutation that throws midway leaves the old file untouched and removes its copy. Stale
// `.tmp-<pid>` siblings of dead processes are deleted on open. One writing process per file:
// parallel workers write separate shard files (merged with import_runs()).
//
// Run lifecycle: mark_running() -> complete() | fail() | interrupt(). Resuming a sweep skips runs
// whose status is "complete"; a run left "running" by a killed process, a "failed" one and an
// "interrupted" one (stopped by a signal, e.g. before a Slurm time limit, after a checkpoint) are
// redone (mark_running clears what it had written). Tested by tests/light/test_results_store.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "core/util/hdf5_file.h"
#include "core/util/provenance.h"

namespace smyrf {

inline constexpr int64_t kResultsSchemaVersion = 1;

struct Metric {
  double value = 0;
  std::string unit;  // "1" (dimensionless), "fraction", "s", "bytes", "count", ...
  bool higher_is_better = false;
};

// Stored as float64 by default; store_float32 halves the size of large captures (Q/K/V) where
// float32 is the source precision anyway.
struct NamedArray {
  std::vector<double> data;
  std::vector<int64_t> dims;  // row-major; must multiply to data.size(); empty means 1-D
  bool store_float32 = false;
};

struct RunResult {
  std::map<std::string, Metric> metrics;              // -> /runs/<id>/metrics/<name>
  std::map<std::string, std::vector<double>> curves;  // -> /runs/<id>/curves/<name>
  std::map<std::string, NamedArray> tensors;          // -> /runs/<id>/tensors/<name>
  // Text beside the numbers: why a metric is unavailable (FID without Inception weights), or what
  // produced one (weights, sample count). -> string attributes of /runs/<id>/notes
  std::map<std::string, std::string> notes;
};

struct RunInfo {
  std::string run_id;              // group name: non-empty, no '/', not "." or ".."
  nlohmann::json resolved_config;  // the full config of this run
  nlohmann::json sweep_point;      // {"attention.n_hashes": 2, ...} (nested objects are flattened)
  std::string method;
  // The method's size knobs and their values, in the method's order (AttentionMethod::
  // reported_knobs(): smyrf n_hashes, q_cluster_size; hyper block_size, sample_size; ...).
  std::vector<std::pair<std::string, int64_t>> knobs;
  int64_t seed = 0;
};

// Every knob name of `runs`, in order of first appearance, and one run's value of one knob.
struct StoredRun;
std::vector<std::string> knob_names(const std::vector<StoredRun>& runs);
std::optional<int64_t> knob_value(const RunInfo& info, const std::string& name);

// Everything stored about one run, as read back.
struct StoredRun {
  RunInfo info;
  std::string status;    // "complete" | "failed" | "running" | "interrupted"
  std::string error;     // set when failed
  std::string started;   // ISO-8601 UTC
  std::string finished;  // "" while running
  std::optional<double> memory_fraction;
  nlohmann::json provenance;  // the shard file's provenance for runs merged from one; else null
  RunResult result;  // curves and tensors are only filled when read with include_arrays
};

// One of `count` disjoint parts of a sweep: the runs whose position in the expanded sweep is
// index modulo count (index 0-based). Written as "I/N".
struct ShardSpec {
  int64_t index = 0, count = 1;
  // Recorded in a shard file (not compared): the shard's run ids and the sweep's run count, so that
  // `smyrf merge` and `smyrf status` know what a shard should hold without the config.
  std::vector<std::string> run_ids;
  int64_t sweep_runs = 0;
  bool operator==(const ShardSpec& o) const { return index == o.index && count == o.count; }
  bool operator!=(const ShardSpec& o) const { return !(*this == o); }
  std::string label() const;  // "I/N"
  // Parses "I/N" with 0 <= I < N; ConfigError naming `what` (e.g. "--shard") otherwise.
  static ShardSpec parse(const std::string& text, const std::string& what);
  bool holds(size_t run_position) const { return static_cast<int64_t>(run_position % count) == index; }
};

// Root attributes of a results file.
struct ResultsHeader {
  int64_t schema_version = 0;
  Provenance provenance;
  nlohmann::json config;  // the config as given (before sweep expansion)
  std::optional<ShardSpec> shard;  // set in shard files
};

// A top-level key of the experiment's config ("name", "pipeline"): from the config as given, else
// (a config that inherits it through `extends`) from the first run's resolved config; "" if absent.
std::string experiment_field(const ResultsHeader& header, const std::vector<StoredRun>& runs, const std::string& key);

// One /summary column and where it came from.
struct SummaryColumn {
  H5Column column;
  std::string source;  // "run" (run_id, status, method), "knob", "sweep", "metric"
  std::string key;     // knob/metric name or the sweep point's dotted path
  std::string unit;    // metrics only: the first unit seen for that metric
};

// The /summary columns for these runs, in order: run_id, status, method; one per knob of the runs'
// methods (float64, NaN when a run's method has none); one per sweep-point key in
// order of first appearance (named by the leaf of the dotted path, or the full path when leaves
// collide; float64 when every value is a number, else strings, "" / NaN when absent); then every
// metric name of any run, sorted (float64, NaN when a run lacks it). Rows follow `runs`.
std::vector<SummaryColumn> summarize_runs(const std::vector<StoredRun>& runs);

class ResultsStore {
 public:
  // Creates the file with its root attributes or opens an existing one, after deleting stale
  // temporary copies. Throws IoError when the location is not writable, the file is not a
  // readable HDF5 file, its schema_version differs, or it holds another experiment (config
  // "name" differs; the message names both).
  // With `shard`, the file is (or must already be) that shard's file.
  static ResultsStore open_or_create(const std::string& path, const nlohmann::json& config_as_given,
                                     const Provenance& provenance, const std::optional<ShardSpec>& shard = std::nullopt);
  // Opens a file that must already exist (report, merge); IoError when missing or not a
  // results file.
  static ResultsStore open_existing(const std::string& path);

  const std::string& path() const { return path_; }
  ResultsHeader header() const;
  std::vector<std::string> run_ids() const;  // sorted
  std::optional<std::string> status(const std::string& run_id) const;
  std::optional<nlohmann::json> resolved_config(const std::string& run_id) const;

  // (Re)creates /runs/<id>, deleting anything an earlier attempt wrote; status=running, started=now.
  void mark_running(const RunInfo& info);
  // Writes metrics, curves and tensors (replacing earlier ones), copies metric "memory_fraction"
  // into the run's attrs, sets status=complete and finished=now, and rebuilds /summary. The run
  // must have been marked running. Invalid names or shapes throw and leave the file unchanged.
  void complete(const std::string& run_id, const RunResult& result);
  // status=failed, error, finished=now; rebuilds /summary. Creates the run group when missing.
  void fail(const std::string& run_id, const std::string& error);
  // As fail(), with status=interrupted: the run stopped on a signal and is redone (from its
  // checkpoint, where its pipeline makes them) by the next `smyrf run`.
  void interrupt(const std::string& run_id, const std::string& reason);
  // All runs, sorted by id. include_arrays=false skips curves and tensors (faster for reports).
  std::vector<StoredRun> read_runs(bool include_arrays = true) const;
  // Writes runs verbatim (status and timestamps included), replacing runs with the same id, in
  // one atomic mutation; used to merge shard files.
  void import_runs(const std::vector<StoredRun>& runs);

 private:
  struct FileStamp {
    uint64_t inode = 0, size = 0;
    int64_t mtime_ns = 0;
    bool operator==(const FileStamp& o) const { return inode == o.inode && size == o.size && mtime_ns == o.mtime_ns; }
  };
  static FileStamp stamp_of(const std::string& path);

  explicit ResultsStore(std::string path) : path_(std::move(path)) {}
  void end_run(const std::string& run_id, const std::string& status, const std::string& error);
  // Applies `edit` to a private copy of the file, rebuilds /summary, and renames the copy into
  // place (see the header comment). `edit` returns the ids of the runs it changed.
  void mutate(const std::function<std::vector<std::string>(H5File&)>& edit);

  std::string path_;
  // Runs without arrays as of this object's last write, so that rebuilding /summary does not
  // re-read every run; used only while the file still has stamp_ (no one else wrote it).
  std::map<std::string, StoredRun> cache_;
  FileStamp stamp_;
  bool cache_valid_ = false;
  uint64_t packed_size_ = 0;  // file size after the last repack
};

// The one writer of a results file: holds an exclusive flock on `<path>.lock` (with the holder's
// pid written in it) until destroyed. A second writer gets an IoError naming the file and the pid.
class WriterLock {
 public:
  explicit WriterLock(const std::string& results_path);
  ~WriterLock();
  WriterLock(const WriterLock&) = delete;
  WriterLock& operator=(const WriterLock&) = delete;

 private:
  int fd_ = -1;
};

// How a worker process hands its run to the runner: a small HDF5 file holding one RunResult in a
// run group's layout (metrics/, curves/, tensors/, notes under "/"), or the run's error (root
// attribute `error`). Tensors go straight to HDF5 and come back bit for bit.
void write_worker_result(const std::string& path, const RunResult& result);
void write_worker_error(const std::string& path, const std::string& error);
// The result, or the error text; IoError when the file is missing or not a worker's result.
struct WorkerResult {
  std::optional<RunResult> result;
  std::string error;
};
WorkerResult read_worker_result(const std::string& path);

}  // namespace smyrf
