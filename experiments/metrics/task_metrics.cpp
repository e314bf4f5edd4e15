// GLUE / IMDB evaluation metrics (see task_metrics.h): the scikit-learn and scipy definitions,
// computed in double.
//   accuracy            correct / n
//   binary_f1           2 tp / (2 tp + fp + fn), class 1 positive; 0 when the denominator is 0
//   matthews_corrcoef   confusion matrix C (K classes, n samples), t = row sums, p = column sums:
//                       (trace(C) n - t.p) / sqrt((n^2 - p.p)(n^2 - t.t)); 0 when a factor is 0
//   pearson             two-pass: deviations from the mean, scaled by their largest magnitude (as
//                       scipy does, so that squares cannot overflow), then sum(dx dy) / sqrt(sxx syy)
//                       clamped to [-1, 1]; NaN for constant or non-finite input or n < 2
//   spearman            pearson of the average ranks (ties share the mean of their positions);
//                       NaN for constant input or any NaN
// Tested by tests/light/test_task_metrics.cpp and tests/python/test_task_metrics.py.
#include "experiments/metrics/task_metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

enum class TaskKind { kClassification, kRegression };

struct TaskSpec {
  const char* name;
  TaskKind kind;
  std::vector<std::string> metrics;
};

// GLUE order, then IMDB.
const std::vector<TaskSpec>& task_specs() {
  static const std::vector<TaskSpec> kSpecs = {
      {"cola", TaskKind::kClassification, {"mcc"}},
      {"sst2", TaskKind::kClassification, {"accuracy"}},
      {"mrpc", TaskKind::kClassification, {"f1", "accuracy", "acc_and_f1"}},
      {"stsb", TaskKind::kRegression, {"pearson", "spearman", "corr"}},
      {"qqp", TaskKind::kClassification, {"f1", "accuracy", "acc_and_f1"}},
      {"mnli", TaskKind::kClassification, {"accuracy"}},
      {"qnli", TaskKind::kClassification, {"accuracy"}},
      {"rte", TaskKind::kClassification, {"accuracy"}},
      {"wnli", TaskKind::kClassification, {"accuracy"}},
      {"imdb", TaskKind::kClassification, {"accuracy"}},
  };
  return kSpecs;
}

const TaskSpec& task_spec(const std::string& task) {
  std::vector<std::string> names;
  for (const auto& spec : task_specs()) {
    if (task == spec.name) return spec;
    names.emplace_back(spec.name);
  }
  throw ConfigError(fmt::format("unknown task '{}'{}; valid tasks: {}", task, did_you_mean(task, names),
                                join(names, ", ")));
}

template <class A, class B>
void check_sizes(const std::vector<A>& predictions, const std::vector<B>& labels, const char* what) {
  if (predictions.empty() || labels.empty()) {
    throw ConfigError(fmt::format("{}: {} predictions and {} labels; both must be non-empty", what,
                                  predictions.size(), labels.size()));
  }
  if (predictions.size() != labels.size()) {
    throw ConfigError(fmt::format("{}: {} predictions but {} labels; they must pair up one to one", what,
                                  predictions.size(), labels.size()));
  }
}

// Class ids given as doubles -> int64, each checked to be an integer. Any integers are accepted, as
// scikit-learn does (F1 counts class 1 as the positive one).
std::vector<int64_t> class_ids(const std::vector<double>& values, const TaskSpec& spec, const char* side) {
  constexpr double kLimit = 9007199254740992.0;  // 2^53: every integer up to here is exact in a double
  std::vector<int64_t> ids(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = values[i];
    if (!std::isfinite(v) || v != std::floor(v) || std::fabs(v) > kLimit) {
      throw ConfigError(fmt::format("{}[{}] is {}, not a class id: task '{}' is a classification task (integer "
                                    "class ids)",
                                    side, i, v, spec.name));
    }
    ids[i] = static_cast<int64_t>(v);
  }
  return ids;
}

// Mean by a sum and one correction pass (the correction recovers most of the rounding of the sum).
double careful_mean(const std::vector<double>& x) {
  const double n = static_cast<double>(x.size());
  double mean = 0;
  for (double v : x) mean += v;
  mean /= n;
  double correction = 0;
  for (double v : x) correction += v - mean;
  return mean + correction / n;
}

std::vector<double> scaled_deviations(const std::vector<double>& x) {
  const double mean = careful_mean(x);
  std::vector<double> d(x.size());
  double largest = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    d[i] = x[i] - mean;
    largest = std::max(largest, std::fabs(d[i]));
  }
  for (double& v : d) v /= largest;
  return d;
}

bool is_constant(const std::vector<double>& x) {
  return std::all_of(x.begin(), x.end(), [&](double v) { return v == x.front(); });
}

bool any_nan(const std::vector<double>& x) {
  return std::any_of(x.begin(), x.end(), [](double v) { return std::isnan(v); });
}

// 1-based ranks; tied values share the mean of the positions they occupy.
std::vector<double> average_ranks(const std::vector<double>& x) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> ranks(x.size());
  for (size_t start = 0; start < order.size();) {
    size_t end = start + 1;
    while (end < order.size() && x[order[end]] == x[order[start]]) ++end;
    const double rank = 0.5 * static_cast<double>(start + 1 + end);  // mean of start+1 .. end
    for (size_t k = start; k < end; ++k) ranks[order[k]] = rank;
    start = end;
  }
  return ranks;
}

}  // namespace

double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "accuracy");
  size_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) correct += predictions[i] == labels[i];
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

double binary_f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "binary_f1");
  size_t tp = 0, fp = 0, fn = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const bool predicted = predictions[i] == 1, actual = labels[i] == 1;
    tp += predicted && actual;
    fp += predicted && !actual;
    fn += !predicted && actual;
  }
  const size_t denominator = 2 * tp + fp + fn;
  return denominator == 0 ? 0.0 : static_cast<double>(2 * tp) / static_cast<double>(denominator);
}

double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels) {
  check_sizes(predictions, labels, "matthews_corrcoef");
  // Only the per-class totals and the trace enter the formula, so no K x K matrix is needed.
  std::map<int64_t, std::pair<double, double>> totals;  // class -> (t = true count, p = predicted count)
  double correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    totals[labels[i]].first += 1;
    totals[predictions[i]].second += 1;
    correct += predictions[i] == labels[i];
  }
  const double n = static_cast<double>(labels.size());
  double t_dot_p = 0, p_dot_p = 0, t_dot_t = 0;
  for (const auto& [cls, tp] : totals) {
    t_dot_p += tp.first * tp.second;
    p_dot_p += tp.second * tp.second;
    t_dot_t += tp.first * tp.first;
  }
  const double cov_ytyp = correct * n - t_dot_p;
  const double cov_ypyp = n * n - p_dot_p;
  const double cov_ytyt = n * n - t_dot_t;
  if (cov_ypyp * cov_ytyt == 0) return 0.0;
  return cov_ytyp / std::sqrt(cov_ytyt * cov_ypyp);
}

double pearson(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "pearson");
  const auto not_finite = [](double v) { return !std::isfinite(v); };
  if (x.size() < 2 || std::any_of(x.begin(), x.end(), not_finite) || std::any_of(y.begin(), y.end(), not_finite) ||
      is_constant(x) || is_constant(y)) {
    return kNaN;
  }
  const std::vector<double> dx = scaled_deviations(x), dy = scaled_deviations(y);
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < dx.size(); ++i) {
    sxy += dx[i] * dy[i];
    sxx += dx[i] * dx[i];
    syy += dy[i] * dy[i];
  }
  return std::clamp(sxy / std::sqrt(sxx * syy), -1.0, 1.0);
}

double spearman(const std::vector<double>& x, const std::vector<double>& y) {
  check_sizes(x, y, "spearman");
  if (any_nan(x) || any_nan(y)) return kNaN;
  return pearson(average_ranks(x), average_ranks(y));
}

std::vector<std::string> task_metric_names(const std::string& task) { return task_spec(task).metrics; }

std::map<std::string, double> task_metrics(const std::string& task, const std::vector<double>& predictions,
                                           const std::vector<double>& labels) {
  const TaskSpec& spec = task_spec(task);
  check_sizes(predictions, labels, spec.name);
  std::map<std::string, double> out;
  if (spec.kind == TaskKind::kRegression) {
    out["pearson"] = pearson(predictions, labels);
    out["spearman"] = spearman(predictions, labels);
    out["corr"] = 0.5 * (out["pearson"] + out["spearman"]);
    return out;
  }
  const std::vector<int64_t> p = class_ids(predictions, spec, "predictions");
  const std::vector<int64_t> l = class_ids(labels, spec, "labels");
  for (const auto& name : spec.metrics) {
    if (name == "mcc") out[name] = matthews_corrcoef(p, l);
    if (name == "accuracy") out[name] = accuracy(p, l);
    if (name == "f1") out[name] = binary_f1(p, l);
  }
  if (out.count("f1") != 0) out["acc_and_f1"] = 0.5 * (out["accuracy"] + out["f1"]);
  return out;
}

}  // namespace smyrf
