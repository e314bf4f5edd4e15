// Experiment config loading: parse, apply `extends`, validate the top level, expand the sweep.
// Rules are in config.h. Internally everything is nlohmann::ordered_json so that sweep keys
// expand in the order they are written; the public structs hold plain nlohmann::json.
// Tested in tests/light/test_config.cpp.
#include "experiments/runner/config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "core/util/text_file.h"

namespace smyrf {

namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

const std::vector<std::string> kTopLevelKeys = {"version", "name",  "pipeline",  "description", "extends",
                                                "seed",    "device", "threads", "model",       "attention",
                                                "data",    "train", "eval",      "sweep",       "output"};
const std::vector<std::string> kSectionKeys = {"model", "attention", "data", "train", "eval", "output"};
const std::vector<std::string> kDevices = {"cpu", "cuda"};
// Top-level keys a sweep path may start with even when the config does not set them yet.
const std::vector<std::string> kSweepRoots = {"model", "attention", "data", "train", "eval", "output", "seed"};
// Keys that change how the file itself is read, so a sweep may not set them.
const std::vector<std::string> kUnsweepable = {"sweep", "extends", "version"};

const char* kind_name(const ojson& v) { return json_kind_name(nlohmann::json(v)); }

std::string excerpt(const ojson& v) { return json_excerpt(nlohmann::json(v)); }

bool contains(const std::vector<std::string>& list, const std::string& s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

std::vector<std::string> split_path(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = path.find('.', start);
    parts.push_back(path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return parts;
    start = dot + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Parsing

// One open object or array during parsing, to report repeated keys with their JSON path.
struct ParseFrame {
  bool is_object;
  std::string path;
  std::set<std::string> keys;
  std::string last_key;
};

constexpr size_t kMaxConfigObjectKeys = 1000;

ojson parse_ordered(const std::string& text, const std::string& source) {
  std::vector<ParseFrame> stack;
  // nlohmann keeps only one value of a repeated key without a word; a typo-level duplicate in a
  // config would silently win, so reject it.
  const ojson::parser_callback_t on_event = [&](int /*depth*/, nlohmann::json::parse_event_t event,
                                                 ojson& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start || event == E::array_start) {
      std::string path;
      if (!stack.empty()) {
        const ParseFrame& parent = stack.back();
        path = parent.is_object ? (parent.path.empty() ? parent.last_key : parent.path + "." + parent.last_key)
                                : parent.path + "[]";
      }
      stack.push_back({event == E::object_start, path, {}, {}});
    } else if (event == E::object_end || event == E::array_end) {
      stack.pop_back();
    } else if (event == E::key && !stack.empty()) {
      ParseFrame& frame = stack.back();
      auto key = parsed.get<std::string>();
      // ordered_json finds a key by a linear scan, so parsing an object of n keys costs n^2.
      if (frame.keys.size() >= kMaxConfigObjectKeys)
        throw ConfigError(fmt::format("config '{}': an object at '{}' has more than {} keys; no config needs so many "
                                      "(is this file a config?)",
                                      source, frame.path.empty() ? "(top level)" : frame.path, kMaxConfigObjectKeys));
      if (!frame.keys.insert(key).second) {
        const std::string full = frame.path.empty() ? key : frame.path + "." + key;
        throw ConfigError(fmt::format("config '{}': key '{}' appears twice in the same object; JSON keeps only "
                                      "one of them, so delete the other",
                                      source, full));
      }
      frame.last_key = std::move(key);
    }
    return true;
  };
  if (const auto problem = json_nesting_problem(text))
    throw ConfigError(fmt::format("config '{}' is not valid JSON: {}; no config nests so deep", source, *problem));
  try {
    return ojson::parse(text, on_event, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::out_of_range& e) {
    // a number beyond a double's range ("number overflow parsing '1e999'")
    const std::string what = e.what();
    throw ConfigError(fmt::format("config '{}' is not valid JSON: {}; write a number a double can hold", source,
                                  what.substr(what.find("] ") == std::string::npos ? 0 : what.find("] ") + 2)));
  } catch (const nlohmann::json::parse_error& e) {
    // what(): "[json.exception.parse_error.101] parse error at line L, column C: <reason>"
    const std::string what = e.what();
    std::size_t line = 0, column = 0;
    std::string reason = what;
    const std::size_t at = what.find("at line ");
    if (at != std::string::npos &&
        std::sscanf(what.c_str() + at, "at line %zu, column %zu", &line, &column) == 2) {
      const std::size_t colon = what.find(": ", at);
      if (colon != std::string::npos) reason = what.substr(colon + 2);
    } else {
      // Older messages give only the byte offset.
      const std::size_t end = std::min<std::size_t>(e.byte > 0 ? e.byte - 1 : 0, text.size());
      line = 1 + static_cast<std::size_t>(std::count(text.begin(), text.begin() + end, '\n'));
      const std::size_t nl = text.rfind('\n', end == 0 ? 0 : end - 1);
      column = nl == std::string::npos || end == 0 ? end + 1 : end - nl;
    }
    throw ConfigError(fmt::format("config '{}' is not valid JSON: line {}, column {}: {}. Fix the syntax there "
                                  "(JSON has no comments or trailing commas, and keys need double quotes)",
                                  source, line, column, reason));
  }
}

// ---------------------------------------------------------------------------------------------
// Validation

void check_version(std::int64_t version, const std::string& source) {
  if (version != kConfigVersion) {
    throw ConfigError(fmt::format("config '{}': 'version' is {}, but this build of smyrf supports config version "
                                  "{} only; set \"version\": {} after updating the file to the current format",
                                  source, version, kConfigVersion, kConfigVersion));
  }
}

// Types of the top-level keys one file sets, and no unknown keys. Required keys are checked
// after extends, since a base may supply them.
void check_seed_and_threads(JsonReader& r, const std::string& source) {
  std::int64_t seed = 0, threads = 0;
  r.get("seed", seed).get("threads", threads);
  if (seed < 0)
    throw ConfigError(fmt::format("config '{}': 'seed' must be >= 0, got {}", source, seed));
  if (threads < 0) {
    throw ConfigError(fmt::format("config '{}': 'threads' must be >= 0 (0 uses every core), got {}", source,
                                  threads));
  }
}

void check_file_top_level(const ojson& file_json, const std::string& source) {
  if (!file_json.is_object()) {
    throw ConfigError(fmt::format("config '{}': the top level must be a JSON object {{...}}, got {}", source,
                                  kind_name(file_json)));
  }
  const nlohmann::json j(file_json);
  JsonReader r(j, "", source);
  for (const std::string& key : kTopLevelKeys) r.has(key.c_str());  // valid keys, listed in file order
  std::int64_t version = kConfigVersion;
  r.get("version", version);
  check_version(version, source);
  std::string text;
  r.get("name", text).get("pipeline", text).get("description", text).get("extends", text);
  check_seed_and_threads(r, source);
  r.get_choice("device", text, kDevices);
  for (const std::string& key : kSectionKeys) {
    JsonReader section = r.child(key.c_str());  // inner keys belong to the pipeline
    if (key == "output") section.get("path", text);
  }
  const nlohmann::json& sweep = r.raw("sweep");
  if (!sweep.is_null() && !sweep.is_object() && !sweep.is_array()) {
    throw ConfigError(fmt::format("config '{}': 'sweep' must be an object {{\"attention.n_hashes\": [1, 2]}} or an "
                                  "array of such objects, got {}",
                                  source, json_excerpt(sweep)));
  }
  r.finish();
}

// Required keys and types of one fully resolved run config.
void check_resolved(const nlohmann::json& config, const std::string& source) {
  JsonReader r(config, "", source);
  for (const std::string& key : kTopLevelKeys) r.has(key.c_str());
  std::int64_t version = 0;
  r.require("version", version);
  check_version(version, source);
  std::string text;
  r.require("name", text).require("pipeline", text).get("description", text);
  check_seed_and_threads(r, source);
  r.get_choice("device", text, kDevices);
  for (const std::string& key : kSectionKeys) {
    JsonReader section = r.child(key.c_str());
    if (key == "output") section.require("path", text);
  }
  r.finish();
}

// ---------------------------------------------------------------------------------------------
// extends

void merge_into(ojson& base, const ojson& child) {
  for (auto it = child.begin(); it != child.end(); ++it) {
    auto found = base.find(it.key());
    if (found != base.end() && found->is_object() && it->is_object()) {
      merge_into(*found, *it);
    } else {
      base[it.key()] = *it;
    }
  }
}

struct ChainEntry {
  fs::path canonical;
  std::string display;
};

ojson load_with_extends(const std::string& display, std::vector<ChainEntry>& stack, std::vector<std::string>& chain,
                        ojson* as_given) {
  std::error_code ec;
  fs::path canonical = fs::weakly_canonical(fs::absolute(display, ec), ec);
  if (ec) canonical = fs::absolute(display).lexically_normal();
  for (std::size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].canonical != canonical) continue;
    std::vector<std::string> loop;
    for (std::size_t k = i; k < stack.size(); ++k) loop.push_back(stack[k].display);
    loop.push_back(display);
    throw ConfigError(fmt::format("config '{}': \"extends\" forms a cycle: {}; remove the \"extends\" that closes "
                                  "the loop",
                                  stack.front().display, join(loop, " -> ")));
  }
  stack.push_back({canonical, display});
  chain.push_back(display);

  ojson file_json = parse_ordered(read_text_file(display, "config file"), display);
  check_file_top_level(file_json, display);
  if (as_given != nullptr) *as_given = file_json;

  ojson result = std::move(file_json);
  const auto extends = result.find("extends");
  if (extends != result.end()) {
    ojson merged;
    if (extends->is_string()) {
      const std::string target = extends->get<std::string>();
      if (target.empty()) {
        throw ConfigError(fmt::format("config '{}': 'extends' is empty; give a base file path relative to this file "
                                      "or remove the key",
                                      display));
      }
      // Relative to the file that says it, so a config works from any working directory.
      const fs::path base = fs::path(target).is_absolute()
                                ? fs::path(target)
                                : (fs::path(display).parent_path() / target).lexically_normal();
      try {
        merged = load_with_extends(base.string(), stack, chain, nullptr);
      } catch (const IoError& e) {
        throw IoError(fmt::format("{} (named by \"extends\": \"{}\" in '{}'; extends paths are relative to that "
                                  "file's directory)",
                                  e.what(), target, display));
      }
    }
    result.erase("extends");
    if (!merged.is_null()) {
      merge_into(merged, result);
      result = std::move(merged);
    }
  }
  stack.pop_back();
  return result;
}

// ---------------------------------------------------------------------------------------------
// sweep

// Rejects paths that cannot name a config value; structure is checked when the point is applied.
void check_sweep_path(const std::string& path, const std::string& label, const ojson& base,
                      const std::string& source) {
  const std::vector<std::string> parts = split_path(path);
  if (std::any_of(parts.begin(), parts.end(), [](const std::string& p) { return p.empty(); })) {
    throw ConfigError(fmt::format("config '{}': '{}': '{}' is not a valid dotted path; write it like "
                                  "\"attention.n_hashes\"",
                                  source, label, path));
  }
  const std::string& root = parts.front();
  if (contains(kUnsweepable, root)) {
    throw ConfigError(fmt::format("config '{}': '{}': '{}' cannot be swept; set it directly in the file", source,
                                  label, root));
  }
  if (contains(kSweepRoots, root) || base.contains(root)) return;
  std::vector<std::string> roots = kSweepRoots;
  for (auto it = base.begin(); it != base.end(); ++it) {
    if (!contains(roots, it.key()) && !contains(kUnsweepable, it.key())) roots.push_back(it.key());
  }
  throw ConfigError(fmt::format("config '{}': '{}': the path must start with one of {}, got '{}'{}", source, label,
                                join(roots, ", "), root, did_you_mean(root, roots)));
}

const ojson& check_values(const ojson& values, const std::string& label, const std::string& source) {
  if (!values.is_array()) {
    throw ConfigError(fmt::format("config '{}': '{}' must be an array of values to sweep over, got {}; write "
                                  "[{}] for a single value",
                                  source, label, excerpt(values), excerpt(values)));
  }
  if (values.empty()) {
    throw ConfigError(fmt::format("config '{}': '{}' is an empty array, which would give no runs; list at least "
                                  "one value or remove the key",
                                  source, label));
  }
  return values;
}

// One object of the sweep -> its points (ordered path -> value), first key varying slowest.
std::vector<ojson> expand_group(const ojson& group, const std::string& label, const ojson& base,
                                const std::string& source) {
  if (!group.is_object()) {
    throw ConfigError(fmt::format("config '{}': '{}' must be an object mapping dotted paths to value arrays, got {}",
                                  source, label, excerpt(group)));
  }
  std::vector<std::vector<ojson>> factors;  // each factor: its options, each a partial point
  std::vector<std::string> seen;
  auto claim = [&](const std::string& path, const std::string& key_label) {
    if (contains(seen, path)) {
      throw ConfigError(fmt::format("config '{}': '{}' sweeps '{}' a second time in the same sweep object; keep "
                                    "one of them",
                                    source, key_label, path));
    }
    seen.push_back(path);
    check_sweep_path(path, key_label, base, source);
  };
  for (auto it = group.begin(); it != group.end(); ++it) {
    if (it.key() != "zip") {
      const std::string key_label = label + "." + it.key();
      claim(it.key(), key_label);
      std::vector<ojson> options;
      for (const ojson& v : check_values(*it, key_label, source)) options.push_back(ojson{{it.key(), v}});
      factors.push_back(std::move(options));
      continue;
    }
    const ojson zips = it->is_object() ? ojson::array({*it}) : *it;
    if (!zips.is_array() || zips.empty()) {
      throw ConfigError(fmt::format("config '{}': '{}.zip' must be a non-empty array of objects whose arrays "
                                    "advance together, e.g. [{{\"data.seq_len\": [1024, 2048], \"data.batch\": "
                                    "[8, 4]}}], got {}",
                                    source, label, excerpt(*it)));
    }
    for (std::size_t z = 0; z < zips.size(); ++z) {
      const std::string zip_label = fmt::format("{}.zip[{}]", label, z);
      const ojson& zip = zips[z];
      if (!zip.is_object() || zip.empty()) {
        throw ConfigError(fmt::format("config '{}': '{}' must be a non-empty object mapping dotted paths to value "
                                      "arrays of equal length, got {}",
                                      source, zip_label, excerpt(zip)));
      }
      std::string first_key;
      std::size_t length = 0;
      for (auto zit = zip.begin(); zit != zip.end(); ++zit) {
        const std::string key_label = zip_label + "." + zit.key();
        claim(zit.key(), key_label);
        const std::size_t n = check_values(*zit, key_label, source).size();
        if (first_key.empty()) {
          first_key = zit.key();
          length = n;
        } else if (n != length) {
          throw ConfigError(fmt::format("config '{}': '{}': zipped arrays must have equal lengths, but '{}' has {} "
                                        "values and '{}' has {}; make them the same length, or move one out of "
                                        "the zip to sweep it independently",
                                        source, zip_label, first_key, length, zit.key(), n));
        }
      }
      std::vector<ojson> options(length, ojson::object());
      for (auto zit = zip.begin(); zit != zip.end(); ++zit) {
        for (std::size_t i = 0; i < length; ++i) options[i][zit.key()] = (*zit)[i];
      }
      factors.push_back(std::move(options));
    }
  }
  std::vector<ojson> points = {ojson::object()};
  for (const auto& options : factors) {
    std::vector<ojson> next;
    next.reserve(points.size() * options.size());
    for (const ojson& point : points) {
      for (const ojson& option : options) {
        ojson p = point;
        for (auto it = option.begin(); it != option.end(); ++it) p[it.key()] = *it;
        next.push_back(std::move(p));
      }
    }
    points = std::move(next);
  }
  return points;
}

// How many points a sweep object gives, without expanding it: the product of its factors' sizes
// (a zip counts once). A double, so that absurd sweeps count without overflow.
double group_size(const ojson& group) {
  if (!group.is_object()) return 1;  // expand_group reports it
  double count = 1;
  for (auto it = group.begin(); it != group.end(); ++it) {
    if (it.key() != "zip") {
      count *= it->is_array() ? static_cast<double>(it->size()) : 1.0;
      continue;
    }
    const ojson zips = it->is_object() ? ojson::array({*it}) : *it;
    for (const ojson& zip : zips)
      if (zip.is_object() && !zip.empty() && zip.begin()->is_array()) count *= static_cast<double>(zip.begin()->size());
  }
  return count;
}

std::vector<ojson> expand_sweep(const ojson& resolved, const std::string& source, int64_t max_runs) {
  const auto sweep = resolved.find("sweep");
  if (sweep == resolved.end() || sweep->is_null()) return {ojson::object()};
  std::vector<ojson> groups;
  std::vector<std::string> labels;
  if (sweep->is_array()) {
    if (sweep->empty()) {
      throw ConfigError(fmt::format("config '{}': 'sweep' is an empty array, which would give no runs; remove it "
                                    "or add sweep objects",
                                    source));
    }
    for (std::size_t i = 0; i < sweep->size(); ++i) {
      groups.push_back((*sweep)[i]);
      labels.push_back(fmt::format("sweep[{}]", i));
    }
  } else {
    groups.push_back(*sweep);
    labels.push_back("sweep");
  }
  double total = 0;
  for (const ojson& group : groups) total += group_size(group);
  if (total > static_cast<double>(max_runs))
    throw ConfigError(fmt::format("config '{}': the sweep expands to {} runs, more than the limit of {}; split it, "
                                  "or raise the limit with --max-runs",
                                  source, total < 1e15 ? fmt::format("{:.0f}", total) : fmt::format("{:.3g}", total),
                                  max_runs));
  std::vector<ojson> points;
  std::set<nlohmann::json> seen;  // unordered copies: points equal as mappings are duplicates
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (ojson& point : expand_group(groups[g], labels[g], resolved, source)) {
      if (!seen.insert(nlohmann::json(point)).second) continue;
      points.push_back(std::move(point));
    }
  }
  return points;
}

void apply_point(ojson& config, const ojson& point, const std::string& source) {
  for (auto it = point.begin(); it != point.end(); ++it) {
    const std::vector<std::string> parts = split_path(it.key());
    ojson* node = &config;
    std::string walked;
    for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
      walked += (i == 0 ? "" : ".") + parts[i];
      ojson& next = (*node)[parts[i]];
      if (next.is_null()) next = ojson::object();
      if (!next.is_object()) {
        throw ConfigError(fmt::format("config '{}': 'sweep.{}' sets a key inside '{}', but '{}' is {} ({}), not an "
                                      "object; fix the path or make '{}' an object",
                                      source, it.key(), walked, walked, kind_name(next), excerpt(next), walked));
      }
      node = &next;
    }
    (*node)[parts.back()] = *it;
  }
}

// ---------------------------------------------------------------------------------------------
// run ids

std::uint64_t fnv1a(const std::string& s) {
  std::uint64_t h = 14695981039346656037ull;
  for (const unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

std::string short_hash(const nlohmann::json& v) {
  const std::uint64_t h = fnv1a(v.dump());
  return fmt::format("{:08x}", static_cast<std::uint32_t>(h ^ (h >> 32)));
}

std::string format_value(const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_null()) return "null";
  if (v.is_number()) return v.dump();
  if (v.is_array() && std::none_of(v.begin(), v.end(), [](const nlohmann::json& e) { return e.is_structured(); })) {
    std::vector<std::string> parts;
    for (const auto& e : v) parts.push_back(format_value(e));
    return join(parts, "+");
  }
  return "h" + short_hash(v);
}

// A swept value that is a whole object ("attention": [{...}, {...}]) names its run by its members,
// as if each had been swept on its own: {"method": "smyrf", "n_hashes": 2} under "attention" gives
// attention.method and attention.n_hashes. An empty object stays one entry.
void flatten_value(const std::string& path, const nlohmann::json& value, std::map<std::string, nlohmann::json>& flat) {
  if (!value.is_object() || value.empty()) {
    flat[path] = value;
    return;
  }
  for (auto it = value.begin(); it != value.end(); ++it) flatten_value(path + "." + it.key(), *it, flat);
}

std::string sanitize(std::string id) {
  for (char& c : id) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
                    c == '.' || c == '=' || c == ',' || c == '+' || c == '-';
    if (!ok) c = '_';
  }
  return id;
}

// Long ids make unwieldy file and HDF5 group names; past this the tail becomes a hash.
constexpr std::size_t kMaxRunIdChars = 120;

}  // namespace

nlohmann::json parse_json_file(const std::string& path) { return nlohmann::json(parse_ordered(read_text_file(path, "config file"), path)); }

std::vector<std::string> make_run_ids(const std::vector<nlohmann::json>& points) {
  std::vector<std::map<std::string, nlohmann::json>> flat_points;
  for (const nlohmann::json& point : points) {
    std::map<std::string, nlohmann::json> flat;
    for (auto it = point.begin(); it != point.end(); ++it) flatten_value(it.key(), *it, flat);
    flat_points.push_back(std::move(flat));
  }
  // Leaves shared by different paths are ambiguous; those keys use the full path.
  std::map<std::string, std::set<std::string>> paths_by_leaf;
  for (const auto& flat : flat_points)
    for (const auto& [path, value] : flat) paths_by_leaf[split_path(path).back()].insert(path);
  std::vector<std::string> ids;
  ids.reserve(points.size());
  for (std::size_t i = 0; i < points.size(); ++i) {
    const nlohmann::json& point = points[i];
    std::vector<std::string> parts;
    for (const auto& [path, value] : flat_points[i]) {
      const std::string leaf = split_path(path).back();
      const std::string& name = paths_by_leaf[leaf].size() > 1 ? path : leaf;
      parts.push_back(name + "=" + format_value(value));
    }
    std::string id = parts.empty() ? std::string(kUnsweptRunId) : sanitize(join(parts, ","));
    if (id.size() > kMaxRunIdChars) id = id.substr(0, kMaxRunIdChars - 17) + "-" + short_hash(point) + short_hash(id);
    ids.push_back(std::move(id));
  }
  // Distinct points can still collide (e.g. "a b" and "a_b" after sanitizing, or 1 and "1").
  std::map<std::string, int> count;
  for (const std::string& id : ids) ++count[id];
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (count[ids[i]] > 1) ids[i] += "-" + short_hash(points[i]);
  }
  // Identical points (only possible from a caller's own list): number them.
  std::map<std::string, int> seen;
  for (std::string& id : ids) {
    const int n = seen[id]++;
    if (n > 0) id += fmt::format("-{}", n);
  }
  return ids;
}

ExperimentConfig load_experiment_config(const std::string& path, int64_t max_runs) {
  ExperimentConfig out;
  out.source_path = path;
  std::vector<ChainEntry> stack;
  ojson as_given;
  const ojson resolved = load_with_extends(path, stack, out.extends_chain, &as_given);
  out.as_given = nlohmann::json(as_given);
  out.resolved_base = nlohmann::json(resolved);

  ojson base = resolved;
  base.erase("sweep");
  const std::vector<ojson> points = expand_sweep(resolved, path, max_runs);
  std::vector<nlohmann::json> plain_points;
  plain_points.reserve(points.size());
  for (const ojson& p : points) plain_points.emplace_back(p);
  const std::vector<std::string> ids = make_run_ids(plain_points);

  for (std::size_t i = 0; i < points.size(); ++i) {
    ojson config = base;
    apply_point(config, points[i], path);
    RunSpec run{ids[i], nlohmann::json(config), plain_points[i]};
    try {
      check_resolved(run.config, path);
    } catch (const ConfigError& e) {
      if (points[i].empty()) throw;
      throw ConfigError(fmt::format("{} (in sweep run '{}', whose values come from 'sweep')", e.what(), run.run_id));
    }
    if (!run.config.contains("seed") || run.config["seed"].is_null()) run.config["seed"] = 0;
    if (!run.config.contains("device") || run.config["device"].is_null()) run.config["device"] = "cpu";
    if (!run.config.contains("threads") || run.config["threads"].is_null()) run.config["threads"] = 0;
    out.runs.push_back(std::move(run));
  }
  return out;
}

}  // namespace smyrf
