// The paper's tables beside our numbers: `smyrf report --paper glue|imdb|celeba RESULTS.h5... [--markdown]`.
//
// Targets (configs/paper/targets.json, read strictly: unknown keys, wrong types and names that refer
// to nothing are ConfigErrors naming the JSON path):
//   {"version": 1, "source": "...", "notes": [...],
//    "tables": {"<table>": {"title": "...", "scale": 100, "notes": [...],
//       "columns": [{"name": "CoLA", "task": "cola", "metric": "mcc"}, ...],   task optional
//       "average": {"name": "Avg", "columns": ["CoLA", ...], "rule": "..."},   optional
//       "rows": [{"name": "BERT_128", "config": "paper_glue_bert128", "metric": "...",  metric optional
//                 "memory": 1.0, "paper": {"CoLA": 57.83, ..., "Avg": 82.69}}, ...]}}}
// Matching: a row's runs are those of the results files whose config "name" equals row.config; a
// column with a task keeps the runs whose resolved config has data.task equal to it; the value is
// metric (row.metric, else column.metric) x scale, averaged over the complete runs that have it
// (n shown when more than one). A cell with no complete run says "failed" / "running" / "no metric"
// / "not run". The average column is the mean of our cells once all its columns have a value, else
// "not run (k/N)". Beneath the table: our other metric variants of multi-metric tasks (MRPC and QQP
// accuracy/F1, STS-B Pearson/Spearman), notes, failed runs, rows and files that matched nothing.
// Torch-free. Tested by tests/light/test_paper_report.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace smyrf {

inline constexpr int64_t kPaperTargetsVersion = 1;
inline constexpr const char* kDefaultPaperTargetsPath = "configs/paper/targets.json";

struct PaperColumn {
  std::string name;    // header, and key of PaperRow::paper
  std::string task;    // data.task the runs must have; "" = every run of the row
  std::string metric;  // metric name stored by the pipeline
};

struct PaperAverage {
  std::string name;
  std::vector<std::string> columns;  // names of PaperColumns
  std::string rule;                  // how the paper averages, for the reader
};

struct PaperRow {
  std::string name;
  std::string config;  // config "name" of the results files that hold this row's runs
  std::string metric;  // overrides every column's metric when not empty
  double memory = 1;   // attention memory relative to the dense baseline
  std::map<std::string, double> paper;  // column or average name -> the paper's number
};

struct PaperTable {
  std::string name;  // key in "tables"
  std::string title;
  double scale = 1;  // our metric values are multiplied by this before printing
  std::vector<PaperColumn> columns;
  std::optional<PaperAverage> average;
  std::vector<std::string> notes;
  std::vector<PaperRow> rows;
};

struct PaperTargets {
  std::string path;  // file read ("" when parsed from memory)
  int64_t version = kPaperTargetsVersion;
  std::string source;
  std::vector<std::string> notes;
  std::vector<PaperTable> tables;  // sorted by name
};

// IoError when the file is missing or not JSON (naming it); ConfigError for a schema violation.
PaperTargets load_paper_targets(const std::string& path);
// `source` names the file in messages.
PaperTargets parse_paper_targets(const nlohmann::json& j, const std::string& source);
// ConfigError listing the tables when there is none called `name`.
const PaperTable& paper_table(const PaperTargets& targets, const std::string& name);

// ---------------------------------------------------------------- comparison

enum class PaperCellState { kValue, kNotRun, kFailed, kRunning, kNoMetric };

struct PaperCell {
  PaperCellState state = PaperCellState::kNotRun;
  double ours = std::numeric_limits<double>::quiet_NaN();   // mean x scale (kValue only)
  int64_t n = 0;                                            // complete runs averaged
  int64_t failed = 0, running = 0;                          // matching runs in those states
  std::optional<double> paper;                              // the paper's number, if it gives one
  std::optional<double> diff() const {                      // ours - paper
    if (state != PaperCellState::kValue || !paper) return std::nullopt;
    return ours - *paper;
  }
};

struct PaperAverageCell {
  PaperCell cell;      // kValue when all columns have values, else kNotRun
  int64_t have = 0;    // columns with a value
  int64_t of = 0;      // columns averaged
};

struct PaperRowResult {
  PaperRow row;
  std::vector<PaperCell> cells;  // one per table column
  std::optional<PaperAverageCell> average;
  bool matched_file = false;     // some results file has this row's config name
};

// One of our extra metric variants of a multi-metric task (e.g. MRPC accuracy beside MRPC F1).
struct PaperVariant {
  std::string label;  // "MRPC accuracy"
  std::string task, metric;
  std::vector<PaperCell> cells;  // one per row
};

struct PaperFileInfo {
  std::string path;
  std::string config_name, pipeline, git_sha, created_utc;
  bool git_dirty = false;
  int64_t complete = 0, failed = 0, running = 0;
  bool matched = false;  // its config name is some row's config
};

struct PaperFailure {
  std::string row, column, run_id, file, error;
};

struct PaperComparison {
  PaperTable table;
  std::vector<PaperFileInfo> files;
  std::vector<PaperRowResult> rows;
  std::vector<PaperVariant> variants;
  std::vector<PaperFailure> failures;
  std::vector<std::string> ignored;  // "paper_glue_bert128: 1 run with data.task 'wnli' (no column)"
};

// Reads every results file (IoError when one is missing or not a results file; the same file given
// twice is read once; a run present in two files with the same id, resolved config, status, times and
// metrics, as in a shard and the file it was merged into, counts once).
PaperComparison compare_with_paper(const PaperTable& table, const std::vector<std::string>& results_files);

std::string format_paper_comparison(const PaperComparison& comparison, const PaperTargets& targets, bool markdown);

// load + select table + compare + format, as `smyrf report --paper` does.
std::string format_paper_report(const std::string& targets_path, const std::string& table,
                                const std::vector<std::string>& results_files, bool markdown);

}  // namespace smyrf
