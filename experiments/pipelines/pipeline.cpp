// Pipeline table and the worker/runner result transport; see pipeline.h.
#include "experiments/pipelines/pipeline.h"

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

namespace {

const std::vector<const Pipeline*>& pipelines() {
  static const std::vector<const Pipeline*> kPipelines = {&attention_fidelity_pipeline(), &speed_pipeline(),
                                                             &pretrained_dropin_pipeline(), &capture_pipeline(),
                                                             &glue_pipeline(), &imdb_pipeline(),
                                                             &celeba_biggan_pipeline(), &biggan_pretrained_pipeline()};
  return kPipelines;
}

double number_or_nan(const nlohmann::json& j) {
  return j.is_number() ? j.get<double>() : std::numeric_limits<double>::quiet_NaN();
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

nlohmann::json run_result_to_json(const RunResult& r) {
  nlohmann::json j = {{"metrics", nlohmann::json::object()}, {"curves", nlohmann::json::object()},
                      {"tensors", nlohmann::json::object()}, {"notes", nlohmann::json::object()}};
  for (const auto& [name, text] : r.notes) j["notes"][name] = text;
  for (const auto& [name, m] : r.metrics)
    j["metrics"][name] = {{"value", std::isfinite(m.value) ? nlohmann::json(m.value) : nlohmann::json()},
                          {"unit", m.unit},
                          {"higher_is_better", m.higher_is_better}};
  for (const auto& [name, c] : r.curves) j["curves"][name] = c;
  for (const auto& [name, t] : r.tensors)
    j["tensors"][name] = {{"data", t.data}, {"dims", t.dims}, {"store_float32", t.store_float32}};
  return j;
}

RunResult run_result_from_json(const nlohmann::json& j) {
  RunResult r;
  for (const auto& [name, m] : j.at("metrics").items())
    r.metrics[name] = {number_or_nan(m.at("value")), m.at("unit").get<std::string>(), m.at("higher_is_better").get<bool>()};
  for (const auto& [name, c] : j.at("curves").items()) {
    for (const auto& v : c) r.curves[name].push_back(number_or_nan(v));
  }
  const nlohmann::json notes = j.value("notes", nlohmann::json::object());
  for (const auto& [name, text] : notes.items()) r.notes[name] = text.get<std::string>();
  for (const auto& [name, t] : j.at("tensors").items()) {
    NamedArray a;
    for (const auto& v : t.at("data")) a.data.push_back(number_or_nan(v));
    a.dims = t.at("dims").get<std::vector<int64_t>>();
    a.store_float32 = t.at("store_float32").get<bool>();
    r.tensors[name] = std::move(a);
  }
  return r;
}

int apply_thread_setting(const nlohmann::json& config) {
  int threads = config.value("threads", 0);
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
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
