// The pipeline table and the helpers pipelines share (sections, device, peak memory); see pipeline.h.
#include "experiments/runner/pipeline.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <thread>

#include "core/attention/memory_budget.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

const Pipeline& attention_fidelity_pipeline();
const Pipeline& speed_pipeline();
const Pipeline& pretrained_dropin_pipeline();
const Pipeline& capture_pipeline();
const Pipeline& glue_pipeline();
const Pipeline& imdb_pipeline();
const Pipeline& celeba_biggan_pipeline();
const Pipeline& biggan_pretrained_pipeline();
const Pipeline& lm_train_pipeline();
const Pipeline& lm_dropin_pipeline();

namespace {

const std::vector<const Pipeline*>& pipelines() {
  static const std::vector<const Pipeline*> kPipelines = {&attention_fidelity_pipeline(), &speed_pipeline(),
                                                             &pretrained_dropin_pipeline(), &capture_pipeline(),
                                                             &glue_pipeline(), &imdb_pipeline(),
                                                             &celeba_biggan_pipeline(), &biggan_pretrained_pipeline(),
                                                             &lm_train_pipeline(), &lm_dropin_pipeline()};
  return kPipelines;
}

}  // namespace

std::vector<std::string> pipeline_names() {
  std::vector<std::string> names;
  for (const Pipeline* p : pipelines()) names.push_back(p->name());
  return names;
}

const Pipeline& find_pipeline(const std::string& name, const std::string& source) {
  for (const Pipeline* p : pipelines())
    if (p->name() == name) return *p;
  throw ConfigError(fmt::format("config '{}': 'pipeline' is '{}', which is not a pipeline{}; valid: {}", source, name,
                                did_you_mean(name, pipeline_names()), join(pipeline_names(), ", ")));
}

void add_budget_metrics(const BudgetChoice& choice, RunResult& result) {
  if (choice.knob.empty()) return;
  result.metrics["memory_budget"] = {choice.budget, "fraction", false};
  result.metrics["budget_" + choice.knob] = {static_cast<double>(choice.value), "count", false};
}

void reject_sections(const nlohmann::json& config, const std::string& source, const std::string& pipeline,
                     std::initializer_list<const char*> keys) {
  for (const char* key : keys)
    if (config.contains(key) && !config.at(key).is_null() && !config.at(key).empty())
      throw ConfigError(fmt::format("config '{}': the {} pipeline has no '{}' section; remove it", source, pipeline, key));
}

const EnumNames<at::ScalarType> kFloatDtypeNames = {{"float32", at::kFloat}, {"float64", at::kDouble}};

void require_cpu_device(const nlohmann::json& config, const std::string& source, const std::string& pipeline) {
  const std::string device = config.value("device", std::string("cpu"));
  if (device != "cpu")
    throw ConfigError(fmt::format("config '{}': 'device' is '{}'; the {} pipeline runs on the CPU in this build",
                                  source, device, pipeline));
}

PeakMemoryWindow::PeakMemoryWindow(const c10::Device& device) : device_(device) {
  peak_reset_ = reset_peak_rss();
  if (device_.is_cuda()) reset_cuda_peak(device_.index());
  rss_before_bytes_ = read_process_memory().rss_bytes;
}

void PeakMemoryWindow::close() {
  if (closed_) return;
  closed_ = true;
  peak_rss_bytes_ = read_process_memory().peak_rss_bytes;
  if (device_.is_cuda()) cuda_peak_bytes_ = cuda_peak_allocated_bytes(device_.index());
}

void PeakMemoryWindow::add_metrics(RunResult& result) {
  close();
  result.metrics["peak_rss_bytes"] = {static_cast<double>(peak_rss_bytes_), "bytes", false};
  result.metrics["peak_rss_delta_bytes"] = {
      peak_reset_ ? static_cast<double>(peak_rss_bytes_ - rss_before_bytes_) : std::nan(""), "bytes", false};
  if (cuda_peak_bytes_) result.metrics["cuda_peak_allocated_bytes"] = {static_cast<double>(*cuda_peak_bytes_), "bytes", false};
}

}  // namespace smyrf
