// Tests for experiments/metrics/task_metrics.h on hand-computed cases: perfect and all-wrong predictions,
// F1 without positives, MCC for constant predictions and for 3 classes, Pearson/Spearman with ties,
// constant and non-finite input, and the ConfigErrors (sizes, class ids, unknown task).
// scikit-learn/scipy on random inputs: tests/python/test_task_metrics.py.
// Run: smyrf_tests_light --gtest_filter='TaskMetrics*'
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "experiments/metrics/task_metrics.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

using test::contains;
using test::error_of;
using Ids = std::vector<int64_t>;
using Values = std::vector<double>;

constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(TaskMetrics, PerfectPredictions) {
  const Ids y = {0, 1, 1, 0, 1};
  EXPECT_EQ(accuracy(y, y), 1.0);
  EXPECT_EQ(binary_f1(y, y), 1.0);
  EXPECT_EQ(matthews_corrcoef(y, y), 1.0);
  const Values v = {0.5, 3.25, 1, 4.75};
  EXPECT_DOUBLE_EQ(pearson(v, v), 1.0);
  EXPECT_DOUBLE_EQ(spearman(v, v), 1.0);
}

TEST(TaskMetrics, AllWrong) {
  const Ids y = {0, 1, 1, 0, 1, 0};
  const Ids p = {1, 0, 0, 1, 0, 1};
  EXPECT_EQ(accuracy(p, y), 0.0);
  EXPECT_EQ(binary_f1(p, y), 0.0);  // tp = 0
  EXPECT_EQ(matthews_corrcoef(p, y), -1.0);
  EXPECT_DOUBLE_EQ(pearson({1, 2, 3, 4}, {8, 6, 4, 2}), -1.0);
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {10, 9, 1, 0}), -1.0);
}

TEST(TaskMetrics, HandComputedBinary) {
  // labels 1 1 1 0 0 0 0 1, predictions 1 0 1 1 0 0 0 0: tp 2, fn 2, fp 1, tn 3
  const Ids y = {1, 1, 1, 0, 0, 0, 0, 1};
  const Ids p = {1, 0, 1, 1, 0, 0, 0, 0};
  EXPECT_DOUBLE_EQ(accuracy(p, y), 5.0 / 8);
  EXPECT_DOUBLE_EQ(binary_f1(p, y), 4.0 / 7);  // 2tp / (2tp + fp + fn)
  // (tp tn - fp fn) / sqrt((tp+fp)(tp+fn)(tn+fp)(tn+fn)) = (6 - 2) / sqrt(3 * 4 * 4 * 5)
  EXPECT_NEAR(matthews_corrcoef(p, y), 4.0 / std::sqrt(240.0), 1e-15);
}

TEST(TaskMetrics, F1WithoutPositivesIsZero) {
  EXPECT_EQ(binary_f1({0, 0, 0}, {0, 0, 0}), 0.0);  // sklearn zero_division=0
  EXPECT_EQ(binary_f1({1, 1}, {0, 0}), 0.0);        // only false positives
  EXPECT_EQ(binary_f1({0, 0}, {1, 0}), 0.0);        // only a false negative
  EXPECT_EQ(binary_f1({1, 0}, {1, 0}), 1.0);
}

TEST(TaskMetrics, ConstantPredictionsGiveMccZero) {
  EXPECT_EQ(matthews_corrcoef({1, 1, 1, 1}, {0, 1, 0, 1}), 0.0);
  EXPECT_EQ(matthews_corrcoef({0, 1, 0, 1}, {2, 2, 2, 2}), 0.0);  // constant labels
  EXPECT_EQ(matthews_corrcoef({0}, {0}), 0.0);
}

TEST(TaskMetrics, ThreeClassMcc) {
  // labels 0 0 1 1 2 2, predictions 0 1 1 2 2 0: correct 3, n 6, t = (2, 2, 2), p = (2, 2, 2)
  // cov_ytyp = 3*6 - 12 = 6, cov_ypyp = cov_ytyt = 36 - 12 = 24 -> 6 / 24 = 0.25
  EXPECT_DOUBLE_EQ(matthews_corrcoef({0, 1, 1, 2, 2, 0}, {0, 0, 1, 1, 2, 2}), 0.25);
  // labels 0 0 0 1 2, predictions 0 0 1 1 1: correct 3, t = (3, 1, 1), p = (2, 3, 0)
  // cov_ytyp = 15 - (6 + 3 + 0) = 6, cov_ypyp = 25 - 13 = 12, cov_ytyt = 25 - 11 = 14
  EXPECT_NEAR(matthews_corrcoef({0, 0, 1, 1, 1}, {0, 0, 0, 1, 2}), 6.0 / std::sqrt(12.0 * 14.0), 1e-15);
  // class ids need not be contiguous: 5 and 9 act as two classes
  EXPECT_EQ(matthews_corrcoef({5, 9, 5}, {5, 9, 5}), 1.0);
}

TEST(TaskMetrics, PearsonHandComputed) {
  // x = 1 2 3 4, y = 2 1 4 3: dx = -1.5 -.5 .5 1.5, dy = -.5 -1.5 1.5 .5 -> 3 / 5 = 0.6
  EXPECT_NEAR(pearson({1, 2, 3, 4}, {2, 1, 4, 3}), 0.6, 1e-15);
  EXPECT_DOUBLE_EQ(pearson({0, 1}, {5, 7}), 1.0);
  // large offsets: the two-pass form keeps full precision where the one-pass sum of squares would not
  EXPECT_NEAR(pearson({1e9 + 1, 1e9 + 2, 1e9 + 3, 1e9 + 4}, {2, 1, 4, 3}), 0.6, 1e-12);
  // huge magnitudes: squares would overflow without scaling
  EXPECT_NEAR(pearson({-5e200, 5e200, 3e200, -3e200}, {-1, 1, 3, -3}), pearson({-5, 5, 3, -3}, {-1, 1, 3, -3}), 1e-15);
}

TEST(TaskMetrics, SpearmanAverageRanksForTies) {
  // x = 1 2 2 3 -> ranks 1 2.5 2.5 4; y = 1 2 3 4 -> ranks 1 2 3 4
  // dx = -1.5 0 0 1.5, dy = -1.5 -.5 .5 1.5: sxy = 4.5, sxx = 4.5, syy = 5 -> sqrt(0.9)
  EXPECT_NEAR(spearman({1, 2, 2, 3}, {1, 2, 3, 4}), std::sqrt(0.9), 1e-15);
  // ties on both sides: x ranks 1.5 1.5 3 4, y ranks 1 3 3 3 -> dx -1 -1 .5 1.5, dy -1.5 .5 .5 .5
  // sxy = 1.5 - .5 + .25 + .75 = 2, sxx = 4.5, syy = 3 -> 2 / sqrt(13.5)
  EXPECT_NEAR(spearman({7, 7, 8, 9}, {0, 5, 5, 5}), 2.0 / std::sqrt(13.5), 1e-15);
  // monotone but not linear: spearman 1, pearson below 1
  EXPECT_DOUBLE_EQ(spearman({1, 2, 3, 4}, {1, 10, 100, 1000}), 1.0);
  EXPECT_LT(pearson({1, 2, 3, 4}, {1, 10, 100, 1000}), 0.9);
  EXPECT_DOUBLE_EQ(spearman({-kInf, 0, kInf}, {1, 2, 3}), 1.0);  // infinities rank like scipy's rankdata
}

TEST(TaskMetrics, CorrelationNaNCases) {
  EXPECT_TRUE(std::isnan(pearson({2, 2, 2}, {1, 2, 3})));  // constant predictions
  EXPECT_TRUE(std::isnan(pearson({1, 2, 3}, {4, 4, 4})));  // constant labels
  EXPECT_TRUE(std::isnan(spearman({2, 2, 2}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(pearson({1}, {3})));  // scipy refuses n < 2; NaN here
  EXPECT_TRUE(std::isnan(spearman({1}, {3})));
  const double nan = std::nan("");
  EXPECT_TRUE(std::isnan(pearson({1, nan, 3}, {1, 2, 3})));
  EXPECT_TRUE(std::isnan(spearman({1, 2, 3}, {1, nan, 3})));
  EXPECT_TRUE(std::isnan(pearson({1, kInf, 3}, {1, 2, 3})));
}

TEST(TaskMetrics, PerTaskMetrics) {
  EXPECT_EQ(task_metric_names("cola"), (std::vector<std::string>{"mcc"}));
  EXPECT_EQ(task_metric_names("mrpc"), (std::vector<std::string>{"f1", "accuracy", "acc_and_f1"}));
  EXPECT_EQ(task_metric_names("stsb"), (std::vector<std::string>{"pearson", "spearman", "corr"}));
  for (const char* task : {"sst2", "mnli", "qnli", "rte", "wnli", "imdb"}) {
    EXPECT_EQ(task_metric_names(task), (std::vector<std::string>{"accuracy"})) << task;
  }
  const Values y = {1, 1, 1, 0, 0, 0, 0, 1}, p = {1, 0, 1, 1, 0, 0, 0, 0};
  const auto qqp = task_metrics("qqp", p, y);
  ASSERT_EQ(qqp.size(), 3u);
  EXPECT_DOUBLE_EQ(qqp.at("accuracy"), 5.0 / 8);
  EXPECT_DOUBLE_EQ(qqp.at("f1"), 4.0 / 7);
  EXPECT_DOUBLE_EQ(qqp.at("acc_and_f1"), (5.0 / 8 + 4.0 / 7) / 2);
  const auto cola = task_metrics("cola", p, y);
  ASSERT_EQ(cola.size(), 1u);
  EXPECT_NEAR(cola.at("mcc"), 4.0 / std::sqrt(240.0), 1e-15);
  EXPECT_DOUBLE_EQ(task_metrics("mnli", {0, 1, 2, 2}, {0, 1, 2, 1}).at("accuracy"), 0.75);
  const auto stsb = task_metrics("stsb", {1, 2, 2, 3}, {1, 2, 3, 4});
  EXPECT_NEAR(stsb.at("spearman"), std::sqrt(0.9), 1e-15);
  EXPECT_NEAR(stsb.at("corr"), (stsb.at("pearson") + stsb.at("spearman")) / 2, 1e-15);
  const auto flat = task_metrics("stsb", {2.5, 2.5, 2.5}, {1, 2, 3});
  EXPECT_TRUE(std::isnan(flat.at("pearson")) && std::isnan(flat.at("spearman")) && std::isnan(flat.at("corr")));
  const auto none = task_metrics("mrpc", {0, 0}, {0, 0});  // no positives anywhere
  EXPECT_EQ(none.at("f1"), 0.0);
  EXPECT_EQ(none.at("accuracy"), 1.0);
  EXPECT_EQ(none.at("acc_and_f1"), 0.5);
}

TEST(TaskMetrics, Errors) {
  EXPECT_TRUE(contains(error_of<ConfigError>([] { accuracy({}, {}); }), "non-empty"));
  EXPECT_TRUE(contains(error_of<ConfigError>([] { binary_f1({0, 1}, {0}); }), "2 predictions but 1 labels"));
  EXPECT_THROW(matthews_corrcoef({0}, {0, 1}), ConfigError);
  EXPECT_THROW(pearson({}, {}), ConfigError);
  EXPECT_THROW(spearman({1, 2}, {1, 2, 3}), ConfigError);
  EXPECT_THROW(task_metrics("stsb", {1, 2}, {1}), ConfigError);
  EXPECT_THROW(task_metrics("sst2", {}, {}), ConfigError);

  const std::string fractional = error_of<ConfigError>([] { task_metrics("sst2", {0, 0.5}, {0, 1}); });
  EXPECT_TRUE(contains(fractional, "predictions[1] is 0.5"));
  EXPECT_TRUE(contains(fractional, "classification"));
  EXPECT_TRUE(contains(error_of<ConfigError>([] { task_metrics("cola", {0, 1}, {1, 2.25}); }), "labels[1] is 2.25"));
  EXPECT_THROW(task_metrics("imdb", {0, std::nan("")}, {0, 1}), ConfigError);
  EXPECT_THROW(task_metrics("imdb", {0, kInf}, {0, 1}), ConfigError);
  EXPECT_THROW(task_metrics("mnli", {0, 1e300}, {0, 1}), ConfigError);
  // any integer is a class id, as in scikit-learn: -1/1 labels, ids beyond the task's classes
  EXPECT_DOUBLE_EQ(task_metrics("rte", {-1, 1, 1}, {-1, 1, -1}).at("accuracy"), 2.0 / 3);
  EXPECT_EQ(task_metrics("cola", {0, 1, 2}, {0, 1, 2}).at("mcc"), 1.0);
  EXPECT_NO_THROW(task_metrics("stsb", {0.5, 1.25}, {3.7, 4.1}));  // regression: any number

  const std::string unknown = error_of<ConfigError>([] { task_metrics("sst-2", {0}, {0}); });
  EXPECT_TRUE(contains(unknown, "unknown task 'sst-2'"));
  EXPECT_TRUE(contains(unknown, "did you mean 'sst2'"));
  EXPECT_TRUE(contains(unknown, "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli, imdb"));
  EXPECT_THROW(task_metric_names("glue"), ConfigError);
}

}  // namespace
}  // namespace smyrf
