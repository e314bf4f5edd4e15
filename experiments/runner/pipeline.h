// A pipeline turns one resolved run config into metrics (experiments/runner/results_store.h RunResult)
// in two steps: plan() parses and checks every section it reads, once, into a typed plan (enums for
// choices, sizes checked), and run() takes that plan. Attention objects stay JSON inside the plan:
// a memory_budget is resolved at the data's shape, which some pipelines know only when they run. The runner
// plans every run of a sweep before starting any (so a bad run fails the sweep up front), then each
// worker process plans its one run and runs it. Pipelines live in experiments/pipelines/<name>.cpp
// and are listed in pipeline.cpp's table; docs/architecture.md shows the flow. Tested through
// tests/test_experiments.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"
#include "core/util/json_options.h"
#include "experiments/runner/results_store.h"

namespace smyrf {

struct RunContext {
  std::string source;   // config file, for messages
  std::string run_id;
  std::string output_path;  // the results file the runner writes ("" when unknown)
  // Progress within a long run (e.g. optimizer steps); may be empty. The runner shows it in its bar.
  std::function<void(int64_t done, int64_t total, const std::string& note)> progress;
};

// The typed, checked form of one run's config; each pipeline derives its own.
struct RunPlan {
  virtual ~RunPlan() = default;
};

class Pipeline {
 public:
  virtual ~Pipeline() = default;
  virtual std::string name() const = 0;
  // Parses every section this pipeline reads (unknown keys, types, impossible sizes, methods that
  // cannot serve the shape) and throws ConfigError naming file, JSON path and the fix. Cheap: builds
  // no tensors and reads no data beyond checking that files exist.
  virtual std::unique_ptr<const RunPlan> plan(const nlohmann::json& config, const RunContext& context) const = 0;
  virtual RunResult run(const RunPlan& plan, const RunContext& context) const = 0;
  // True for pipelines that train through experiments/engines/training_loop.h: asked to stop
  // (experiments/runner/interrupt.h), their worker checkpoints and exits; any other worker is
  // simply ended by the signal and its run redone.
  virtual bool checkpoints() const { return false; }
};

// The base of every pipeline: plan() returns a Plan (deriving from RunPlan) and run() receives it.
template <class Plan>
class TypedPipeline : public Pipeline {
 public:
  std::unique_ptr<const RunPlan> plan(const nlohmann::json& config, const RunContext& context) const final {
    return std::make_unique<const Plan>(make_plan(config, context));
  }
  RunResult run(const RunPlan& plan, const RunContext& context) const final {
    return run_plan(dynamic_cast<const Plan&>(plan), context);
  }

 protected:
  virtual Plan make_plan(const nlohmann::json& config, const RunContext& context) const = 0;
  virtual RunResult run_plan(const Plan& plan, const RunContext& context) const = 0;
};

std::vector<std::string> pipeline_names();
// Unknown name: ConfigError listing the valid ones and the closest match.
const Pipeline& find_pipeline(const std::string& name, const std::string& source);


// ConfigError when `config` has a non-empty section among `keys` that pipeline `pipeline` does not read.
void reject_sections(const nlohmann::json& config, const std::string& source, const std::string& pipeline,
                     std::initializer_list<const char*> keys);
// ConfigError when the config's `device` is not "cpu", for pipelines that run on the CPU only.
void require_cpu_device(const nlohmann::json& config, const std::string& source, const std::string& pipeline);

// The `dtype` choices of pipelines that compute attention on given tensors: "float32", "float64".
extern const EnumNames<at::ScalarType> kFloatDtypeNames;

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
