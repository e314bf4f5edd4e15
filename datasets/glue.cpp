// GLUE TSV loader (see glue.h for the layouts, label orders and errors).
//
// One pass over the file, line by line (MNLI's train.tsv is ~0.4 GB with its parse columns, so it is
// never held whole): strip a UTF-8 BOM from the first line and a '\r' from every line, check UTF-8,
// split on '\t' with no quote handling, and pick the text and label columns by header name (CoLA:
// by position, through a fixed stand-in header). A row whose column count differs from the header's,
// or whose sentence is empty, is "malformed": an error naming FILE:LINE, or skipped and counted
// when options.skip_malformed is set. Empty lines at the end of a file are ignored; one inside the
// file is a malformed row. Label and score errors are never skipped: they mean a wrong label list
// or a wrong file, not a damaged row.
// Tested by tests/light/test_text_datasets.cpp.
#include "datasets/glue.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string_view>

#include "core/text/unicode.h"
#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

namespace {

namespace fs = std::filesystem;

constexpr std::string_view kUtf8Bom = "\xEF\xBB\xBF";

// Where a task's fields are: column names in the file's header. CoLA has no header; its fixed
// positional layout gets names so that messages can say which column is wrong.
struct TaskColumns {
  std::string_view task;
  bool has_header;
  std::string_view text_a, text_b, label;  // text_b empty: single-sentence task
};

constexpr TaskColumns kTaskColumns[] = {
    {"cola", false, "sentence", "", "label"},
    {"sst2", true, "sentence", "", "label"},
    {"mrpc", true, "#1 String", "#2 String", "Quality"},
    {"stsb", true, "sentence1", "sentence2", "score"},
    {"qqp", true, "question1", "question2", "is_duplicate"},
    {"mnli", true, "sentence1", "sentence2", "gold_label"},
    {"qnli", true, "question", "sentence", "label"},
    {"rte", true, "sentence1", "sentence2", "label"},
    {"wnli", true, "sentence1", "sentence2", "label"},
};

// CoLA train/dev rows: source, label, the original author's mark ('*' or empty), sentence.
const std::vector<std::string> kColaColumns = {"source", "label", "original_label", "sentence"};

const TaskColumns& columns_of(const std::string& task) {
  for (const TaskColumns& c : kTaskColumns) {
    if (c.task == task) return c;
  }
  throw Error(fmt::format("internal: no column layout for GLUE task '{}'", task));
}

std::vector<std::string_view> split_tabs(std::string_view line) {
  std::vector<std::string_view> fields;
  std::size_t start = 0;
  while (true) {
    const std::size_t tab = line.find('\t', start);
    if (tab == std::string_view::npos) {
      fields.push_back(line.substr(start));
      return fields;
    }
    fields.push_back(line.substr(start, tab - start));
    start = tab + 1;
  }
}

bool is_ascii(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

void check_utf8(std::string_view line, const std::string& where) {
  if (is_ascii(line)) return;
  try {
    text::utf8_decode(line, "the line");
  } catch (const Error& e) {
    throw IoError(fmt::format("{}: not UTF-8 ({}); re-fetch the file (scripts/fetch_glue.sh) or convert it to UTF-8",
                              where, e.what()));
  }
}

std::size_t column_index(const std::vector<std::string>& header, std::string_view name, const std::string& path,
                         const std::string& task) {
  const auto it = std::find(header.begin(), header.end(), name);
  if (it == header.end()) {
    throw IoError(
        fmt::format("{}:1: the header has no column '{}' (it has: {}); GLUE task '{}' expects the layout written by "
                    "download_glue_data.py: is this the right file? (scripts/fetch_glue.sh writes it)",
                    path, name, join(header, ", "), task));
  }
  return static_cast<std::size_t>(it - header.begin());
}

// A regression target: the whole field must be a finite decimal number.
double parse_score(std::string_view field, std::string_view column, const std::string& where) {
  double value = 0;
  const char* end = field.data() + field.size();
  const auto [ptr, ec] = std::from_chars(field.data(), end, value);
  if (field.empty() || ec != std::errc() || ptr != end || !std::isfinite(value)) {
    throw IoError(fmt::format("{}: the score '{}' in column '{}' is not a finite number", where, field, column));
  }
  return value;
}

std::vector<std::string> resolve_labels(const GlueTask& task, const GlueLoadOptions& options) {
  if (task.default_labels.empty()) {
    if (!options.labels.empty()) {
      throw ConfigError(fmt::format("GLUE task '{}' is a regression task (a float score): give no labels, got [{}]",
                                    task.name, join(options.labels, ", ")));
    }
    return {};
  }
  if (options.labels.empty()) return task.default_labels;
  for (std::size_t i = 0; i < options.labels.size(); ++i) {
    if (std::find(options.labels.begin(), options.labels.begin() + static_cast<std::ptrdiff_t>(i), options.labels[i]) !=
        options.labels.begin() + static_cast<std::ptrdiff_t>(i)) {
      throw ConfigError(fmt::format("GLUE task '{}': label '{}' is listed twice in [{}]", task.name, options.labels[i],
                                    join(options.labels, ", ")));
    }
  }
  return options.labels;
}

void check_split(const GlueTask& task, const std::string& split) {
  if (split == "train" || std::find(task.dev_splits.begin(), task.dev_splits.end(), split) != task.dev_splits.end()) {
    return;
  }
  std::vector<std::string> valid = {"train"};
  valid.insert(valid.end(), task.dev_splits.begin(), task.dev_splits.end());
  const std::string why = split.rfind("test", 0) == 0 ? " (GLUE test labels are hidden: evaluate on dev)" : "";
  throw ConfigError(fmt::format("unknown split '{}' for GLUE task '{}'{}{}; valid splits: {}", split, task.name,
                                did_you_mean(split, valid), why, join(valid, ", ")));
}

}  // namespace

const std::vector<GlueTask>& glue_tasks() {
  static const std::vector<GlueTask> tasks = {
      {"cola", "CoLA", {"0", "1"}, {"dev"}, false},
      {"sst2", "SST-2", {"0", "1"}, {"dev"}, false},
      {"mrpc", "MRPC", {"0", "1"}, {"dev"}, true},
      {"stsb", "STS-B", {}, {"dev"}, true},
      {"qqp", "QQP", {"0", "1"}, {"dev"}, true},
      {"mnli", "MNLI", {"contradiction", "entailment", "neutral"}, {"dev_matched", "dev_mismatched"}, true},
      {"qnli", "QNLI", {"entailment", "not_entailment"}, {"dev"}, true},
      {"rte", "RTE", {"entailment", "not_entailment"}, {"dev"}, true},
      {"wnli", "WNLI", {"0", "1"}, {"dev"}, true},
  };
  return tasks;
}

const GlueTask& glue_task(const std::string& name) {
  std::vector<std::string> names;
  for (const GlueTask& task : glue_tasks()) {
    if (task.name == name) return task;
    names.push_back(task.name);
  }
  throw ConfigError(
      fmt::format("unknown GLUE task '{}'{}; tasks: {}", name, did_you_mean(name, names), join(names, ", ")));
}

TextSplit load_glue_split(const std::string& glue_dir, const std::string& task_name, const std::string& split,
                          const GlueLoadOptions& options) {
  const GlueTask& task = glue_task(task_name);
  const TaskColumns& layout = columns_of(task.name);
  check_split(task, split);
  TextSplit out;
  out.label_names = resolve_labels(task, options);

  // Step 1: find and open the file.
  if (glue_dir.empty() || !fs::is_directory(glue_dir)) {
    throw IoError(
        fmt::format("GLUE directory '{}' not found: run scripts/fetch_glue.sh DIR or set data.dir", glue_dir));
  }
  const std::string path = (fs::path(glue_dir) / task.dir / (split + ".tsv")).string();
  if (!fs::is_regular_file(path)) {
    throw IoError(
        fmt::format("GLUE file '{}' not found (task '{}', split '{}'): run scripts/fetch_glue.sh {} or set "
                    "data.dir to the folder holding {}/",
                    path, task.name, split, glue_dir, task.dir));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open GLUE file '{}' for reading", path));
  out.source = path;

  std::size_t line_no = 0;
  std::string line;
  const auto next_line = [&]() -> bool {
    if (!std::getline(in, line)) return false;
    ++line_no;
    if (line_no == 1 && std::string_view(line).substr(0, kUtf8Bom.size()) == kUtf8Bom) line.erase(0, kUtf8Bom.size());
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return true;
  };

  // Step 2: the header (or CoLA's fixed stand-in) and the indices of the columns we read.
  std::vector<std::string> header;
  if (layout.has_header) {
    if (!next_line()) {
      throw IoError(fmt::format("{}: the file is empty; expected a header line naming the columns", path));
    }
    check_utf8(line, fmt::format("{}:{}", path, line_no));
    for (std::string_view name : split_tabs(line)) header.emplace_back(name);
  } else {
    header = kColaColumns;
  }
  const std::size_t col_a = column_index(header, layout.text_a, path, task.name);
  const std::size_t col_b = layout.text_b.empty() ? 0 : column_index(header, layout.text_b, path, task.name);
  const std::size_t col_label = column_index(header, layout.label, path, task.name);

  // Step 3: the rows.
  const auto malformed = [&](std::size_t at, const std::string& what) {
    if (options.skip_malformed) {
      ++out.skipped;
      return;
    }
    throw IoError(
        fmt::format("{}:{}: {} (rows of GLUE task '{}' have {} tab-separated columns: {}); fix the file "
                    "or set skip_malformed to skip such rows",
                    path, at, what, task.name, header.size(), join(header, ", ")));
  };
  std::size_t empty_run = 0, empty_first = 0;  // empty lines seen but not yet known to be trailing
  while (next_line()) {
    if (line.empty()) {
      if (empty_run++ == 0) empty_first = line_no;
      continue;
    }
    for (std::size_t k = 0; k < empty_run; ++k) malformed(empty_first + k, "empty line inside the file");
    empty_run = 0;

    const std::string where = fmt::format("{}:{}", path, line_no);
    check_utf8(line, where);
    const std::vector<std::string_view> fields = split_tabs(line);
    if (fields.size() != header.size()) {
      malformed(line_no, fmt::format("{} columns instead of {}", fields.size(), header.size()));
      continue;
    }
    TextExample example;
    example.text_a = std::string(fields[col_a]);
    if (!layout.text_b.empty()) example.text_b = std::string(fields[col_b]);
    if (example.text_a.empty() || (example.text_b && example.text_b->empty())) {
      malformed(line_no,
                fmt::format("empty sentence in column '{}'", example.text_a.empty() ? layout.text_a : layout.text_b));
      continue;
    }
    const std::string_view label = fields[col_label];
    if (out.is_regression()) {
      example.label = parse_score(label, layout.label, where);
    } else {
      const auto it = std::find(out.label_names.begin(), out.label_names.end(), label);
      if (it == out.label_names.end()) {
        throw IoError(
            fmt::format("{}: label '{}' in column '{}' is not one of the labels [{}] of GLUE task '{}' "
                        "(give the label list in index order in the config's data.labels)",
                        where, label, layout.label, join(out.label_names, ", "), task.name));
      }
      example.label = static_cast<double>(it - out.label_names.begin());
    }
    example.origin = where;
    out.examples.push_back(std::move(example));
  }
  if (in.bad()) throw IoError(fmt::format("{}: read error after line {}", path, line_no));
  if (out.examples.empty()) {
    throw IoError(fmt::format("{}: no examples ({} malformed rows skipped); re-fetch it with scripts/fetch_glue.sh",
                              path, out.skipped));
  }
  return out;
}

}  // namespace smyrf
