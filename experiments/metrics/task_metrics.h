// Evaluation metrics of the GLUE and IMDB pipelines, as scikit-learn and scipy define them
// (checked against them by tests/python/test_task_metrics.py through `smyrf score`).
//   accuracy            fraction of predictions equal to the labels
//   f1                  binary F1 of class 1; 0 when there are no true and no predicted positives
//                       (sklearn's zero_division=0 value)
//   matthews_corrcoef   multi-class MCC (sklearn's formula); 0 when the denominator is 0
//                       (constant predictions or labels)
//   pearson, spearman   correlation; Spearman ranks ties by their average rank; NaN when either
//                       side is constant (scipy returns NaN there too)
// Per task (glue_task_metrics): cola {mcc}; sst2, qnli, rte, wnli, mnli, imdb {accuracy};
// mrpc, qqp {f1, accuracy, acc_and_f1 = their mean}; stsb {pearson, spearman, corr = their mean}.
// Torch-free. Tested by tests/light/test_task_metrics.cpp (hand-computed cases) and pytest.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace smyrf {

// Sizes must match and be non-zero (ConfigError otherwise).
double accuracy(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
double binary_f1(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
double matthews_corrcoef(const std::vector<int64_t>& predictions, const std::vector<int64_t>& labels);
double pearson(const std::vector<double>& x, const std::vector<double>& y);
double spearman(const std::vector<double>& x, const std::vector<double>& y);

// Every metric of `task` ("cola", ..., "wnli", "imdb"; MNLI's two dev sets are scored separately with
// task "mnli"). predictions/labels: class ids as doubles (integral) or regression values for stsb.
// Unknown task: ConfigError listing the tasks.
std::map<std::string, double> task_metrics(const std::string& task, const std::vector<double>& predictions,
                                           const std::vector<double>& labels);
// The metric names task_metrics returns for `task`, in that order.
std::vector<std::string> task_metric_names(const std::string& task);

}  // namespace smyrf
