// See tensor_compare.h.
#include "core/util/tensor_compare.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

namespace smyrf {

std::string TensorComparison::message() const {
  return fmt::format("{}: max |diff| {:.3e} at [{}] (actual {:.9g}, expected {:.9g}), {:.4f}% of elements "
                     "outside atol {:.1e} + rtol {:.1e}*|expected|",
                     ok ? "ok" : "MISMATCH", max_abs_diff, fmt::join(worst_index, ", "), worst_actual,
                     worst_expected, 100.0 * fraction_failing, atol, rtol);
}

TensorComparison compare_tensors(const at::Tensor& actual, const at::Tensor& expected, double atol, double rtol) {
  at::NoGradGuard no_grad;
  TensorComparison c;
  c.atol = atol;
  c.rtol = rtol;
  TORCH_CHECK(actual.sizes() == expected.sizes(), "compare_tensors: shapes differ: ", actual.sizes(), " vs ",
              expected.sizes());
  const at::Tensor a = actual.detach().to(at::kDouble).cpu();
  const at::Tensor e = expected.detach().to(at::kDouble).cpu();
  // NaN must count as the worst possible element
  const at::Tensor diff = (a - e).abs().nan_to_num(std::numeric_limits<double>::infinity());
  const at::Tensor failing = diff > (atol + rtol * e.abs());
  c.fraction_failing = a.numel() ? failing.to(at::kDouble).mean().item<double>() : 0.0;
  c.ok = c.fraction_failing == 0.0;
  if (a.numel() == 0) return c;
  const int64_t flat = diff.reshape({-1}).argmax().item<int64_t>();
  c.max_abs_diff = diff.reshape({-1})[flat].item<double>();
  c.worst_actual = a.reshape({-1})[flat].item<double>();
  c.worst_expected = e.reshape({-1})[flat].item<double>();
  int64_t rem = flat;
  c.worst_index.assign(a.dim(), 0);
  for (int64_t d = a.dim() - 1; d >= 0; --d) {
    c.worst_index[d] = rem % a.size(d);
    rem /= a.size(d);
  }
  return c;
}

FidelityMetrics fidelity_metrics(const at::Tensor& approx, const at::Tensor& exact) {
  at::NoGradGuard no_grad;
  const at::Tensor a = approx.detach().to(at::kDouble);
  const at::Tensor e = exact.detach().to(at::kDouble);
  FidelityMetrics m;
  const double exact_norm = e.norm().item<double>();
  m.rel_fro_error = (a - e).norm().item<double>() / (exact_norm > 0 ? exact_norm : 1.0);
  m.max_abs_error = (a - e).abs().max().item<double>();
  const at::Tensor a_norm = a.norm(2, -1), e_norm = e.norm(2, -1);
  const at::Tensor valid = (a_norm > 0).logical_and(e_norm > 0);
  const at::Tensor cos = (a * e).sum(-1) / (a_norm * e_norm).clamp_min(1e-300);
  const int64_t n_valid = valid.sum().item<int64_t>();
  m.mean_row_cosine = n_valid ? cos.masked_select(valid).mean().item<double>() : 0.0;
  return m;
}

}  // namespace smyrf
