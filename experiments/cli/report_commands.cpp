// Command family: reading results.
//   smyrf report FILE.h5 [--markdown]     the results as a table
//   smyrf report --paper glue|imdb|celeba FILE.h5... [--targets configs/paper/targets.json] [--markdown]
//                                         a paper table (experiments/report/paper_report.h) with our
//                                         numbers beside the paper's: files matched to rows by config name
//   smyrf score --task T --predictions FILE --labels FILE
//                                         GLUE/IMDB metrics of one number per line (class ids, or
//                                         scores for stsb) as one JSON object, NaN as null
// Tested by tests/test_experiments.cpp, tests/light/test_paper_report.cpp and
// tests/python/test_task_metrics.py (against scikit-learn and scipy).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <memory>

#include "core/util/check.h"
#include "core/util/text_file.h"
#include "experiments/cli/command_table.h"
#include "experiments/metrics/task_metrics.h"
#include "experiments/report/paper_report.h"
#include "experiments/report/report.h"

namespace smyrf {
namespace {

struct ReportArgs {
  std::vector<std::string> files;
  std::string paper_table, targets_path = kDefaultPaperTargetsPath;
  bool markdown = false;
  CLI::Option* paper = nullptr;
};

int report_command(const ReportArgs& args) {
  if (args.paper->count() > 0) {
    fmt::print("{}", format_paper_report(args.targets_path, args.paper_table, args.files, args.markdown));
    return 0;
  }
  if (args.files.size() != 1)
    throw ConfigError(fmt::format("smyrf report takes one results file, got {}; several files are read together only "
                                  "with --paper glue|imdb|celeba", args.files.size()));
  fmt::print("{}", format_report(args.files.front(), args.markdown));
  return 0;
}

// One number per line; trailing blank lines are dropped, any other blank line or a line that is
// not a number is an error naming file and line (predictions and labels pair by line).
std::vector<double> read_numbers(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec))
    throw IoError(fmt::format("'{}' is a directory; give a text file with one number per line", path));
  std::vector<std::string> lines = read_text_lines(path, "input file");
  const auto blank = [](const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; };
  while (!lines.empty() && blank(lines.back())) lines.pop_back();
  std::vector<double> values;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const size_t begin = line.find_first_not_of(" \t"), end = line.find_last_not_of(" \t\r");
    if (begin == std::string::npos)
      throw ConfigError(fmt::format("'{}' line {} is empty; write one number per line", path, i + 1));
    const std::string text = line.substr(begin, end - begin + 1);
    char* stop = nullptr;
    const double v = std::strtod(text.c_str(), &stop);
    if (stop != text.c_str() + text.size())
      throw ConfigError(fmt::format("'{}' line {}: '{}' is not a number; write one number per line", path, i + 1, text));
    values.push_back(v);
  }
  return values;
}

struct ScoreArgs {
  std::string task, predictions, labels;
};

int score_command(const ScoreArgs& args) {
  const std::vector<std::string> names = task_metric_names(args.task);  // an unknown task fails before any file
  const auto metrics = task_metrics(args.task, read_numbers(args.predictions), read_numbers(args.labels));
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& name : names) out[name] = metrics.at(name);  // NaN dumps as null
  fmt::print("{}\n", out.dump());
  return 0;
}

}  // namespace

void add_report_commands(CLI::App& app, CommandTable& table) {
  auto r = std::make_shared<ReportArgs>();
  auto* report = app.add_subcommand("report", "Print a results file as a table, or results beside a paper table");
  report->add_option("files", r->files, "results file (.h5); several with --paper")->required();
  r->paper = report->add_option("--paper", r->paper_table, "compare with a paper table: glue | imdb | celeba");
  report->add_option("--targets", r->targets_path, "paper targets file (default configs/paper/targets.json)")
      ->needs(r->paper);
  report->add_flag("--markdown", r->markdown, "GitHub markdown table");
  table.add(report, [r] { return report_command(*r); });

  auto s = std::make_shared<ScoreArgs>();
  auto* score = app.add_subcommand("score", "GLUE/IMDB metrics of predictions against labels (JSON)");
  score->add_option("--task", s->task, "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli or imdb")->required();
  score->add_option("--predictions", s->predictions, "file with one prediction per line")->required();
  score->add_option("--labels", s->labels, "file with one label per line")->required();
  table.add(score, [s] { return score_command(*s); });
}

}  // namespace smyrf
