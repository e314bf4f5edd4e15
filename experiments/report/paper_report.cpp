// Paper targets (configs/paper/targets.json) against our results files; see paper_report.h.
// Steps: read the targets strictly (JsonReader), open every results file through ResultsStore, sort
// each file's runs to the rows by config name and to the columns by data.task, average, lay out.
// Tested by tests/light/test_paper_report.cpp.
#include "experiments/report/paper_report.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "core/util/text_file.h"
#include "experiments/runner/results_store.h"
#include "experiments/metrics/task_metrics.h"
#include "experiments/report/text_table.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

constexpr size_t kShortShaChars = 12;
constexpr size_t kMaxErrorChars = 200;

// ---------------------------------------------------------------- targets

std::string prefix(const std::string& source) {
  return source.empty() ? std::string() : fmt::format("paper targets '{}': ", source);
}

[[noreturn]] void schema_error(const std::string& source, const std::string& message) {
  throw ConfigError(prefix(source) + message);
}

// An array of objects under `key` (required, non-empty); returns it with its dotted path.
const nlohmann::json& object_array(JsonReader& r, const char* key) {
  const nlohmann::json& v = r.raw(key);
  const std::string path = r.path().empty() ? key : r.path() + "." + key;
  if (v.is_null()) {
    schema_error(r.source(), fmt::format("missing required key '{}': add \"{}\": [{{...}}, ...]", path, key));
  }
  if (!v.is_array() || v.empty()) {
    schema_error(r.source(), fmt::format("'{}' must be a non-empty array of objects, got {}", path, json_excerpt(v)));
  }
  return v;
}

void check_unique(const std::vector<std::string>& names, const std::string& path, const std::string& source) {
  std::set<std::string> seen;
  for (const auto& n : names) {
    if (n.empty()) schema_error(source, fmt::format("'{}' has an empty name", path));
    if (!seen.insert(n).second) schema_error(source, fmt::format("'{}' has the name '{}' twice", path, n));
  }
}

PaperColumn parse_column(const nlohmann::json& j, const std::string& path, const std::string& source) {
  PaperColumn c;
  JsonReader cr(j, path, source);
  cr.require("name", c.name).get("task", c.task).require("metric", c.metric);
  cr.finish();
  if (!c.task.empty()) {
    try {
      task_metric_names(c.task);
    } catch (const ConfigError& e) {
      schema_error(source, fmt::format("'{}.task': {}", cr.path(), e.what()));
    }
  }
  if (c.metric.empty()) schema_error(source, fmt::format("'{}.metric' is empty", cr.path()));
  return c;
}

PaperAverage parse_average(JsonReader ar, const std::vector<std::string>& column_names, const std::string& source) {
  PaperAverage a;
  ar.require("name", a.name).require("columns", a.columns).require("rule", a.rule);
  ar.finish();
  if (a.columns.empty()) schema_error(source, fmt::format("'{}.columns' is empty", ar.path()));
  if (std::find(column_names.begin(), column_names.end(), a.name) != column_names.end())
    schema_error(source, fmt::format("'{}.name' is '{}', which is also a column name", ar.path(), a.name));
  for (size_t i = 0; i < a.columns.size(); ++i)
    if (std::find(column_names.begin(), column_names.end(), a.columns[i]) == column_names.end())
      schema_error(source, fmt::format("'{}.columns[{}]' is '{}', which is not a column{}; columns: {}", ar.path(), i,
                                       a.columns[i], did_you_mean(a.columns[i], column_names), join(column_names, ", ")));
  check_unique(a.columns, ar.path() + ".columns", source);
  return a;
}

// paper_keys: the column names and the average's, which a row's "paper" object may use.
PaperRow parse_row(const nlohmann::json& j, const std::string& path, const std::vector<std::string>& paper_keys,
                   const std::string& source) {
  PaperRow row;
  JsonReader rr(j, path, source);
  rr.require("name", row.name).require("config", row.config).get("metric", row.metric).require("memory", row.memory);
  const nlohmann::json& paper = rr.raw("paper");
  rr.finish();
  if (row.config.empty()) schema_error(source, fmt::format("'{}.config' is empty", rr.path()));
  if (!(row.memory > 0) || !std::isfinite(row.memory))
    schema_error(source, fmt::format("'{}.memory' must be a positive number, got {}", rr.path(), row.memory));
  if (!paper.is_object())
    schema_error(source, fmt::format("'{}.paper' must be an object of column name -> number, got {}", rr.path(),
                                     paper.is_null() ? "nothing" : json_excerpt(paper)));
  for (const auto& item : paper.items()) {
    const std::string key_path = rr.path() + ".paper." + item.key();
    if (std::find(paper_keys.begin(), paper_keys.end(), item.key()) == paper_keys.end())
      schema_error(source, fmt::format("unknown key '{}'{}; valid keys: {}", key_path, did_you_mean(item.key(), paper_keys),
                                       join(paper_keys, ", ")));
    if (!item.value().is_number())
      schema_error(source, fmt::format("'{}' must be a number, got {}", key_path, json_excerpt(item.value())));
    row.paper[item.key()] = item.value().get<double>();
  }
  return row;
}

PaperTable parse_table(const std::string& key, const nlohmann::json& j, const std::string& source) {
  PaperTable t;
  t.name = key;
  JsonReader r(j, "tables." + key, source);
  r.require("title", t.title).get("scale", t.scale).get("notes", t.notes);
  if (!(t.scale > 0) || !std::isfinite(t.scale))
    schema_error(source, fmt::format("'{}.scale' must be a positive number, got {}", r.path(), t.scale));
  const nlohmann::json& columns = object_array(r, "columns");
  std::vector<std::string> column_names;
  for (size_t i = 0; i < columns.size(); ++i) {
    t.columns.push_back(parse_column(columns[i], fmt::format("{}.columns[{}]", r.path(), i), source));
    column_names.push_back(t.columns.back().name);
  }
  check_unique(column_names, r.path() + ".columns", source);
  std::vector<std::string> paper_keys = column_names;
  if (r.has("average")) {
    t.average = parse_average(r.child("average"), column_names, source);
    paper_keys.push_back(t.average->name);
  }
  const nlohmann::json& rows = object_array(r, "rows");
  std::vector<std::string> row_names;
  for (size_t i = 0; i < rows.size(); ++i) {
    t.rows.push_back(parse_row(rows[i], fmt::format("{}.rows[{}]", r.path(), i), paper_keys, source));
    row_names.push_back(t.rows.back().name);
  }
  check_unique(row_names, r.path() + ".rows", source);
  r.finish();
  return t;
}

// ---------------------------------------------------------------- results

struct LoadedFile {
  PaperFileInfo info;
  std::vector<StoredRun> runs;
};

std::string task_of(const StoredRun& run) {
  const nlohmann::json& c = run.info.resolved_config;
  if (!c.is_object()) return "";
  const auto data = c.find("data");
  if (data == c.end() || !data->is_object()) return "";
  const auto task = data->find("task");
  return task != data->end() && task->is_string() ? task->get<std::string>() : "";
}

struct RunRef {
  const StoredRun* run;
  const LoadedFile* file;
};

PaperCell gather(const std::vector<RunRef>& runs, const std::string& metric, double scale) {
  PaperCell cell;
  double sum = 0;
  int64_t missing = 0;
  for (const auto& ref : runs) {
    const StoredRun& r = *ref.run;
    if (r.status == "complete") {
      const auto it = r.result.metrics.find(metric);
      if (it == r.result.metrics.end()) {
        ++missing;
      } else {
        sum += it->second.value;
        ++cell.n;
      }
    } else if (r.status == "failed") {
      ++cell.failed;
    } else {
      ++cell.running;
    }
  }
  if (cell.n > 0) {
    cell.state = PaperCellState::kValue;
    cell.ours = sum / static_cast<double>(cell.n) * scale;
  } else if (cell.failed > 0) {
    cell.state = PaperCellState::kFailed;
  } else if (cell.running > 0) {
    cell.state = PaperCellState::kRunning;
  } else if (missing > 0) {
    cell.state = PaperCellState::kNoMetric;
  }
  return cell;
}

std::vector<RunRef> with_task(const std::vector<RunRef>& runs, const std::string& task) {
  if (task.empty()) return runs;
  std::vector<RunRef> out;
  for (const auto& ref : runs) {
    if (task_of(*ref.run) == task) out.push_back(ref);
  }
  return out;
}

std::string first_line_brief(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > kMaxErrorChars) line = line.substr(0, kMaxErrorChars) + "…";
  return line;
}

// ---------------------------------------------------------------- layout

using Column = TextTableColumn;

std::string format_value(double v) { return std::isnan(v) ? "nan" : fmt::format("{:.2f}", v); }

std::string format_ours(const PaperCell& cell) {
  switch (cell.state) {
    case PaperCellState::kValue:
      return format_value(cell.ours) + (cell.n > 1 ? fmt::format(" (n={})", cell.n) : "");
    case PaperCellState::kNotRun: return "not run";
    case PaperCellState::kFailed: return "failed";
    case PaperCellState::kRunning: return "running";
    case PaperCellState::kNoMetric: return "no metric";
  }
  return "?";
}

std::string format_diff(const PaperCell& cell) {
  const auto d = cell.diff();
  if (!d || !std::isfinite(*d)) return "";
  std::string s = fmt::format("{:+.2f}", *d);
  return s == "-0.00" ? "+0.00" : s;
}

std::string format_memory(double memory) { return fmt::format("{:g}%", memory * 100); }

std::string format_scale(double scale) { return scale == 1 ? std::string() : fmt::format(" x {:g}", scale); }

}  // namespace

// ---------------------------------------------------------------- targets (public)

PaperTargets parse_paper_targets(const nlohmann::json& j, const std::string& source) {
  PaperTargets t;
  t.path = source;
  JsonReader r(j, "", source);
  r.require("version", t.version).require("source", t.source).get("notes", t.notes);
  if (t.version != kPaperTargetsVersion) {
    schema_error(source, fmt::format("'version' is {}, this harness reads version {}", t.version, kPaperTargetsVersion));
  }
  const nlohmann::json& tables = r.raw("tables");
  r.finish();
  if (!tables.is_object() || tables.empty()) {
    schema_error(source, fmt::format("'tables' must be a non-empty object of table name -> table, got {}",
                                     tables.is_null() ? "nothing" : json_excerpt(tables)));
  }
  for (const auto& item : tables.items()) t.tables.push_back(parse_table(item.key(), item.value(), source));
  return t;
}

PaperTargets load_paper_targets(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) {
    throw IoError(fmt::format("paper targets file '{}' does not exist; pass --targets FILE (the default, {}, is "
                              "relative to the working directory: run from the repository root)",
                              path, kDefaultPaperTargetsPath));
  }
  const nlohmann::json j = parse_json(read_text_file(path, "paper targets file"),
                                      {fmt::format("paper targets file '{}'", path), "restore it from git"});
  return parse_paper_targets(j, path);
}

const PaperTable& paper_table(const PaperTargets& targets, const std::string& name) {
  std::vector<std::string> names;
  for (const auto& t : targets.tables) {
    if (t.name == name) return t;
    names.push_back(t.name);
  }
  throw ConfigError(fmt::format("unknown paper table '{}'{}; tables in '{}': {}", name, did_you_mean(name, names),
                                targets.path, join(names, ", ")));
}

// ---------------------------------------------------------------- comparison (public)

namespace {

// Every file once (a path given twice, or two spellings of one file, counts once).
std::vector<LoadedFile> load_results_files(const std::vector<std::string>& results_files,
                                           const std::set<std::string>& row_configs) {
  std::vector<LoadedFile> files;
  std::set<std::string> seen_paths;
  for (const auto& path : results_files) {
    std::error_code ec;
    const fs::path canonical = fs::weakly_canonical(path, ec);
    if (!seen_paths.insert(ec ? path : canonical.string()).second) continue;
    const ResultsStore store = ResultsStore::open_existing(path);
    const ResultsHeader header = store.header();
    LoadedFile f;
    f.info.path = path;
    f.runs = store.read_runs(/*include_arrays=*/false);
    f.info.config_name = experiment_field(header, f.runs, "name");
    f.info.pipeline = experiment_field(header, f.runs, "pipeline");
    f.info.git_sha = header.provenance.git_sha;
    f.info.git_dirty = header.provenance.git_dirty;
    f.info.created_utc = header.provenance.created_utc;
    for (const auto& r : f.runs) {
      if (r.status == "complete") ++f.info.complete;
      else if (r.status == "failed") ++f.info.failed;
      else ++f.info.running;
    }
    f.info.matched = row_configs.count(f.info.config_name) != 0;
    files.push_back(std::move(f));
  }
  return files;
}

// Runs per config; a run copied into two files (a shard and its merge) counts once.
std::map<std::string, std::vector<RunRef>> runs_by_config(const std::vector<LoadedFile>& files) {
  std::map<std::string, std::vector<RunRef>> runs_of_config;
  std::set<std::string> seen_runs;
  for (const auto& f : files) {
    for (const auto& r : f.runs) {
      std::string identity = fmt::format("{}\x1f{}\x1f{}\x1f{}\x1f{}\x1f{}", f.info.config_name, r.info.run_id, r.status,
                                         r.started, r.finished, r.info.resolved_config.dump());
      for (const auto& [name, m] : r.result.metrics) identity += fmt::format("\x1f{}={}", name, m.value);
      if (seen_runs.insert(identity).second) runs_of_config[f.info.config_name].push_back({&r, &f});
    }
  }
  return runs_of_config;
}

// The other metrics of multi-metric tasks whose column shows one of them.
std::vector<PaperVariant> variants_of(const PaperTable& table) {
  std::vector<PaperVariant> variants;
  std::set<std::pair<std::string, std::string>> variant_keys;
  for (const auto& c : table.columns) {
    if (c.task.empty()) continue;
    const std::vector<std::string> names = task_metric_names(c.task);
    if (names.size() < 2 || std::find(names.begin(), names.end(), c.metric) == names.end()) continue;
    for (const auto& m : names) {
      if (m == c.metric || !variant_keys.insert({c.task, m}).second) continue;
      variants.push_back({c.name + " " + m, c.task, m, {}});
    }
  }
  return variants;
}

// The mean of the averaged columns, when every one of them has a value.
PaperAverageCell average_cell(const PaperTable& table, const PaperRow& row, const std::vector<PaperCell>& cells) {
  PaperAverageCell avg;
  avg.of = static_cast<int64_t>(table.average->columns.size());
  double sum = 0;
  for (const auto& name : table.average->columns) {
    const size_t i = static_cast<size_t>(
        std::find_if(table.columns.begin(), table.columns.end(), [&](const PaperColumn& c) { return c.name == name; }) -
        table.columns.begin());
    if (cells[i].state != PaperCellState::kValue) continue;
    ++avg.have;
    sum += cells[i].ours;
  }
  if (avg.have == avg.of) {
    avg.cell.state = PaperCellState::kValue;
    avg.cell.ours = sum / static_cast<double>(avg.of);
    avg.cell.n = 1;
  }
  if (const auto p = row.paper.find(table.average->name); p != row.paper.end()) avg.cell.paper = p->second;
  return avg;
}

using FailureIndex = std::map<std::pair<std::string, std::string>, size_t>;  // (file, run id) -> failures

// One row's cells; its failed runs are listed once in out.failures, with every column they fail.
PaperRowResult row_result(const PaperTable& table, const PaperRow& row, const std::vector<RunRef>& runs,
                          PaperComparison& out, FailureIndex& failure_index) {
  PaperRowResult result;
  result.row = row;
  for (const auto& c : table.columns) {
    const std::vector<RunRef> selected = with_task(runs, c.task);
    PaperCell cell = gather(selected, row.metric.empty() ? c.metric : row.metric, table.scale);
    if (const auto p = row.paper.find(c.name); p != row.paper.end()) cell.paper = p->second;
    result.cells.push_back(cell);
    for (const auto& ref : selected) {
      if (ref.run->status != "failed") continue;
      const auto key = std::make_pair(ref.file->info.path, ref.run->info.run_id);
      auto it = failure_index.find(key);
      if (it == failure_index.end()) {
        it = failure_index.emplace(key, out.failures.size()).first;
        out.failures.push_back({row.name, c.name, ref.run->info.run_id, ref.file->info.path,
                                first_line_brief(ref.run->error)});
      } else if (out.failures[it->second].row == row.name) {
        out.failures[it->second].column += ", " + c.name;
      }
    }
  }
  if (table.average) result.average = average_cell(table, row, result.cells);
  for (auto& v : out.variants)
    v.cells.push_back(row.metric.empty() ? gather(with_task(runs, v.task), v.metric, table.scale) : PaperCell{});
  return result;
}

// Runs of a row's config whose task has no column, when every column names a task.
void note_stray_runs(const PaperTable& table, const PaperRow& row, const std::vector<RunRef>& runs,
                     std::vector<std::string>& ignored) {
  std::set<std::string> column_tasks;
  for (const auto& c : table.columns) {
    if (c.task.empty()) return;
    column_tasks.insert(c.task);
  }
  std::map<std::string, int64_t> stray;
  for (const auto& ref : runs) {
    const std::string task = task_of(*ref.run);
    if (column_tasks.count(task) == 0) ++stray[task];
  }
  for (const auto& [task, count] : stray) {
    const std::string note = fmt::format("{}: {} run{} {} (no column)", row.config, count, count == 1 ? "" : "s",
                                         task.empty() ? "without data.task" : fmt::format("with data.task '{}'", task));
    // two rows may share a config (IMDB's dense-inference rows): report its stray runs once
    if (std::find(ignored.begin(), ignored.end(), note) == ignored.end()) ignored.push_back(note);
  }
}

}  // namespace

PaperComparison compare_with_paper(const PaperTable& table, const std::vector<std::string>& results_files) {
  PaperComparison out;
  out.table = table;
  std::set<std::string> row_configs;
  for (const auto& row : table.rows) row_configs.insert(row.config);
  const std::vector<LoadedFile> files = load_results_files(results_files, row_configs);
  for (const auto& f : files) out.files.push_back(f.info);
  const std::map<std::string, std::vector<RunRef>> runs_of_config = runs_by_config(files);
  out.variants = variants_of(table);
  FailureIndex failure_index;
  for (const auto& row : table.rows) {
    const auto found = runs_of_config.find(row.config);
    const std::vector<RunRef> runs = found == runs_of_config.end() ? std::vector<RunRef>{} : found->second;
    PaperRowResult result = row_result(table, row, runs, out, failure_index);
    result.matched_file = std::any_of(files.begin(), files.end(),
                                      [&](const LoadedFile& f) { return f.info.config_name == row.config; });
    if (!runs.empty()) note_stray_runs(table, row, runs, out.ignored);
    out.rows.push_back(std::move(result));
  }
  return out;
}

namespace {

// Headings and list items in either form.
struct Prose {
  bool markdown;
  std::string heading(const std::string& text) const { return markdown ? fmt::format("**{}**\n\n", text) : text + "\n"; }
  std::string item(const std::string& text) const { return markdown ? "- " + text + "\n" : "  " + text + "\n"; }
  std::string table(const std::vector<Column>& columns) const {
    return markdown ? render_markdown_table(columns) : render_text_table(columns);
  }
};

std::string format_sources(const PaperComparison& cmp, const PaperTargets& targets, const Prose& prose) {
  const PaperTable& t = cmp.table;
  std::string out = prose.markdown ? fmt::format("### {}\n\n", t.title) : fmt::format("{}\n", t.title);
  out += fmt::format("paper: {}\n", targets.source);
  if (prose.markdown) out += "\n";
  out += fmt::format("targets: {} (table '{}')\n", targets.path.empty() ? "-" : targets.path, t.name);
  if (prose.markdown) out += "\n";
  out += prose.heading(fmt::format("results read ({} file{}):", cmp.files.size(), cmp.files.size() == 1 ? "" : "s"));
  for (const auto& f : cmp.files) {
    const std::string sha = f.git_sha.substr(0, kShortShaChars) + (f.git_dirty ? " (dirty)" : "");
    out += prose.item(fmt::format("{}: config {}{}, {} complete, {} failed, {} running; git {}, created {}",
                                  prose.markdown ? "`" + f.path + "`" : f.path, f.config_name.empty() ? "?" : f.config_name,
                                  f.pipeline.empty() ? "" : " (" + f.pipeline + ")", f.complete, f.failed, f.running, sha,
                                  f.created_utc));
  }
  if (cmp.files.empty()) out += prose.item("(none)");
  return out + "\n";
}

// The table: three lines per row (paper, ours, diff).
std::string format_main_table(const PaperComparison& cmp, const Prose& prose) {
  const PaperTable& t = cmp.table;
  std::vector<Column> columns = {{"model", false, {}}, {"memory", true, {}}, {"", false, {}}};
  for (const auto& c : t.columns) columns.push_back({c.name, true, {}});
  if (t.average) columns.push_back({t.average->name, true, {}});
  for (const auto& r : cmp.rows) {
    const std::string name = r.row.name + (r.row.metric.empty() ? "" : " [" + r.row.metric + "]");
    const std::string lines[3][3] = {{name, format_memory(r.row.memory), "paper"}, {"", "", "ours"}, {"", "", "diff"}};
    for (int l = 0; l < 3; ++l)
      for (int k = 0; k < 3; ++k) columns[static_cast<size_t>(k)].cells.push_back(lines[l][k]);
    std::vector<PaperCell> cells = r.cells;
    if (r.average) cells.push_back(r.average->cell);
    for (size_t i = 0; i < cells.size(); ++i) {
      Column& col = columns[3 + i];
      const PaperCell& cell = cells[i];
      col.cells.push_back(cell.paper ? format_value(*cell.paper) : "-");
      const bool is_average = r.average && i + 1 == cells.size();
      col.cells.push_back(is_average && cell.state != PaperCellState::kValue
                              ? fmt::format("not run ({}/{})", r.average->have, r.average->of)
                              : format_ours(cell));
      col.cells.push_back(format_diff(cell));
    }
  }
  std::string out = prose.table(columns) + "\n";
  out += prose.item(fmt::format("ours: the mean over complete runs{}, \"(n=K)\" when K runs were averaged; diff = ours - paper",
                                format_scale(t.scale)));
  if (t.average) out += prose.item(fmt::format("{}: {}", t.average->name, t.average->rule));
  return out;
}

// The other metrics of multi-metric tasks, for the rows that have any.
std::string format_variants(const PaperComparison& cmp, const Prose& prose) {
  const PaperTable& t = cmp.table;
  std::vector<size_t> variant_rows;
  for (size_t r = 0; r < cmp.rows.size(); ++r) {
    const bool any = std::any_of(cmp.variants.begin(), cmp.variants.end(),
                                 [&](const PaperVariant& v) { return v.cells[r].state != PaperCellState::kNotRun; });
    if (any) variant_rows.push_back(r);
  }
  if (variant_rows.empty()) return "";
  std::vector<std::string> shown;
  for (const auto& c : t.columns) {
    const bool has_variant = std::any_of(cmp.variants.begin(), cmp.variants.end(),
                                         [&](const PaperVariant& v) { return v.task == c.task; });
    if (has_variant) shown.push_back(c.name + " " + c.metric);
  }
  std::string out = "\n" + prose.heading(fmt::format("our other metric variants{} (the table shows {}):",
                                                     format_scale(t.scale), join(shown, ", ")));
  std::vector<Column> vcols = {{"model", false, {}}};
  for (const auto& v : cmp.variants) vcols.push_back({v.label, true, {}});
  for (size_t r : variant_rows) {
    vcols[0].cells.push_back(cmp.rows[r].row.name);
    for (size_t v = 0; v < cmp.variants.size(); ++v) vcols[v + 1].cells.push_back(format_ours(cmp.variants[v].cells[r]));
  }
  return out + prose.table(vcols);
}

// Notes, failures, and what matched nothing.
std::string format_remarks(const PaperComparison& cmp, const Prose& prose) {
  std::string out;
  if (!cmp.table.notes.empty()) {
    out += "\n" + prose.heading("notes:");
    for (const auto& n : cmp.table.notes) out += prose.item(n);
  }
  if (!cmp.failures.empty()) {
    out += "\n" + prose.heading("failed runs:");
    for (const auto& f : cmp.failures)
      out += prose.item(fmt::format("{} / {}: run {} in {}: {}", f.row, f.column, f.run_id, f.file, f.error));
  }
  std::vector<std::string> unmatched_rows, unmatched_files;
  for (const auto& r : cmp.rows)
    if (!r.matched_file) unmatched_rows.push_back(fmt::format("{} (config {})", r.row.name, r.row.config));
  for (const auto& f : cmp.files)
    if (!f.matched) unmatched_files.push_back(fmt::format("{} (config '{}')", f.path, f.config_name));
  if (unmatched_rows.empty() && unmatched_files.empty() && cmp.ignored.empty()) return out;
  out += "\n" + prose.heading("matched nothing:");
  if (!unmatched_rows.empty()) out += prose.item("rows without a results file: " + join(unmatched_rows, ", "));
  if (!unmatched_files.empty()) out += prose.item("results files that fit no row: " + join(unmatched_files, ", "));
  for (const auto& s : cmp.ignored) out += prose.item("ignored " + s);
  return out;
}

}  // namespace

std::string format_paper_comparison(const PaperComparison& cmp, const PaperTargets& targets, bool markdown) {
  const Prose prose{markdown};
  return format_sources(cmp, targets, prose) + format_main_table(cmp, prose) + format_variants(cmp, prose) +
         format_remarks(cmp, prose);
}

std::string format_paper_report(const std::string& targets_path, const std::string& table,
                                const std::vector<std::string>& results_files, bool markdown) {
  const PaperTargets targets = load_paper_targets(targets_path);
  const PaperTable& t = paper_table(targets, table);
  return format_paper_comparison(compare_with_paper(t, results_files), targets, markdown);
}

}  // namespace smyrf
