// format_report(): reads a results file through ResultsStore and lays it out as an aligned
// terminal table or a GitHub markdown table. Column naming follows summarize_runs(), so the
// report and /summary agree. Tested by tests/light/test_results_store.cpp.
#include "experiments/report/report.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "experiments/runner/results_store.h"
#include "experiments/report/text_table.h"

namespace smyrf {
namespace {

constexpr size_t kMaxErrorChars = 200;
constexpr size_t kShortShaChars = 12;
constexpr size_t kMaxListedFailures = 3;  // run ids named per distinct error

enum class MetricKind { kFraction, kPercent, kError, kSimilarity, kOther, kCount, kSeconds, kMilliseconds, kBytes };

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// Units are set by each pipeline; the name suffix convention (_s, _bytes, _fraction) is the
// fallback so that a metric logged with a vague unit still prints sensibly.
MetricKind classify(const std::string& name, const std::string& unit) {
  if (unit == "fraction" || ends_with(name, "_fraction")) return MetricKind::kFraction;
  if (unit == "%" || unit == "percent") return MetricKind::kPercent;
  if (unit == "bytes" || unit == "byte" || unit == "B" || ends_with(name, "_bytes")) return MetricKind::kBytes;
  if (unit == "ms" || ends_with(name, "_ms")) return MetricKind::kMilliseconds;
  if (unit == "1/s" || ends_with(name, "_per_s")) return MetricKind::kOther;  // a rate: "_s" below is a duration
  if (unit == "s" || unit == "seconds" || ends_with(name, "_s")) return MetricKind::kSeconds;
  if (contains(name, "error") || ends_with(name, "_err")) return MetricKind::kError;
  if (contains(name, "cosine") || contains(name, "corr")) return MetricKind::kSimilarity;
  if (unit == "count" || ends_with(name, "_entries") || ends_with(name, "_count")) return MetricKind::kCount;
  return MetricKind::kOther;
}

// Report column order: memory_fraction, errors (relative ones first: they are the headline
// number), other quality, counts, times, memory.
int column_rank(const std::string& name, MetricKind kind) {
  if (name == "memory_fraction") return 0;
  switch (kind) {
    case MetricKind::kFraction: return 10;
    case MetricKind::kError: return name.compare(0, 3, "rel") == 0 ? 20 : 21;
    case MetricKind::kSimilarity: return 30;
    case MetricKind::kOther:
    case MetricKind::kPercent: return 40;
    case MetricKind::kCount: return 50;
    case MetricKind::kSeconds:
    case MetricKind::kMilliseconds: return 60;
    case MetricKind::kBytes: return 70;
  }
  return 40;
}

std::string format_bytes(double bytes) {
  static const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
  const double magnitude = std::fabs(bytes);
  if (magnitude < 1024) return fmt::format("{:.0f} B", bytes);
  double scaled = bytes / 1024;
  size_t unit = 0;
  while (std::fabs(scaled) >= 1024 && unit + 1 < std::size(kUnits)) {
    scaled /= 1024;
    ++unit;
  }
  return fmt::format("{:.1f} {}", scaled, kUnits[unit]);
}

std::string format_milliseconds(double ms) {
  return std::fabs(ms) >= 100 ? fmt::format("{:.0f} ms", ms) : fmt::format("{:.3g} ms", ms);
}

std::string format_count(double value) {
  const double magnitude = std::fabs(value);
  if (magnitude < 1e6 && value == std::floor(value)) return fmt::format("{:.0f}", value);
  if (magnitude >= 1e12) return fmt::format("{:.3g}T", value / 1e12);
  if (magnitude >= 1e9) return fmt::format("{:.3g}G", value / 1e9);
  if (magnitude >= 1e6) return fmt::format("{:.3g}M", value / 1e6);
  return fmt::format("{:.4g}", value);
}

// ---------------------------------------------------------------- table rendering

// An identity column also keeps its numbers, to sort numerically.
struct Column : TextTableColumn {
  std::vector<double> values;  // numeric identity columns: sort keys (NaN = absent, sorts first)
};

// Row order: by each identity column (numbers numerically, so 16 < 128), then by run id.
std::vector<size_t> row_order(const std::vector<Column>& ident, const std::vector<StoredRun>& runs) {
  std::vector<size_t> order(runs.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto less = [&](size_t a, size_t b) {
    for (const auto& c : ident) {
      if (!c.values.empty()) {
        const double x = c.values[a], y = c.values[b];
        if (std::isnan(x) != std::isnan(y)) return std::isnan(x);
        if (x != y && !std::isnan(x)) return x < y;
      } else if (c.cells[a] != c.cells[b]) {
        return c.cells[a] < c.cells[b];
      }
    }
    return runs[a].info.run_id < runs[b].info.run_id;
  };
  std::stable_sort(order.begin(), order.end(), less);
  return order;
}

std::string first_line_brief(const std::string& text) {
  std::string line = text.substr(0, text.find('\n'));
  if (line.size() > kMaxErrorChars) line = line.substr(0, kMaxErrorChars) + "…";
  return line;
}

std::string format_number(double v) {
  if (std::isnan(v)) return "-";
  return fmt::format("{:.6g}", v);
}

std::string leaf_of(const std::string& dotted) {
  const size_t dot = dotted.rfind('.');
  return dot == std::string::npos ? dotted : dotted.substr(dot + 1);
}

}  // namespace

std::string format_metric_value(const std::string& name, const std::string& unit, double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  switch (classify(name, unit)) {
    case MetricKind::kFraction: return fmt::format("{:.3g}%", value * 100);
    case MetricKind::kPercent: return fmt::format("{:.3g}%", value);
    case MetricKind::kError: return fmt::format("{:.3g}", value);
    case MetricKind::kSimilarity: return fmt::format("{:.6g}", value);
    case MetricKind::kCount: return format_count(value);
    case MetricKind::kSeconds: return format_milliseconds(value * 1e3);
    case MetricKind::kMilliseconds: return format_milliseconds(value);
    case MetricKind::kBytes: return format_bytes(value);
    case MetricKind::kOther: break;
  }
  return fmt::format("{:.4g}", value);
}

namespace {

std::string format_provenance(const std::string& h5_path, const ResultsHeader& header,
                              const std::vector<StoredRun>& runs, bool markdown) {
  const auto& p = header.provenance;
  std::string sha = p.git_sha.substr(0, kShortShaChars) + (p.git_dirty ? " (dirty)" : "");
  std::string name = experiment_field(header, runs, "name"), pipeline = experiment_field(header, runs, "pipeline");
  if (name.empty()) name = "?";
  if (pipeline.empty()) pipeline = "?";
  std::map<std::string, int> by_status;
  for (const auto& r : runs) ++by_status[r.status];
  const std::string counts = fmt::format("{} runs: {} complete, {} failed, {} running", runs.size(),
                                         by_status["complete"], by_status["failed"], by_status["running"]);
  if (markdown)
    return fmt::format("**{}** ({}) · `{}`\n\ncreated {} on {} · git `{}` · torch {} · device {} · harness {} · {}\n\n",
                       name, pipeline, h5_path, p.created_utc, p.host, sha, p.torch_version, p.device,
                       p.harness_version, counts);
  return fmt::format("results: {}  (experiment {}, pipeline {})\n", h5_path, name, pipeline) +
         fmt::format("created {} on {} | git {} | torch {} | device {} | harness {} | {}\n\n", p.created_utc, p.host,
                     sha, p.torch_version, p.device, p.harness_version, counts);
}

// What tells the runs apart: method, the methods' knobs, and the sweep keys that add information.
std::vector<Column> identity_columns(const std::vector<StoredRun>& runs, const std::vector<SummaryColumn>& summary) {
  std::vector<Column> ident;
  Column method{{"method", false, {}}, {}};
  for (const auto& r : runs) method.cells.push_back(r.info.method.empty() ? "-" : r.info.method);
  ident.push_back(method);
  std::map<std::string, std::vector<std::string>> shown;  // leaf -> cells, to spot redundant sweep keys
  shown["method"] = method.cells;
  for (const std::string& knob : knob_names(runs)) {
    Column c{{knob, true, {}}, {}};
    for (const auto& r : runs) {
      const std::optional<int64_t> v = knob_value(r.info, knob);
      c.cells.push_back(v ? std::to_string(*v) : "-");
      c.values.push_back(v ? static_cast<double>(*v) : std::nan(""));
    }
    shown[knob] = c.cells;
    ident.push_back(std::move(c));
  }
  for (const auto& sc : summary) {
    if (sc.source != "sweep") continue;
    Column c{{sc.column.name, !sc.column.is_string, {}}, sc.column.is_string ? std::vector<double>{} : sc.column.numbers};
    for (size_t r = 0; r < runs.size(); ++r)
      c.cells.push_back(sc.column.is_string ? (sc.column.strings[r].empty() ? "-" : sc.column.strings[r])
                                            : format_number(sc.column.numbers[r]));
    auto it = shown.find(leaf_of(sc.key));
    if (it != shown.end() && it->second == c.cells) continue;  // e.g. attention.n_hashes == n_hashes
    ident.push_back(std::move(c));
  }
  return ident;
}

bool rows_are_distinct(const std::vector<Column>& ident, size_t n) {
  std::set<std::string> keys;
  for (size_t r = 0; r < n; ++r) {
    std::string key;
    for (const auto& c : ident) key += c.cells[r] + '\x1f';
    if (!keys.insert(key).second) return false;
  }
  return true;
}

// One column per metric, most telling first (column_rank).
std::vector<Column> metric_columns(const std::vector<StoredRun>& runs, const std::vector<SummaryColumn>& summary) {
  struct MetricColumn {
    int rank;
    std::string name;
    std::string unit;
  };
  std::vector<MetricColumn> metrics;
  for (const auto& sc : summary)
    if (sc.source == "metric") metrics.push_back({column_rank(sc.key, classify(sc.key, sc.unit)), sc.key, sc.unit});
  std::stable_sort(metrics.begin(), metrics.end(),
                   [](const MetricColumn& a, const MetricColumn& b) { return a.rank < b.rank; });
  std::vector<Column> columns;
  for (const auto& m : metrics) {
    Column c{{m.name, true, {}}, {}};
    for (const auto& r : runs) {
      auto it = r.result.metrics.find(m.name);
      c.cells.push_back(it == r.result.metrics.end() ? "-" : format_metric_value(m.name, m.unit, it->second.value));
    }
    columns.push_back(std::move(c));
  }
  return columns;
}

// One line per distinct error, so that a sweep failing everywhere stays short.
std::string format_failures(const std::vector<StoredRun>& runs, const std::vector<size_t>& order, bool markdown) {
  std::vector<std::pair<std::string, std::vector<std::string>>> by_error;  // error -> run ids
  for (size_t i : order) {
    if (runs[i].status != "failed") continue;
    const std::string brief = first_line_brief(runs[i].error);
    auto it = std::find_if(by_error.begin(), by_error.end(), [&](const auto& e) { return e.first == brief; });
    if (it == by_error.end()) it = by_error.insert(by_error.end(), {brief, {}});
    it->second.push_back(runs[i].info.run_id);
  }
  if (by_error.empty()) return "";
  std::string out = markdown ? "\n**Failed runs**\n\n" : "\nfailed runs:\n";
  for (const auto& [error, ids] : by_error) {
    std::string who = ids.front();
    if (ids.size() > 1) {
      const size_t listed = std::min(ids.size(), kMaxListedFailures);
      std::vector<std::string> head(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(listed));
      who = fmt::format("{} runs ({}{})", ids.size(), fmt::join(head, ", "),
                        ids.size() > listed ? fmt::format(", and {} more", ids.size() - listed) : "");
    }
    out += markdown ? fmt::format("- `{}`: {}\n", who, markdown_escape(error)) : fmt::format("  {}: {}\n", who, error);
  }
  return out;
}

}  // namespace

std::string format_report(const std::string& h5_path, bool markdown) {
  const ResultsStore store = ResultsStore::open_existing(h5_path);
  const std::vector<StoredRun> runs = store.read_runs(/*include_arrays=*/false);
  std::string out = format_provenance(h5_path, store.header(), runs, markdown);
  if (runs.empty()) return out + "(no runs yet)\n";
  const std::vector<SummaryColumn> summary = summarize_runs(runs);
  const std::vector<Column> ident = identity_columns(runs, summary);
  std::vector<Column> columns;
  if (!rows_are_distinct(ident, runs.size())) {
    Column id{{"run_id", false, {}}, {}};
    for (const auto& r : runs) id.cells.push_back(r.info.run_id);
    columns.push_back(std::move(id));
  }
  columns.insert(columns.end(), ident.begin(), ident.end());
  Column status{{"status", false, {}}, {}};
  for (const auto& r : runs) status.cells.push_back(r.status);
  columns.push_back(std::move(status));
  for (Column& c : metric_columns(runs, summary)) columns.push_back(std::move(c));
  const std::vector<size_t> order = row_order(ident, runs);
  for (auto& c : columns) {
    std::vector<std::string> sorted;
    for (size_t i : order) sorted.push_back(std::move(c.cells[i]));
    c.cells = std::move(sorted);
  }
  const std::vector<TextTableColumn> table(columns.begin(), columns.end());
  out += markdown ? render_markdown_table(table) : render_text_table(table);
  return out + format_failures(runs, order, markdown);
}

}  // namespace smyrf
