// Experiment configs: load a JSON file, apply `extends`, validate the top level, expand the sweep.
//
// One JSON file per experiment. Top-level keys:
//   version (required, == kConfigVersion), name (required), pipeline (required; the caller checks
//   the name), seed (default 0), device ("cpu"|"cuda", default "cpu"), threads (>= 0, 0 = all
//   cores, default 0), extends, description, model/attention/data/train/eval (objects whose inner
//   keys the pipeline validates with JsonReader), sweep, output (object; output.path required).
// extends: a path relative to the file that holds it; applied recursively. Objects merge key by
//   key into the base; arrays and scalars (null included) replace. A null section or key therefore
//   means "use the component default".
// sweep: an object, or an array of objects whose expansions are concatenated (duplicates dropped,
//   first kept). Each key is a dotted path ("attention.n_hashes") mapping to a non-empty array;
//   keys expand as a cartesian product, the first key varying slowest. "zip": [{...}, ...] adds one
//   factor per object whose equal-length arrays advance together. Sweep order is the file order.
// Tested in tests/light/test_config.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace smyrf {

// Bump on any breaking change to the config format.
constexpr int kConfigVersion = 1;

// The run id of a config without a sweep (its only run).
inline constexpr const char* kUnsweptRunId = "run";

struct RunSpec {
  // From the sweep point, e.g. "method=smyrf,n_hashes=2"; stable across re-runs; only
  // [A-Za-z0-9_.=,+-]; kUnsweptRunId when there is no sweep.
  std::string run_id;
  // Fully resolved: extends applied, sweep values set, no "sweep"/"extends" keys; the top-level
  // defaults (seed, device, threads) are filled in.
  nlohmann::json config;
  // {"attention.method": "smyrf", "attention.n_hashes": 2} (empty object when there is no sweep).
  nlohmann::json sweep_point;
};

struct ExperimentConfig {
  std::string source_path;       // the file as given
  nlohmann::json as_given;       // the file's JSON as written, before extends
  nlohmann::json resolved_base;  // after extends, before sweep expansion (keeps "sweep")
  std::vector<RunSpec> runs;     // the expanded sweep, in order
  std::vector<std::string> extends_chain;  // source_path, then each base it extends, in order
};

// Missing or unreadable file -> IoError naming the path; malformed JSON -> ConfigError with the
// file, line, column and the parser's reason; a key repeated in one object -> ConfigError.
nlohmann::json parse_json_file(const std::string& path);

// A sweep that would expand to more than max_runs runs is refused with its count before anything
// is expanded (`smyrf run/validate/submit --max-runs` raise the limit).
constexpr int64_t kDefaultMaxRuns = 20000;
ExperimentConfig load_experiment_config(const std::string& path, int64_t max_runs = kDefaultMaxRuns);

// The run_id of every sweep point, in the same order, unique within `points`: "leaf=value" parts
// joined by ',' in sorted path order (so reordering sweep keys keeps ids), where leaf is the
// last path component, or the full dotted path when two swept paths share a leaf. A swept value
// that is an object is named by its members ("attention": {"method": "smyrf", "n_hashes": 2} gives
// method=smyrf,n_hashes=2); an array of scalars joins them with '+'; other values become an 8-hex
// FNV-1a hash of their JSON. Ids that still collide get a hash suffix.
std::vector<std::string> make_run_ids(const std::vector<nlohmann::json>& points);

}  // namespace smyrf
