// ResultsStore implementation: run groups, /summary, and the copy-modify-rename protocol that
// keeps a results file intact when the process is killed. Tested by
// tests/light/test_results_store.cpp (including a SIGKILL-during-sweep test).
#include "experiments/runner/results_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>
#include <variant>

#include <fmt/ranges.h>

#include "core/util/check.h"
#include "core/util/json_parse.h"

namespace smyrf {
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kRunsGroup = "runs";
constexpr const char* kSummaryDataset = "summary";
constexpr const char* kTempInfix = ".tmp-";
// Garbage tolerated before a repack even in a tiny file.
constexpr uint64_t kRepackSlackBytes = 256 * 1024;

std::string run_group(const std::string& run_id) { return std::string(kRunsGroup) + "/" + run_id; }

std::string dump_json(const nlohmann::json& j) {
  // replace: a stray non-UTF-8 byte in a config string must not lose a finished run.
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string directory_of(const std::string& path) {
  fs::path parent = fs::path(path).parent_path();
  return parent.empty() ? std::string(".") : parent.string();
}

// HDF5 link names cannot contain '/', and "." / ".." would address another group.
void check_name(const std::string& store_path, const char* kind, const std::string& name,
                const std::string& run_id = "") {
  if (!name.empty() && name.find('/') == std::string::npos && name != "." && name != "..") return;
  const std::string where = run_id.empty() ? "" : fmt::format(" of run '{}'", run_id);
  throw Error(fmt::format("cannot store {} '{}'{} in results file '{}': names must be non-empty, must not contain "
                          "'/' and must not be '.' or '..'; rename it",
                          kind, name, where, store_path));
}

void fsync_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) {
    throw IoError(fmt::format("cannot reopen '{}' to flush it ({}); check the output directory", path,
                              std::strerror(errno)));
  }
  const int rc = ::fsync(fd);
  const int saved = errno;
  ::close(fd);
  if (rc != 0) {
    throw IoError(fmt::format("flushing '{}' to disk failed ({}); check free disk space", path, std::strerror(saved)));
  }
}

// Makes the rename durable. Best effort: some file systems refuse fsync on directories.
void fsync_directory(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

// Deletes `<file>.tmp-<pid>` siblings whose process is gone: copies abandoned by a killed writer.
void remove_stale_temps(const std::string& path) {
  const std::string prefix = fs::path(path).filename().string() + kTempInfix;
  std::error_code ec;
  for (fs::directory_iterator it(directory_of(path), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string suffix = name.substr(prefix.size());
    if (!std::all_of(suffix.begin(), suffix.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
        suffix.size() > 9) {
      continue;
    }
    const pid_t pid = static_cast<pid_t>(std::stol(suffix));
    const bool gone = pid == ::getpid() || (::kill(pid, 0) != 0 && errno == ESRCH);
    if (gone) {
      std::error_code remove_ec;
      fs::remove(it->path(), remove_ec);
    }
  }
}

nlohmann::json parse_json_text(const std::string& text, const std::string& name, const std::string& obj_path,
                               const std::string& file_path) {
  return parse_json(text, {fmt::format("attribute '{}' of '/{}' in results file '{}'", name, obj_path, file_path),
                           "the file is damaged: delete it and re-run"});
}

nlohmann::json parse_json_attr(const H5File& file, const std::string& obj_path, const std::string& name,
                               const nlohmann::json& fallback) {
  auto text = file.attr_string(obj_path, name);
  return text ? parse_json_text(*text, name, obj_path, file.path()) : fallback;
}

// ---------------------------------------------------------------- reading runs

// Typed lookups in an attribute map; a present attribute of the wrong type means the file was
// not written by this harness (or is damaged).
class AttrMap {
 public:
  AttrMap(const H5File& file, std::string obj_path)
      : file_(file), obj_path_(std::move(obj_path)), attrs_(file.read_attrs(obj_path_)) {}

  std::optional<std::string> string(const char* name) const { return get<std::string>(name, "a string"); }
  std::optional<bool> boolean(const char* name) const { return get<bool>(name, "a bool"); }
  std::optional<int64_t> integer(const char* name) const { return get<int64_t>(name, "an integer"); }
  std::optional<double> number(const char* name) const {
    auto it = attrs_.find(name);
    if (it != attrs_.end() && std::holds_alternative<int64_t>(it->second)) {
      return static_cast<double>(std::get<int64_t>(it->second));
    }
    return get<double>(name, "a number");
  }
  nlohmann::json json(const char* name, const nlohmann::json& fallback) const {
    auto text = string(name);
    return text ? parse_json_text(*text, name, obj_path_, file_.path()) : fallback;
  }

 private:
  template <class T>
  std::optional<T> get(const char* name, const char* wanted) const {
    auto it = attrs_.find(name);
    if (it == attrs_.end()) return std::nullopt;
    if (!std::holds_alternative<T>(it->second)) {
      throw IoError(fmt::format("attribute '{}' of '/{}' in results file '{}' is not {}; the file was not written "
                                "by this harness or is damaged",
                                name, obj_path_, file_.path(), wanted));
    }
    return std::get<T>(it->second);
  }

  const H5File& file_;
  std::string obj_path_;
  std::map<std::string, H5AttrValue> attrs_;
};

// The knobs named by knobs_json; files written before it existed knew SMYRF's three only.
std::vector<std::pair<std::string, int64_t>> read_knobs(const AttrMap& attrs) {
  const nlohmann::json names =
      attrs.json("knobs_json", nlohmann::json{"n_hashes", "q_cluster_size", "k_cluster_size"});
  std::vector<std::pair<std::string, int64_t>> knobs;
  if (!names.is_array()) return knobs;
  for (const auto& name : names)
    if (name.is_string())
      if (const auto value = attrs.integer(name.get<std::string>().c_str())) knobs.emplace_back(name, *value);
  return knobs;
}

RunResult read_result(const H5File& file, const std::string& group, bool include_arrays);

StoredRun read_run(const H5File& file, const std::string& run_id, bool include_arrays) {
  const std::string group = run_group(run_id);
  const AttrMap attrs(file, group);
  StoredRun run;
  run.info.run_id = run_id;
  run.info.resolved_config = attrs.json("config_json", nlohmann::json());
  run.info.sweep_point = attrs.json("sweep_point_json", nlohmann::json::object());
  run.info.method = attrs.string("method").value_or("");
  run.info.knobs = read_knobs(attrs);
  run.info.seed = attrs.integer("seed").value_or(0);
  run.status = attrs.string("status").value_or("");
  run.error = attrs.string("error").value_or("");
  run.started = attrs.string("started").value_or("");
  run.finished = attrs.string("finished").value_or("");
  run.memory_fraction = attrs.number("memory_fraction");
  run.provenance = attrs.json("provenance_json", nlohmann::json());
  run.result = read_result(file, group, include_arrays);
  return run;
}

// The metrics, notes (and with include_arrays the curves and tensors) under `group`.
RunResult read_result(const H5File& file, const std::string& group, bool include_arrays) {
  RunResult result;
  const std::string metrics = group + "/metrics";
  if (file.is_group(metrics)) {
    for (const auto& name : file.children(metrics)) {
      const std::string dset = metrics + "/" + name;
      const AttrMap metric_attrs(file, dset);
      Metric m;
      m.value = file.read_scalar(dset);
      m.unit = metric_attrs.string("unit").value_or("");
      m.higher_is_better = metric_attrs.boolean("higher_is_better").value_or(false);
      result.metrics.emplace(name, std::move(m));
    }
  }
  if (file.is_group(group + "/notes")) {
    const AttrMap notes(file, group + "/notes");
    for (const auto& item : file.read_attrs(group + "/notes"))
      if (auto text = notes.string(item.first.c_str())) result.notes.emplace(item.first, *text);
  }
  if (!include_arrays) return result;
  const std::string curves = group + "/curves";
  if (file.is_group(curves)) {
    for (const auto& name : file.children(curves)) {
      result.curves.emplace(name, file.read_array_f64(curves + "/" + name).data);
    }
  }
  const std::string tensors = group + "/tensors";
  if (file.is_group(tensors)) {
    for (const auto& name : file.children(tensors)) {
      const std::string dset = tensors + "/" + name;
      H5Array<double> array = file.read_array_f64(dset);
      NamedArray named{std::move(array.data), std::move(array.dims), file.stored_element_bits(dset) == 32};
      result.tensors.emplace(name, std::move(named));
    }
  }
  return result;
}

std::vector<StoredRun> read_all_runs(const H5File& file, bool include_arrays) {
  std::vector<StoredRun> runs;
  if (!file.is_group(kRunsGroup)) return runs;
  for (const auto& id : file.children(kRunsGroup)) runs.push_back(read_run(file, id, include_arrays));
  return runs;
}

// ---------------------------------------------------------------- writing runs

void write_run_attrs(H5File& file, const StoredRun& run) {
  const std::string group = run_group(run.info.run_id);
  file.set_attr(group, "status", run.status);
  file.set_attr(group, "config_json", dump_json(run.info.resolved_config));
  file.set_attr(group, "sweep_point_json",
                dump_json(run.info.sweep_point.is_null() ? nlohmann::json::object() : run.info.sweep_point));
  file.set_attr(group, "method", run.info.method);
  nlohmann::json knob_names = nlohmann::json::array();
  static const std::set<std::string> kRunAttributes = {"status",  "config_json", "sweep_point_json", "method",
                                                       "knobs_json", "seed", "started", "finished",
                                                       "error", "memory_fraction", "provenance_json"};
  for (const auto& [name, value] : run.info.knobs) {
    if (kRunAttributes.count(name))
      throw Error(fmt::format("method '{}' reports a knob named '{}', which is a run attribute of the results "
                              "file; rename the knob", run.info.method, name));
    file.set_attr(group, name, value);
    knob_names.push_back(name);
  }
  file.set_attr(group, "knobs_json", dump_json(knob_names));
  file.set_attr(group, "seed", run.info.seed);
  file.set_attr(group, "started", run.started);
  if (!run.finished.empty()) file.set_attr(group, "finished", run.finished);
  if (!run.error.empty()) file.set_attr(group, "error", run.error);
  if (run.memory_fraction) file.set_attr(group, "memory_fraction", *run.memory_fraction);
  if (!run.provenance.is_null()) file.set_attr(group, "provenance_json", dump_json(run.provenance));
}

// Writes results in a fixed order (metrics, curves, tensors), checking each name and shape as it
// goes: a bad entry throws after earlier ones were written, which the copy-and-rename protocol
// must (and the tests check that it does) undo.
void write_result(H5File& file, const std::string& store_path, const std::string& run_id, const std::string& group,
                  const RunResult& result) {
  for (const char* sub : {"metrics", "curves", "tensors", "notes"}) {
    file.remove(group + "/" + sub);
    file.create_groups(group + "/" + sub);
  }
  for (const auto& [name, metric] : result.metrics) {
    check_name(store_path, "metric", name, run_id);
    const std::string dset = group + "/metrics/" + name;
    file.write_scalar(dset, metric.value);
    file.set_attr(dset, "unit", metric.unit);
    file.set_attr(dset, "higher_is_better", metric.higher_is_better);
  }
  for (const auto& [name, text] : result.notes) {
    check_name(store_path, "note", name, run_id);
    file.set_attr(group + "/notes", name, text);
  }
  for (const auto& [name, curve] : result.curves) {
    check_name(store_path, "curve", name, run_id);
    file.write_array(group + "/curves/" + name, curve);
  }
  for (const auto& [name, tensor] : result.tensors) {
    check_name(store_path, "tensor", name, run_id);
    int64_t count = 1;
    for (int64_t d : tensor.dims) count *= d >= 0 ? d : -1;
    if (!tensor.dims.empty() && (count < 0 || static_cast<size_t>(count) != tensor.data.size())) {
      throw Error(fmt::format("cannot store tensor '{}' of run '{}' in results file '{}': shape [{}] does not hold "
                              "its {} values; fix the dims",
                              name, run_id, store_path, fmt::join(tensor.dims, ", "), tensor.data.size()));
    }
    const std::string dset = group + "/tensors/" + name;
    if (tensor.store_float32) {
      file.write_array(dset, std::vector<float>(tensor.data.begin(), tensor.data.end()), tensor.dims);
    } else {
      file.write_array(dset, tensor.data, tensor.dims);
    }
  }
}

void write_run(H5File& file, const std::string& store_path, const StoredRun& run) {
  check_name(store_path, "run id", run.info.run_id);
  const std::string group = run_group(run.info.run_id);
  file.remove(group);
  file.create_groups(group);
  write_run_attrs(file, run);
  write_result(file, store_path, run.info.run_id, run_group(run.info.run_id), run.result);
}

void write_summary(H5File& file, const std::vector<StoredRun>& runs) {
  const std::vector<SummaryColumn> columns = summarize_runs(runs);
  std::vector<H5Column> table;
  nlohmann::json described = nlohmann::json::array();
  for (const auto& c : columns) {
    table.push_back(c.column);
    described.push_back({{"name", c.column.name}, {"source", c.source}, {"key", c.key}, {"unit", c.unit}});
  }
  file.write_table(kSummaryDataset, table);
  file.set_attr(kSummaryDataset, "columns_json", dump_json(described));
}

void write_header(H5File& file, const nlohmann::json& config, const Provenance& p,
                  const std::optional<ShardSpec>& shard) {
  file.set_attr("/", "schema_version", kResultsSchemaVersion);
  write_provenance_attrs(file, p);
  file.set_attr("/", "config_json", dump_json(config));
  if (shard)
    file.set_attr("/", "shard_json", dump_json({{"index", shard->index}, {"count", shard->count},
                                               {"runs", shard->run_ids}, {"sweep_runs", shard->sweep_runs}}));
  file.create_groups(kRunsGroup);
}

// Checks that an open file is a results file this harness can read.
void check_results_file(const H5File& file) {
  auto version = file.attr_int("/", "schema_version");
  if (!version) {
    throw IoError(fmt::format("'{}' is an HDF5 file but not a smyrf results file (no schema_version attribute); "
                              "delete it or choose another output path",
                              file.path()));
  }
  if (*version != kResultsSchemaVersion) {
    throw IoError(fmt::format("'{}' uses results schema version {}, but this harness reads version {}; use the "
                              "harness version that wrote it, or choose another output path",
                              file.path(), *version, kResultsSchemaVersion));
  }
}

std::string config_name(const nlohmann::json& config) {
  if (config.is_object() && config.contains("name") && config["name"].is_string()) {
    return config["name"].get<std::string>();
  }
  return "";
}

void flatten_json(const nlohmann::json& value, const std::string& prefix,
                  std::vector<std::pair<std::string, nlohmann::json>>& out) {
  if (value.is_object()) {
    for (const auto& [key, child] : value.items()) flatten_json(child, prefix.empty() ? key : prefix + "." + key, out);
  } else if (!prefix.empty()) {
    out.emplace_back(prefix, value);
  }
}

std::string leaf_of(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

}  // namespace

// ---------------------------------------------------------------- summary

std::vector<SummaryColumn> summarize_runs(const std::vector<StoredRun>& runs) {
  const size_t n = runs.size();
  std::vector<SummaryColumn> out;
  std::set<std::string> taken;
  auto add = [&](SummaryColumn c) {
    taken.insert(c.column.name);
    out.push_back(std::move(c));
  };
  auto string_column = [&](const std::string& name, auto&& get) {
    SummaryColumn c{H5Column{name, true, {}, {}}, "run", name, ""};
    for (const auto& r : runs) c.column.strings.push_back(get(r));
    add(std::move(c));
  };
  string_column("run_id", [](const StoredRun& r) { return r.info.run_id; });
  string_column("status", [](const StoredRun& r) { return r.status; });
  string_column("method", [](const StoredRun& r) { return r.info.method; });

  for (const std::string& name : knob_names(runs)) {
    SummaryColumn c{H5Column{name, false, {}, {}}, "knob", name, ""};
    for (const auto& r : runs) {
      const std::optional<int64_t> v = knob_value(r.info, name);
      c.column.numbers.push_back(v ? static_cast<double>(*v) : kNaN);
    }
    add(std::move(c));
  }

  // Sweep keys in order of first appearance, values per run.
  std::vector<std::string> keys;
  std::vector<std::map<std::string, nlohmann::json>> points(n);
  for (size_t i = 0; i < n; ++i) {
    std::vector<std::pair<std::string, nlohmann::json>> flat;
    flatten_json(runs[i].info.sweep_point, "", flat);
    for (auto& [key, value] : flat) {
      if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
      points[i][key] = std::move(value);
    }
  }
  std::map<std::string, int> leaf_count;
  for (const auto& key : keys) ++leaf_count[leaf_of(key)];
  for (const auto& key : keys) {
    std::string name = leaf_of(key);
    if (leaf_count[name] > 1 || taken.count(name) > 0) name = key;
    if (taken.count(name) > 0) name = "sweep:" + key;
    bool numeric = true;
    for (const auto& point : points) {
      auto it = point.find(key);
      if (it != point.end() && !it->second.is_number()) numeric = false;
    }
    SummaryColumn c{H5Column{name, !numeric, {}, {}}, "sweep", key, ""};
    for (const auto& point : points) {
      auto it = point.find(key);
      if (numeric) {
        c.column.numbers.push_back(it == point.end() ? kNaN : it->second.get<double>());
      } else if (it == point.end()) {
        c.column.strings.emplace_back();
      } else {
        c.column.strings.push_back(it->second.is_string() ? it->second.get<std::string>() : dump_json(it->second));
      }
    }
    add(std::move(c));
  }

  std::map<std::string, std::string> metric_units;  // sorted names, first unit seen
  for (const auto& r : runs) {
    for (const auto& [name, m] : r.result.metrics) metric_units.emplace(name, m.unit);
  }
  for (const auto& [metric, unit] : metric_units) {
    const std::string name = taken.count(metric) > 0 ? "metric:" + metric : metric;
    SummaryColumn c{H5Column{name, false, {}, {}}, "metric", metric, unit};
    for (const auto& r : runs) {
      auto it = r.result.metrics.find(metric);
      c.column.numbers.push_back(it == r.result.metrics.end() ? kNaN : it->second.value);
    }
    add(std::move(c));
  }
  return out;
}

// ---------------------------------------------------------------- ResultsStore

ResultsStore ResultsStore::open_or_create(const std::string& path, const nlohmann::json& config_as_given,
                                          const Provenance& provenance, const std::optional<ShardSpec>& shard) {
  const std::string dir = directory_of(path);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec || !fs::is_directory(dir)) {
    throw IoError(fmt::format("cannot create directory '{}' for results file '{}' ({}); set output.path to a "
                              "writable location",
                              dir, path, ec ? ec.message() : "not a directory"));
  }
  // The file is replaced by renaming a sibling copy, so the directory itself must be writable;
  // failing here beats failing after the first run has computed.
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    throw IoError(fmt::format("cannot write results file '{}': directory '{}' is not writable; set output.path "
                              "to a writable location",
                              path, dir));
  }
  remove_stale_temps(path);

  ResultsStore store(path);
  if (fs::exists(path, ec)) {
    H5File file = H5File::open(path, /*writable=*/false);
    check_results_file(file);
    const nlohmann::json stored = parse_json_attr(file, "", "config_json", nlohmann::json::object());
    const std::string stored_name = config_name(stored);
    const std::string given_name = config_name(config_as_given);
    if (stored_name != given_name) {
      throw IoError(fmt::format("results file '{}' holds runs of experiment '{}', not of '{}'; choose another "
                                "output.path for '{}' or delete the file",
                                path, stored_name, given_name, given_name));
    }
    const std::optional<ShardSpec> stored_shard = store.header().shard;
    if (stored_shard != shard)
      throw IoError(fmt::format("results file '{}' is {}, but this run writes {}; give each shard its own file "
                                "(--output)", path, stored_shard ? "shard " + stored_shard->label() : "not a shard file",
                                shard ? "shard " + shard->label() : "the whole sweep"));
    return store;
  }

  const std::string tmp = path + kTempInfix + std::to_string(::getpid());
  try {
    H5File file = H5File::create(tmp);
    write_header(file, config_as_given, provenance, shard);
    write_summary(file, {});
    file.close();
    fsync_file(tmp);
    if (std::rename(tmp.c_str(), path.c_str()) != 0) {
      throw IoError(fmt::format("cannot create results file '{}' ({}); set output.path to a writable location",
                                path, std::strerror(errno)));
    }
    fsync_directory(dir);
  } catch (const IoError& e) {
    fs::remove(tmp, ec);
    throw IoError(fmt::format("cannot create results file '{}': {}; set output.path to a writable location", path,
                              e.what()));
  } catch (...) {
    fs::remove(tmp, ec);
    throw;
  }
  return store;
}

ResultsStore ResultsStore::open_existing(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    throw IoError(fmt::format("results file '{}' does not exist; check the path (results are written to the "
                              "config's output.path)",
                              path));
  }
  H5File file = H5File::open(path, /*writable=*/false);
  check_results_file(file);
  return ResultsStore(path);
}

ResultsStore::FileStamp ResultsStore::stamp_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return FileStamp{};
  return FileStamp{static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
                   static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

void ResultsStore::mutate(const std::function<std::vector<std::string>(H5File&)>& edit) {
  const std::string tmp = path_ + kTempInfix + std::to_string(::getpid());
  const FileStamp before = stamp_of(path_);
  // The run cache is trusted only while the file is exactly the one this object last wrote.
  const bool cache_valid = cache_valid_ && before == stamp_;
  try {
    // HDF5 1.10 forgets space freed in an earlier session, so replacing /summary and run groups
    // leaks their old copies (~13 kB per change for a small run). A repack (rewrite of the live
    // objects) reclaims that but costs far more than a byte copy, so it runs on the first change
    // made through this object and whenever the file has doubled since the last repack.
    const bool repack = !cache_valid || before.size > 2 * packed_size_ + kRepackSlackBytes;
    if (repack) {
      H5File::repack(path_, tmp);
    } else {
      fs::copy_file(path_, tmp, fs::copy_options::overwrite_existing);
    }
    H5File file = H5File::open(tmp, /*writable=*/true);
    std::map<std::string, StoredRun> runs;
    if (cache_valid) {
      runs = cache_;
    } else {
      for (auto& run : read_all_runs(file, /*include_arrays=*/false)) runs.emplace(run.info.run_id, std::move(run));
    }
    for (const auto& id : edit(file)) {
      if (file.is_group(run_group(id))) {
        runs[id] = read_run(file, id, /*include_arrays=*/false);
      } else {
        runs.erase(id);
      }
    }
    std::vector<StoredRun> ordered;
    ordered.reserve(runs.size());
    for (const auto& [id, run] : runs) ordered.push_back(run);
    write_summary(file, ordered);
    file.close();
    fsync_file(tmp);
    if (std::rename(tmp.c_str(), path_.c_str()) != 0) {
      throw IoError(fmt::format("cannot replace results file '{}' with its updated copy '{}' ({}); check that the "
                                "directory is writable",
                                path_, tmp, std::strerror(errno)));
    }
    cache_ = std::move(runs);
    stamp_ = stamp_of(path_);
    cache_valid_ = true;
    if (repack) packed_size_ = stamp_.size;
  } catch (const fs::filesystem_error& e) {
    std::error_code ec;
    fs::remove(tmp, ec);
    cache_valid_ = false;
    throw IoError(fmt::format("cannot copy results file '{}' to '{}' ({}); check free disk space and that the "
                              "directory is writable",
                              path_, tmp, e.code().message()));
  } catch (...) {
    std::error_code ec;
    fs::remove(tmp, ec);
    cache_valid_ = false;
    throw;
  }
  fsync_directory(directory_of(path_));
}

ResultsHeader ResultsStore::header() const {
  H5File file = H5File::open(path_, /*writable=*/false);
  ResultsHeader h;
  h.schema_version = file.attr_int("/", "schema_version").value_or(0);
  h.provenance.harness_version = file.attr_string("/", "harness_version").value_or("");
  h.provenance.git_sha = file.attr_string("/", "git_sha").value_or("");
  h.provenance.git_dirty = file.attr_bool("/", "git_dirty").value_or(false);
  h.provenance.created_utc = file.attr_string("/", "created_utc").value_or("");
  h.provenance.host = file.attr_string("/", "host").value_or("");
  h.provenance.device = file.attr_string("/", "device").value_or("");
  h.provenance.torch_version = file.attr_string("/", "torch_version").value_or("");
  h.config = parse_json_attr(file, "", "config_json", nlohmann::json::object());
  const nlohmann::json shard = parse_json_attr(file, "", "shard_json", nlohmann::json());
  if (shard.is_object()) {
    h.shard = ShardSpec{shard.value("index", int64_t{0}), shard.value("count", int64_t{1})};
    h.shard->run_ids = shard.value("runs", std::vector<std::string>{});
    h.shard->sweep_runs = shard.value("sweep_runs", int64_t{0});
  }
  return h;
}

std::vector<std::string> ResultsStore::run_ids() const {
  H5File file = H5File::open(path_, /*writable=*/false);
  return file.is_group(kRunsGroup) ? file.children(kRunsGroup) : std::vector<std::string>{};
}

std::optional<std::string> ResultsStore::status(const std::string& run_id) const {
  check_name(path_, "run id", run_id);
  H5File file = H5File::open(path_, /*writable=*/false);
  return file.attr_string(run_group(run_id), "status");
}

std::optional<nlohmann::json> ResultsStore::resolved_config(const std::string& run_id) const {
  check_name(path_, "run id", run_id);
  H5File file = H5File::open(path_, /*writable=*/false);
  const std::string group = run_group(run_id);
  if (!file.has_attr(group, "config_json")) return std::nullopt;
  return parse_json_attr(file, group, "config_json", nlohmann::json());
}

void ResultsStore::mark_running(const RunInfo& info) {
  check_name(path_, "run id", info.run_id);
  StoredRun run;
  run.info = info;
  run.status = "running";
  run.started = utc_now_iso8601();
  mutate([&](H5File& file) {
    write_run(file, path_, run);
    return std::vector<std::string>{info.run_id};
  });
}

void ResultsStore::complete(const std::string& run_id, const RunResult& result) {
  check_name(path_, "run id", run_id);
  mutate([&](H5File& file) {
    const std::string group = run_group(run_id);
    if (!file.is_group(group)) {
      throw Error(fmt::format("cannot complete run '{}' in results file '{}': it was never marked running (call "
                              "mark_running first)",
                              run_id, path_));
    }
    write_result(file, path_, run_id, run_group(run_id), result);
    if (auto it = result.metrics.find("memory_fraction"); it != result.metrics.end()) {
      file.set_attr(group, "memory_fraction", it->second.value);
    } else {
      file.remove_attr(group, "memory_fraction");
    }
    file.remove_attr(group, "error");
    file.set_attr(group, "status", "complete");
    file.set_attr(group, "finished", utc_now_iso8601());
    return std::vector<std::string>{run_id};
  });
}

void ResultsStore::fail(const std::string& run_id, const std::string& error) { end_run(run_id, "failed", error); }

void ResultsStore::interrupt(const std::string& run_id, const std::string& reason) {
  end_run(run_id, "interrupted", reason);
}

void ResultsStore::end_run(const std::string& run_id, const std::string& status, const std::string& error) {
  check_name(path_, "run id", run_id);
  mutate([&](H5File& file) {
    const std::string group = run_group(run_id);
    if (!file.is_group(group)) {
      StoredRun run;
      run.info.run_id = run_id;
      run.status = status;
      run.started = utc_now_iso8601();
      write_run(file, path_, run);
    }
    file.set_attr(group, "status", status);
    file.set_attr(group, "error", error.empty() ? std::string("unknown error") : error);
    file.set_attr(group, "finished", utc_now_iso8601());
    return std::vector<std::string>{run_id};
  });
}

std::vector<StoredRun> ResultsStore::read_runs(bool include_arrays) const {
  H5File file = H5File::open(path_, /*writable=*/false);
  return read_all_runs(file, include_arrays);
}

void ResultsStore::import_runs(const std::vector<StoredRun>& runs) {
  for (const auto& run : runs) check_name(path_, "run id", run.info.run_id);
  mutate([&](H5File& file) {
    std::vector<std::string> ids;
    for (const auto& run : runs) {
      write_run(file, path_, run);
      ids.push_back(run.info.run_id);
    }
    return ids;
  });
}

std::string experiment_field(const ResultsHeader& header, const std::vector<StoredRun>& runs, const std::string& key) {
  if (header.config.is_object() && header.config.contains(key) && header.config[key].is_string())
    return header.config[key].get<std::string>();
  for (const StoredRun& run : runs)
    if (run.info.resolved_config.is_object() && run.info.resolved_config.contains(key) &&
        run.info.resolved_config[key].is_string())
      return run.info.resolved_config[key].get<std::string>();
  return "";
}

std::vector<std::string> knob_names(const std::vector<StoredRun>& runs) {
  std::vector<std::string> names;
  for (const auto& r : runs)
    for (const auto& [name, value] : r.info.knobs)
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  return names;
}

std::optional<int64_t> knob_value(const RunInfo& info, const std::string& name) {
  for (const auto& [knob, value] : info.knobs)
    if (knob == name) return value;
  return std::nullopt;
}

void write_worker_result(const std::string& path, const RunResult& result) {
  H5File file = H5File::create(path);
  file.set_attr("/", "format", "smyrf-worker-result");
  write_result(file, path, "(worker)", "", result);
  file.close();
}

void write_worker_error(const std::string& path, const std::string& error) {
  H5File file = H5File::create(path);
  file.set_attr("/", "format", "smyrf-worker-result");
  file.set_attr("/", "error", error);
  file.close();
}

WorkerResult read_worker_result(const std::string& path) {
  const H5File file = H5File::open(path, /*writable=*/false);
  if (file.attr_string("/", "format") != std::optional<std::string>("smyrf-worker-result"))
    throw IoError(fmt::format("'{}' is not a worker's result file", path));
  WorkerResult out;
  if (const auto error = file.attr_string("/", "error")) {
    out.error = *error;
    return out;
  }
  out.result = read_result(file, "", /*include_arrays=*/true);
  return out;
}

// ---------------------------------------------------------------- shards and the writer lock

std::string ShardSpec::label() const { return fmt::format("{}/{}", index, count); }

ShardSpec ShardSpec::parse(const std::string& text, const std::string& what) {
  const auto slash = text.find('/');
  ShardSpec spec;
  bool ok = slash != std::string::npos && slash > 0 && slash + 1 < text.size() &&
            text.find_first_not_of("0123456789/") == std::string::npos && text.find('/', slash + 1) == std::string::npos;
  if (ok) {
    try {
      spec.index = std::stoll(text.substr(0, slash));
      spec.count = std::stoll(text.substr(slash + 1));
    } catch (const std::exception&) {
      ok = false;
    }
  }
  if (!ok || spec.count < 1 || spec.index >= spec.count)
    throw ConfigError(fmt::format("{} is '{}'; give I/N with 0 <= I < N (shard I of N, counted from 0), e.g. 0/4",
                                  what, text));
  return spec;
}

WriterLock::WriterLock(const std::string& results_path) {
  const std::string lock_path = results_path + ".lock";
  fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw IoError(fmt::format("cannot create the lock file '{}' of results file '{}' ({}); write the results to a "
                              "writable folder", lock_path, results_path, std::strerror(errno)));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    char holder[32] = {0};
    const ssize_t n = ::pread(fd_, holder, sizeof holder - 1, 0);
    ::close(fd_);
    fd_ = -1;
    throw IoError(fmt::format("results file '{}' is being written by another smyrf process (pid {}, lock '{}'); wait "
                              "for it to finish, or write to another file (--output)", results_path,
                              n > 0 ? std::string(holder, static_cast<size_t>(n)) : std::string("unknown"), lock_path));
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd_, 0) == 0) (void)!::pwrite(fd_, pid.data(), pid.size(), 0);
}

WriterLock::~WriterLock() {
  if (fd_ >= 0) ::close(fd_);  // closing releases the flock
}

}  // namespace smyrf
