// Comparing an output with its reference: the worst element (index, both values), the share of
// elements out of tolerance, and the fidelity metrics the pipelines log. One helper serves the
// GoogleTest suite and the experiments. Tested by tests/attention/test_dense.cpp.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

namespace smyrf {

struct TensorComparison {
  bool ok = true;
  double max_abs_diff = 0.0;
  std::vector<int64_t> worst_index;
  double worst_actual = 0.0, worst_expected = 0.0;
  double fraction_failing = 0.0;
  double atol = 0.0, rtol = 0.0;
  std::string message() const;  // one line, for test failures and logs
};

// |actual - expected| <= atol + rtol * |expected| elementwise; NaN anywhere fails.
TensorComparison compare_tensors(const at::Tensor& actual, const at::Tensor& expected, double atol, double rtol);

// Fidelity of an approximate attention output against the exact one, over the last dim as rows.
struct FidelityMetrics {
  double rel_fro_error;    // |approx - exact|_F / |exact|_F
  double max_abs_error;
  double mean_row_cosine;  // mean over rows of cos(approx_row, exact_row); rows with zero norm skipped
};
FidelityMetrics fidelity_metrics(const at::Tensor& approx, const at::Tensor& exact);

}  // namespace smyrf
