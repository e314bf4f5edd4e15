// A pipeline turns one resolved run config into metrics (experiments/results_store.h RunResult).
// The runner calls validate() on every run of a sweep before starting any, then run() for each
// run in its own worker process. Pipelines live in experiments/pipelines/<name>.cpp and are listed
// in pipeline.cpp's table. Tested through tests/test_experiments.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"
#include "experiments/results_store.h"

namespace smyrf {

struct RunContext {
  std::string source;   // config file, for messages
  std::string run_id;
  std::string output_path;  // the results file the runner writes ("" when unknown)
  // Progress within a long run (e.g. optimizer steps); may be empty. The runner shows it in its bar.
  std::function<void(int64_t done, int64_t total, const std::string& note)> progress;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual std::string name() const = 0;
  // Checks every section this pipeline reads (unknown keys, types, impossible sizes) and throws
  // ConfigError naming file, JSON path and the fix. Cheap: builds no tensors.
  virtual void validate(const nlohmann::json& config, const RunContext& context) const = 0;
  virtual RunResult run(const nlohmann::json& config, const RunContext& context) const = 0;
};

std::vector<std::string> pipeline_names();
// Unknown name: ConfigError listing the valid ones and the closest match.
const Pipeline& find_pipeline(const std::string& name, const std::string& source);

// Worker -> runner transport (JSON file); NaN travels as null.
nlohmann::json run_result_to_json(const RunResult& result);
RunResult run_result_from_json(const nlohmann::json& j);

// ConfigError when `config` has a non-empty section among `keys` that pipeline `pipeline` does not read.
void reject_sections(const nlohmann::json& config, const std::string& source, const std::string& pipeline,
                     std::initializer_list<const char*> keys);

// Sets LibTorch's intra-op thread count from the config's `threads` (0 = all cores): LibTorch
// defaults to one thread on these machines.
int apply_thread_setting(const nlohmann::json& config);

// Q/K/V (and padding masks, causal flag, scale) of one group of a captured-QKV HDF5 file
// (results/README.md), in `dtype`. Missing file or dataset: IoError; unknown group: ConfigError
// listing the groups. `source` names the config (or command) in messages.
AttentionInputs load_captured_qkv(const std::string& path, const std::string& group, at::ScalarType dtype,
                                  const std::string& source);

// Peak memory of a run's measured part, from construction (which resets the peaks) to close():
// metrics peak_rss_bytes, peak_rss_delta_bytes (growth over the RSS at the start; NaN where the
// kernel cannot reset the peak) and, on CUDA, cuda_peak_allocated_bytes (the allocator's peak).
class PeakMemoryWindow {
 public:
  explicit PeakMemoryWindow(const c10::Device& device);
  void close();                               // the end of the window (add_metrics closes if needed)
  void add_metrics(RunResult& result);

 private:
  c10::Device device_;
  bool peak_reset_ = false, closed_ = false;
  int64_t rss_before_bytes_ = 0, peak_rss_bytes_ = 0;
  std::optional<int64_t> cuda_peak_bytes_;
};

// Logs what a memory_budget chose (core/attention/memory_budget.h): metrics memory_budget and
// budget_<knob> (e.g. budget_q_cluster_size). Nothing when the run has no budget.
struct BudgetChoice;
void add_budget_metrics(const BudgetChoice& choice, RunResult& result);

}  // namespace smyrf
