// Tests for experiments/report/paper_report.h: the shipped configs/paper/targets.json (parses; every GLUE
// paper average is the mean of its 9 numbers), the strict targets reader (JSON paths in errors), and
// the comparison on small results files written with ResultsStore under the paper config names:
// cells, n=, diffs, averages, "not run" / "failed" / "running", metric overrides, variants, files
// and rows that match nothing, markdown, and the errors of `smyrf report --paper`.
// Run: smyrf_tests_light --gtest_filter='PaperReport*:PaperTargets*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "experiments/report/paper_report.h"
#include "experiments/report/report.h"
#include "experiments/runner/results_store.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::contains;
using test::error_of;

const std::string kShippedTargets = std::string(SMYRF_TEST_DATA_DIR) + "/../../configs/paper/targets.json";
const std::vector<std::string> kGlueColumns = {"CoLA", "MNLI-m", "MNLI-mm", "MRPC", "QNLI",
                                               "QQP",  "RTE",    "SST-2",   "STS-B"};

class PaperReportTest : public test::TempDirTest {
 protected:
  std::string write_text(const std::string& name, const std::string& text) const {
    std::ofstream(file(name)) << text;
    return file(name);
  }
};

struct FakeRun {
  std::string id;
  std::string task;  // data.task; "" = none
  std::map<std::string, double> metrics;
  std::string status = "complete";  // or "failed", "running"
  std::string error;
};

Provenance fake_provenance() {
  Provenance p;
  p.harness_version = "0.1.0";
  p.git_sha = "0123456789abcdef0123456789abcdef01234567";
  p.created_utc = "2026-11-22T12:00:00Z";
  p.host = "node-7";
  p.device = "cpu";
  p.torch_version = "2.5.1";
  return p;
}

// A results file of the experiment `config` holding `runs`.
std::string write_results(const std::string& path, const std::string& config, const std::vector<FakeRun>& runs) {
  const json cfg = {{"version", 1}, {"name", config}, {"pipeline", "glue"}};
  auto store = ResultsStore::open_or_create(path, cfg, fake_provenance());
  for (const auto& r : runs) {
    RunInfo info;
    info.run_id = r.id;
    info.method = "dense";
    info.seed = 42;
    info.resolved_config = cfg;
    info.sweep_point = json::object();
    if (!r.task.empty()) {
      info.resolved_config["data"] = {{"task", r.task}};
      info.sweep_point = {{"data.task", r.task}};
    }
    store.mark_running(info);
    if (r.status == "complete") {
      RunResult result;
      for (const auto& [name, value] : r.metrics) result.metrics[name] = {value, "1", true};
      store.complete(r.id, result);
    } else if (r.status == "failed") {
      store.fail(r.id, r.error);
    }
  }
  return path;
}

// Every GLUE task of one model, at fractions 0.01 above or below the paper's BERT_128 numbers.
std::vector<FakeRun> full_glue_runs() {
  return {
      {"cola_s1", "cola", {{"mcc", 0.580}}},
      {"cola_s2", "cola", {{"mcc", 0.581}}},
      {"cola_s3", "cola", {{"mcc", 0.582}}},  // mean 58.10 (n=3), diff +0.27
      {"mnli", "mnli", {{"accuracy_matched", 0.8443}, {"accuracy_mismatched", 0.8368}}},
      {"mrpc", "mrpc", {{"f1", 0.8841}, {"accuracy", 0.85}, {"acc_and_f1", 0.86705}}},
      {"qnli", "qnli", {{"accuracy", 0.9131}}},
      {"qqp", "qqp", {{"f1", 0.88}, {"accuracy", 0.914}, {"acc_and_f1", 0.897}}},
      {"rte", "rte", {{"accuracy", 0.6570}}},
      {"sst2", "sst2", {{"accuracy", 0.9346}}},
      {"stsb", "stsb", {{"pearson", 0.89}, {"spearman", 0.8846}, {"corr", 0.8873}}},
      {"wnli", "wnli", {{"accuracy", 0.56}}},
  };
}

const PaperRowResult& row_named(const PaperComparison& c, const std::string& name) {
  for (const auto& r : c.rows) {
    if (r.row.name == name) return r;
  }
  throw std::runtime_error("no row " + name);
}

size_t column_index(const PaperTable& t, const std::string& name) {
  for (size_t i = 0; i < t.columns.size(); ++i) {
    if (t.columns[i].name == name) return i;
  }
  throw std::runtime_error("no column " + name);
}

const PaperCell& cell_of(const PaperComparison& c, const std::string& row, const std::string& column) {
  return row_named(c, row).cells.at(column_index(c.table, column));
}

// ======================================================================== shipped targets

TEST(PaperTargets, ShippedFileParsesAndItsAveragesAreTheMeanOfNineNumbers) {
  const PaperTargets targets = load_paper_targets(kShippedTargets);
  ASSERT_EQ(targets.tables.size(), 3u);
  EXPECT_TRUE(contains(targets.source, "github.com/giannisdaras/smyrf"));
  const PaperTable& celeba = paper_table(targets, "celeba");
  EXPECT_EQ(celeba.scale, 1);
  ASSERT_EQ(celeba.columns.size(), 1u);
  EXPECT_EQ(celeba.columns[0].metric, "fid");
  ASSERT_EQ(celeba.rows.size(), 2u);
  EXPECT_EQ(celeba.rows[0].config, "paper_celeba_biggan_dense_64");
  EXPECT_EQ(celeba.rows[0].paper.at("FID"), 26.06);
  EXPECT_EQ(celeba.rows[1].config, "paper_celeba_biggan_smyrf_128");
  EXPECT_EQ(celeba.rows[1].paper.at("FID"), 25.03);
  EXPECT_TRUE(contains(targets.source, "2010.05315"));

  const PaperTable& glue = paper_table(targets, "glue");
  EXPECT_EQ(glue.scale, 100);
  std::vector<std::string> names;
  for (const auto& c : glue.columns) names.push_back(c.name);
  EXPECT_EQ(names, kGlueColumns);
  EXPECT_EQ(glue.columns[column_index(glue, "MRPC")].metric, "f1");
  EXPECT_EQ(glue.columns[column_index(glue, "QQP")].metric, "acc_and_f1");
  EXPECT_EQ(glue.columns[column_index(glue, "STS-B")].metric, "corr");
  ASSERT_TRUE(glue.average.has_value());
  EXPECT_EQ(glue.average->columns, kGlueColumns);
  const std::map<std::string, std::pair<std::string, double>> rows = {
      {"BERT_128", {"paper_glue_bert128", 1.0}},      {"SMYRF-BERT 2x32", {"paper_glue_smyrf_2x32", 0.5}},
      {"SMYRF-BERT 2x16", {"paper_glue_smyrf_2x16", 0.25}}, {"BERT_64", {"paper_glue_bert64", 0.25}},
      {"BERT_32", {"paper_glue_bert32", 0.0625}}};
  ASSERT_EQ(glue.rows.size(), rows.size());
  const std::map<std::string, double> expected_avg = {{"BERT_128", 82.69}, {"SMYRF-BERT 2x32", 82.98},
                                                      {"SMYRF-BERT 2x16", 81.74}, {"BERT_64", 81.57},
                                                      {"BERT_32", 73.56}};
  for (const auto& row : glue.rows) {
    ASSERT_EQ(rows.count(row.name), 1u) << row.name;
    EXPECT_EQ(row.config, rows.at(row.name).first);
    EXPECT_EQ(row.memory, rows.at(row.name).second);
    ASSERT_EQ(row.paper.size(), 10u) << row.name;
    double sum = 0;
    for (const auto& c : kGlueColumns) sum += row.paper.at(c);
    EXPECT_NEAR(row.paper.at("Avg"), sum / 9, 0.01) << row.name;  // the README's rule, on its own numbers
    EXPECT_EQ(row.paper.at("Avg"), expected_avg.at(row.name));
  }
  EXPECT_EQ(glue.rows[0].paper.at("CoLA"), 57.83);
  EXPECT_EQ(glue.rows[4].paper.at("MNLI-mm"), 63.41);

  const PaperTable& imdb = paper_table(targets, "imdb");
  ASSERT_EQ(imdb.rows.size(), 6u);
  EXPECT_FALSE(imdb.average.has_value());
  const std::vector<double> accuracies = {94.96, 93.72, 94.62, 94.12, 92.64, 93.54};
  for (size_t i = 0; i < 6; ++i) EXPECT_EQ(imdb.rows[i].paper.at("Accuracy"), accuracies[i]) << imdb.rows[i].name;
  EXPECT_EQ(imdb.rows[2].config, "paper_imdb_smyrf_roberta");
  EXPECT_EQ(imdb.rows[2].metric, "accuracy_with_dense");
  EXPECT_EQ(imdb.rows[5].config, "paper_imdb_smyrf_bert");
  EXPECT_EQ(imdb.rows[5].metric, "accuracy_with_dense");
  EXPECT_EQ(imdb.rows[0].metric, "");
}

// ======================================================================== strict reader

json small_targets() {
  return json::parse(R"({
    "version": 1, "source": "test",
    "tables": {"t": {"title": "T", "scale": 100,
      "columns": [{"name": "A", "task": "sst2", "metric": "accuracy"}, {"name": "B", "task": "cola", "metric": "mcc"}],
      "average": {"name": "Avg", "columns": ["A", "B"], "rule": "mean"},
      "rows": [{"name": "R", "config": "cfg_r", "memory": 1, "paper": {"A": 90, "B": 50, "Avg": 70}}]}}})");
}

TEST(PaperTargets, StrictReaderNamesTheJsonPath) {
  EXPECT_NO_THROW(parse_paper_targets(small_targets(), "t.json"));
  const auto error_with = [](const std::function<void(json&)>& edit) {
    json j = small_targets();
    edit(j);
    return error_of<ConfigError>([&] { parse_paper_targets(j, "t.json"); });
  };
  std::string e = error_with([](json& j) { j["tables"]["t"]["columns"][1]["metrc"] = "x"; });
  EXPECT_TRUE(contains(e, "unknown key 'tables.t.columns[1].metrc'"));
  EXPECT_TRUE(contains(e, "did you mean 'metric'"));
  EXPECT_TRUE(contains(e, "t.json"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0]["paper"]["a"] = 1; });
  EXPECT_TRUE(contains(e, "unknown key 'tables.t.rows[0].paper.a'"));
  EXPECT_TRUE(contains(e, "valid keys: A, B, Avg"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0]["paper"]["A"] = "90"; });
  EXPECT_TRUE(contains(e, "'tables.t.rows[0].paper.A' must be a number"));
  e = error_with([](json& j) { j["tables"]["t"]["average"]["columns"][1] = "C"; });
  EXPECT_TRUE(contains(e, "'tables.t.average.columns[1]' is 'C', which is not a column"));
  e = error_with([](json& j) { j["tables"]["t"]["columns"][0]["task"] = "sst-2"; });
  EXPECT_TRUE(contains(e, "'tables.t.columns[0].task'"));
  EXPECT_TRUE(contains(e, "unknown task 'sst-2'"));
  e = error_with([](json& j) { j["version"] = 2; });
  EXPECT_TRUE(contains(e, "'version' is 2"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0].erase("config"); });
  EXPECT_TRUE(contains(e, "missing required key 'tables.t.rows[0].config'"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0]["memory"] = "half"; });
  EXPECT_TRUE(contains(e, "'tables.t.rows[0].memory' must be a number"));
  e = error_with([](json& j) { j["tables"]["t"]["columns"][1]["name"] = "A"; });
  EXPECT_TRUE(contains(e, "'tables.t.columns' has the name 'A' twice"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"] = json::array(); });
  EXPECT_TRUE(contains(e, "'tables.t.rows' must be a non-empty array"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0]["paper"] = 3; });
  EXPECT_TRUE(contains(e, "'tables.t.rows[0].paper' must be an object"));
  e = error_with([](json& j) { j["tables"]["t"]["colour"] = 1; });
  EXPECT_TRUE(contains(e, "unknown key 'tables.t.colour'"));
  e = error_with([](json& j) { j["extra"] = 1; });
  EXPECT_TRUE(contains(e, "unknown key 'extra'"));
  e = error_with([](json& j) { j.erase("tables"); });
  EXPECT_TRUE(contains(e, "'tables' must be a non-empty object"));
  e = error_with([](json& j) { j["tables"]["t"]["rows"][0] = "R"; });
  EXPECT_TRUE(contains(e, "'tables.t.rows[0]' must be a JSON object"));
}

TEST_F(PaperReportTest, TargetsFileErrors) {
  const std::string missing = file("nope.json");
  std::string e = error_of<IoError>([&] { load_paper_targets(missing); });
  EXPECT_TRUE(contains(e, missing));
  EXPECT_TRUE(contains(e, "--targets"));
  const std::string corrupt = write_text("corrupt.json", "{\"version\": 1, ");
  e = error_of<IoError>([&] { load_paper_targets(corrupt); });
  EXPECT_TRUE(contains(e, corrupt));
  EXPECT_TRUE(contains(e, "not valid JSON"));
  const std::string bad = write_text("bad.json", R"({"version": 1, "source": "x", "tables": {"t": {"title": 3}}})");
  e = error_of<ConfigError>([&] { load_paper_targets(bad); });
  EXPECT_TRUE(contains(e, "'tables.t.title' must be a string"));
  EXPECT_TRUE(contains(e, bad));

  const PaperTargets targets = load_paper_targets(kShippedTargets);
  e = error_of<ConfigError>([&] { paper_table(targets, "glu"); });
  EXPECT_TRUE(contains(e, "unknown paper table 'glu'"));
  EXPECT_TRUE(contains(e, "did you mean 'glue'"));
  EXPECT_TRUE(contains(e, "glue, imdb"));
  EXPECT_THROW(format_paper_report(kShippedTargets, "cifar", {}, false), ConfigError);
}

TEST_F(PaperReportTest, ResultsFileErrors) {
  const std::string missing = file("missing.h5");
  EXPECT_TRUE(contains(error_of<IoError>([&] { format_paper_report(kShippedTargets, "glue", {missing}, false); }),
                       missing));
  const std::string text = write_text("not_results.h5", "hello");
  EXPECT_THROW(format_paper_report(kShippedTargets, "glue", {text}, false), IoError);
}

// ======================================================================== comparison

TEST_F(PaperReportTest, GlueCellsDiffsAverageAndVariants) {
  const std::string h5 = write_results(file("bert128.h5"), "paper_glue_bert128", full_glue_runs());
  const PaperTargets targets = load_paper_targets(kShippedTargets);
  const PaperComparison c = compare_with_paper(paper_table(targets, "glue"), {h5});

  const PaperCell& cola = cell_of(c, "BERT_128", "CoLA");
  EXPECT_EQ(cola.state, PaperCellState::kValue);
  EXPECT_EQ(cola.n, 3);
  EXPECT_NEAR(cola.ours, 58.10, 1e-9);
  EXPECT_NEAR(*cola.diff(), 0.27, 1e-9);
  EXPECT_NEAR(cell_of(c, "BERT_128", "MNLI-m").ours, 84.43, 1e-9);
  EXPECT_NEAR(cell_of(c, "BERT_128", "MNLI-mm").ours, 83.68, 1e-9);  // the same run, the other metric
  EXPECT_NEAR(*cell_of(c, "BERT_128", "MNLI-mm").diff(), -1.00, 1e-9);
  EXPECT_NEAR(cell_of(c, "BERT_128", "MRPC").ours, 88.41, 1e-9);       // f1, not accuracy
  EXPECT_NEAR(cell_of(c, "BERT_128", "QQP").ours, 89.70, 1e-9);        // acc_and_f1
  EXPECT_NEAR(cell_of(c, "BERT_128", "STS-B").ours, 88.73, 1e-9);      // corr
  EXPECT_EQ(cell_of(c, "BERT_128", "STS-B").n, 1);

  const auto& avg = row_named(c, "BERT_128").average;
  ASSERT_TRUE(avg.has_value());
  EXPECT_EQ(avg->have, 9);
  EXPECT_EQ(avg->cell.state, PaperCellState::kValue);
  double sum = 0;
  for (const auto& cell : row_named(c, "BERT_128").cells) sum += cell.ours;
  EXPECT_NEAR(avg->cell.ours, sum / 9, 1e-12);
  EXPECT_EQ(*avg->cell.paper, 82.69);

  const auto& bert64 = row_named(c, "BERT_64");
  EXPECT_FALSE(bert64.matched_file);
  for (const auto& cell : bert64.cells) EXPECT_EQ(cell.state, PaperCellState::kNotRun);
  EXPECT_EQ(bert64.average->have, 0);

  // the variants: MRPC accuracy/acc_and_f1, QQP f1/accuracy, STS-B pearson/spearman
  std::vector<std::string> labels;
  for (const auto& v : c.variants) labels.push_back(v.label);
  EXPECT_EQ(labels, (std::vector<std::string>{"MRPC accuracy", "MRPC acc_and_f1", "QQP f1", "QQP accuracy",
                                              "STS-B pearson", "STS-B spearman"}));
  EXPECT_NEAR(c.variants[0].cells[0].ours, 85.0, 1e-9);
  EXPECT_NEAR(c.variants[3].cells[0].ours, 91.4, 1e-9);
  EXPECT_EQ(c.variants[0].cells[3].state, PaperCellState::kNotRun);

  const std::string text = format_paper_comparison(c, targets, false);
  EXPECT_TRUE(contains(text, "58.10 (n=3)"));
  EXPECT_TRUE(contains(text, "+0.27"));
  EXPECT_TRUE(contains(text, "-1.00"));
  EXPECT_TRUE(contains(text, "not run (0/9)"));
  EXPECT_TRUE(contains(text, h5 + ": config paper_glue_bert128 (glue), 11 complete, 0 failed, 0 running"));
  EXPECT_TRUE(contains(text, "rows without a results file: SMYRF-BERT 2x32 (config paper_glue_smyrf_2x32)"));
  EXPECT_TRUE(contains(text, "ignored paper_glue_bert128: 1 run with data.task 'wnli' (no column)"));
  EXPECT_TRUE(contains(text, "MRPC accuracy"));
  EXPECT_TRUE(contains(text, "(the table shows MRPC f1, QQP acc_and_f1, STS-B corr)"));
  EXPECT_TRUE(contains(text, "Avg: plain mean of the 9 numbers"));
  // the terminal table is aligned: every line of the first block has the same "CoLA" column end
  const size_t header = text.find("model");
  ASSERT_NE(header, std::string::npos);
  const std::string header_line = text.substr(header, text.find('\n', header) - header);
  const size_t cola_end = header_line.find("CoLA") + 4;
  size_t pos = text.find('\n', header) + 1;
  for (int line = 0; line < 4; ++line) {  // the dashes, then BERT_128's paper / ours / diff lines
    const std::string l = text.substr(pos, text.find('\n', pos) - pos);
    ASSERT_GT(l.size(), cola_end) << l;
    EXPECT_NE(l[cola_end - 1], ' ') << l;
    EXPECT_EQ(l[cola_end], ' ') << l;
    pos = text.find('\n', pos) + 1;
  }
}

TEST_F(PaperReportTest, FailedRunningAndPartialRows) {
  const std::string h5 = write_results(
      file("smyrf.h5"), "paper_glue_smyrf_2x32",
      {{"cola", "cola", {}, "failed", "CUDA out of memory\n  at attention.cpp:12"},
       {"sst2", "sst2", {{"accuracy", 0.9323}}},
       {"rte_a", "rte", {{"accuracy", 0.70}}},
       {"rte_b", "rte", {}, "failed", "diverged"},
       {"qnli", "qnli", {}, "running"},
       {"mrpc", "mrpc", {{"accuracy", 0.8}}}});  // complete, but without the f1 the table shows
  const PaperTargets targets = load_paper_targets(kShippedTargets);
  const PaperComparison c = compare_with_paper(paper_table(targets, "glue"), {h5});
  EXPECT_EQ(cell_of(c, "SMYRF-BERT 2x32", "CoLA").state, PaperCellState::kFailed);
  EXPECT_EQ(cell_of(c, "SMYRF-BERT 2x32", "QNLI").state, PaperCellState::kRunning);
  EXPECT_EQ(cell_of(c, "SMYRF-BERT 2x32", "MRPC").state, PaperCellState::kNoMetric);
  EXPECT_EQ(cell_of(c, "SMYRF-BERT 2x32", "STS-B").state, PaperCellState::kNotRun);
  const PaperCell& rte = cell_of(c, "SMYRF-BERT 2x32", "RTE");  // one complete, one failed: the complete one
  EXPECT_EQ(rte.state, PaperCellState::kValue);
  EXPECT_EQ(rte.n, 1);
  EXPECT_EQ(rte.failed, 1);
  EXPECT_NEAR(*rte.diff(), 70 - 68.59, 1e-9);
  EXPECT_FALSE(cell_of(c, "SMYRF-BERT 2x32", "CoLA").diff().has_value());
  const auto& avg = *row_named(c, "SMYRF-BERT 2x32").average;
  EXPECT_EQ(avg.have, 2);
  EXPECT_EQ(avg.cell.state, PaperCellState::kNotRun);
  ASSERT_EQ(c.failures.size(), 2u);
  EXPECT_EQ(c.failures[0].column, "CoLA");
  EXPECT_EQ(c.failures[0].error, "CUDA out of memory");

  const std::string text = format_paper_comparison(c, targets, false);
  EXPECT_TRUE(contains(text, "failed"));
  EXPECT_TRUE(contains(text, "running"));
  EXPECT_TRUE(contains(text, "no metric"));
  EXPECT_TRUE(contains(text, "not run (2/9)"));
  EXPECT_TRUE(contains(text, "93.23"));
  EXPECT_TRUE(contains(text, "+1.41"));
  EXPECT_TRUE(contains(text, "SMYRF-BERT 2x32 / CoLA: run cola in " + h5 + ": CUDA out of memory"));
  EXPECT_TRUE(contains(text, "SMYRF-BERT 2x32 / RTE: run rte_b in " + h5 + ": diverged"));
  EXPECT_TRUE(contains(text, "MRPC accuracy"));  // the variant has a value where the table has none
}

TEST_F(PaperReportTest, SeveralFilesDuplicatesAndFilesThatMatchNothing) {
  const std::string a = write_results(file("seed1.h5"), "paper_glue_bert64", {{"cola", "cola", {{"mcc", 0.50}}}});
  const std::string b = write_results(file("seed2.h5"), "paper_glue_bert64", {{"cola", "cola", {{"mcc", 0.60}}}});
  const std::string other = write_results(file("fidelity.h5"), "fidelity_small", {{"x", "", {{"rel_error", 0.1}}}});
  // a merged copy of seed1.h5's run: the same run, counted once
  const std::string merged = file("merged.h5");
  {
    auto store = ResultsStore::open_or_create(merged, {{"version", 1}, {"name", "paper_glue_bert64"}}, fake_provenance());
    store.import_runs(ResultsStore::open_existing(a).read_runs());
  }
  const PaperTargets targets = load_paper_targets(kShippedTargets);
  const PaperComparison c = compare_with_paper(paper_table(targets, "glue"), {a, b, other, merged, a});
  ASSERT_EQ(c.files.size(), 4u);  // a given twice is read once
  const PaperCell& cola = cell_of(c, "BERT_64", "CoLA");
  EXPECT_EQ(cola.n, 2);
  EXPECT_NEAR(cola.ours, 55.0, 1e-9);
  EXPECT_FALSE(c.files[2].matched);
  const std::string text = format_paper_comparison(c, targets, false);
  EXPECT_TRUE(contains(text, "55.00 (n=2)"));
  EXPECT_TRUE(contains(text, "-3.80"));
  EXPECT_TRUE(contains(text, "results read (4 files):"));
  EXPECT_TRUE(contains(text, "results files that fit no row: " + other + " (config 'fidelity_small')"));
  EXPECT_TRUE(contains(text, "BERT_128 (config paper_glue_bert128)"));
  EXPECT_FALSE(contains(text, "BERT_64 (config"));
  EXPECT_FALSE(contains(text, "our other metric variants"));  // no variant has anything to show
}

TEST_F(PaperReportTest, ImdbRowMetricOverride) {
  const std::string h5 = write_results(file("imdb.h5"), "paper_imdb_smyrf_roberta",
                                       {{"train", "imdb", {{"accuracy", 0.9372}, {"accuracy_with_dense", 0.9500}}}});
  const PaperTargets targets = load_paper_targets(kShippedTargets);
  const PaperComparison c = compare_with_paper(paper_table(targets, "imdb"), {h5});
  EXPECT_NEAR(cell_of(c, "SMYRF-RoBERTa", "Accuracy").ours, 93.72, 1e-9);
  EXPECT_NEAR(*cell_of(c, "SMYRF-RoBERTa", "Accuracy").diff(), 0.0, 1e-9);
  EXPECT_NEAR(cell_of(c, "SMYRF-RoBERTa, dense inference", "Accuracy").ours, 95.00, 1e-9);
  EXPECT_EQ(cell_of(c, "RoBERTa", "Accuracy").state, PaperCellState::kNotRun);
  EXPECT_FALSE(row_named(c, "RoBERTa").average.has_value());
  EXPECT_TRUE(c.ignored.empty());
  const std::string text = format_paper_comparison(c, targets, false);
  EXPECT_TRUE(contains(text, "SMYRF-RoBERTa, dense inference [accuracy_with_dense]"));
  EXPECT_TRUE(contains(text, "+0.00"));
  EXPECT_TRUE(contains(text, "+0.38"));
  EXPECT_TRUE(contains(text, "50%"));
  EXPECT_FALSE(contains(text, "not run ("));  // no average column in this table
}

TEST_F(PaperReportTest, Markdown) {
  const std::string h5 = write_results(file("bert128.h5"), "paper_glue_bert128", full_glue_runs());
  const std::string md = format_paper_report(kShippedTargets, "glue", {h5}, true);
  EXPECT_TRUE(contains(md, "### GLUE dev, BERT-base, sequence length 128"));
  EXPECT_TRUE(contains(md, "| model | memory |  | CoLA | MNLI-m | MNLI-mm | MRPC | QNLI | QQP | RTE | SST-2 | STS-B | Avg |"));
  EXPECT_TRUE(contains(md, "| :--- | ---: | :--- | ---: |"));
  EXPECT_TRUE(contains(md, "| BERT_128 | 100% | paper | 57.83 |"));
  EXPECT_TRUE(contains(md, "|  |  | ours | 58.10 (n=3) |"));
  EXPECT_TRUE(contains(md, "|  |  | diff | +0.27 |"));
  EXPECT_TRUE(contains(md, "| BERT_32 | 6.25% | paper | 56.40 |"));
  EXPECT_TRUE(contains(md, "- `" + h5 + "`: config paper_glue_bert128"));
  EXPECT_TRUE(contains(md, "**notes:**"));
  EXPECT_TRUE(contains(md, "| model | MRPC accuracy | MRPC acc_and_f1 | QQP f1 | QQP accuracy | STS-B pearson | STS-B spearman |"));
}

}  // namespace
}  // namespace smyrf

namespace smyrf {
namespace {

// A config that inherits its name through `extends` (as a user's copy of a paper row does) still
// matches its row: the name comes from the runs' resolved config.
TEST_F(PaperReportTest, ConfigNameInheritedThroughExtendsMatchesItsRow) {
  const std::string path = file("extends.h5");
  {
    auto store = ResultsStore::open_or_create(path, json{{"version", 1}, {"extends", "glue_smyrf_2x32.json"}},
                                              fake_provenance());
    RunInfo info;
    info.run_id = "task=rte";
    info.method = "smyrf";
    info.resolved_config = {{"version", 1}, {"name", "paper_glue_smyrf_2x32"}, {"pipeline", "glue"},
                            {"data", {{"task", "rte"}}}};
    info.sweep_point = {{"data.task", "rte"}};
    store.mark_running(info);
    RunResult result;
    result.metrics["accuracy"] = {0.7, "fraction", true};
    store.complete(info.run_id, result);
  }
  const auto header = ResultsStore::open_existing(path).header();
  const auto runs = ResultsStore::open_existing(path).read_runs(false);
  EXPECT_EQ(experiment_field(header, runs, "name"), "paper_glue_smyrf_2x32");
  EXPECT_EQ(experiment_field(header, runs, "pipeline"), "glue");
  EXPECT_EQ(experiment_field(header, runs, "seed"), "");
  const std::string report = format_paper_report(kShippedTargets, "glue", {path}, false);
  EXPECT_TRUE(contains(report, "70.00")) << report;
  EXPECT_TRUE(contains(format_report(path, false), "experiment paper_glue_smyrf_2x32, pipeline glue"));
}

}  // namespace
}  // namespace smyrf
