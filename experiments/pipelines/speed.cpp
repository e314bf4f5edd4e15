// speed: wall time and peak memory of one attention method at one sequence length.
//
// Inputs: q_BHND, k_BHMD, v_BHME drawn i.i.d. N(0, 1) from data.seed, with N = M (data.n_queries);
// no padding; optional causal mask. Two modes, each measured on its own:
//   forward            method->forward() under NoGradGuard
//   forward+backward   method->forward(), then out_BHNE.sum().backward() into fresh q/k/v grads
// Each mode runs eval.warmup untimed calls, resets the RSS high-water mark, then eval.repeats
// timed calls; time = median, peak memory = high-water mark minus the RSS at the reset.
// Before anything is allocated the method's analytic bytes (method->cost) are compared with the
// memory the machine has available, so a forward that cannot fit fails with a message instead of
// the worker being killed by the OOM killer; a forward+backward that cannot fit is skipped (NaN)
// and the forward is still timed. memory_budget in the attention object is resolved first
// (core/attention/memory_budget.h) and logged.
// Metrics: forward_time_s, forward_backward_time_s, tokens_per_s, forward_peak_rss_delta_bytes,
// forward_backward_peak_rss_delta_bytes, memory_fraction, score_entries, analytic_bytes, threads
// (definitions in results/README.md). Any registered method works: it is built through the registry.
// Tested by tests/test_experiments.cpp (smoke config, bad input, a run too large for memory) and
// tests/python/test_speed_plot.py (h5py and scripts/plot_speed.py).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <chrono>
#include <limits>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"
#include "experiments/runner/pipeline.h"

namespace smyrf {
namespace {

// Multipliers on the method's analytic bytes for the memory guard. The analytic model lists the
// buffers of one forward call; the allocator and LibTorch's temporaries add a little on top
// (forward). With autograd every saved buffer stays alive into backward, which allocates a
// gradient of about each: an exact method saves its [B,H,N,M] logits and probabilities and
// backward builds at least two more of that size plus temporaries, hence the large factor.
constexpr double kForwardMemoryFactor = 1.2;
constexpr double kExactBackwardMemoryFactor = 4.5;
constexpr double kApproxBackwardMemoryFactor = 2.5;
// Share of the available memory a run may plan to use: the rest is the worker's own footprint
// (LibTorch, HDF5) and whatever else the machine is doing.
constexpr double kUsableMemoryShare = 0.85;
constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;

struct SpeedData {
  int64_t batch = 1, heads = 8, n_queries = 0, head_dim = 64;
  std::optional<int64_t> value_dim;
  bool causal = false;
  at::ScalarType dtype = at::kFloat;
  int64_t seed = 0;

  int64_t resolved_value_dim() const { return value_dim.value_or(head_dim); }
  AttentionShape shape() const {
    return {batch, heads, n_queries, n_queries, head_dim, resolved_value_dim(), dtype == at::kDouble ? 8 : 4, causal};
  }

  static SpeedData from_json(const nlohmann::json& config, const std::string& source_file) {
    SpeedData d;
    JsonReader r(config.contains("data") ? config.at("data") : nlohmann::json::object(), "data", source_file);
    r.get("batch", d.batch).get("heads", d.heads).require("n_queries", d.n_queries).get("head_dim", d.head_dim);
    r.get("value_dim", d.value_dim).get("causal", d.causal).get("seed", d.seed);
    r.get_enum("dtype", d.dtype, kFloatDtypeNames);
    r.finish();
    for (auto [key, value] : {std::pair<const char*, int64_t>{"batch", d.batch}, {"heads", d.heads},
                              {"n_queries", d.n_queries}, {"head_dim", d.head_dim},
                              {"value_dim", d.resolved_value_dim()}})
      if (value < 1)
        throw ConfigError(fmt::format("config '{}': 'data.{}' must be >= 1, got {}", source_file, key, value));
    return d;
  }
};

struct SpeedEval {
  int64_t warmup = 1, repeats = 3;
  bool backward = true;

  static SpeedEval from_json(const nlohmann::json& config, const std::string& source_file) {
    SpeedEval e;
    JsonReader r(config.contains("eval") ? config.at("eval") : nlohmann::json::object(), "eval", source_file);
    r.get("warmup", e.warmup).get("repeats", e.repeats).get("backward", e.backward);
    r.finish();
    if (e.warmup < 0 || e.repeats < 1)
      throw ConfigError(fmt::format("config '{}': 'eval.warmup' must be >= 0 and 'eval.repeats' >= 1, got {} and {}",
                                    source_file, e.warmup, e.repeats));
    return e;
  }
};

// Throws when a mode's planned memory (inputs plus the scaled analytic bytes) exceeds the usable
// share of what is available, before any tensor of the run exists.
// Returns whether forward+backward fits too (when asked for); a forward that does not fit throws.
bool check_memory_fits(const AttentionMethod& method, const SpeedData& d, const SpeedEval& eval,
                       const AttentionCost& cost) {
  const AttentionShape s = d.shape();
  const double input_bytes = static_cast<double>(s.batch * s.heads * s.n_queries) *
                             static_cast<double>(2 * s.head_dim + s.value_dim) * static_cast<double>(s.element_bytes);
  const double analytic = static_cast<double>(cost.analytic_bytes);
  // an exact method's analytic bytes count logits and probabilities, but without autograd dense
  // turns one into the other in place: one score matrix is what its forward holds
  const double forward_bytes =
      method.capabilities().exact
          ? std::min(analytic, static_cast<double>(cost.score_entries) * static_cast<double>(s.element_bytes))
          : analytic;
  const double backward_factor = method.capabilities().exact ? kExactBackwardMemoryFactor : kApproxBackwardMemoryFactor;
  const double available = static_cast<double>(available_memory_bytes());
  const auto message = [&](const char* mode, double need, double base, double factor) {
    return fmt::format("{} at N={} (B={}, H={}, D={}) needs about {:.1f} GiB for {} ({:.2f} GiB analytic x {} + "
                       "inputs) but only {:.1f} GiB are available ({:.0f}% may be used)",
                       method.name(), s.n_queries, s.batch, s.heads, s.head_dim, need / kGiB, mode, base / kGiB, factor,
                       available / kGiB, 100 * kUsableMemoryShare);
  };
  const double forward_need = input_bytes + kForwardMemoryFactor * forward_bytes;
  if (forward_need > kUsableMemoryShare * available)
    throw Error(message("forward", forward_need, forward_bytes, kForwardMemoryFactor) +
                "; lower data.n_queries or drop this run from the sweep");
  if (!eval.backward) return false;
  // backward adds the q/k/v gradients, the same size as the inputs
  const double backward_need = 2 * input_bytes + backward_factor * analytic;
  if (backward_need <= kUsableMemoryShare * available) return true;
  fmt::print(stderr, "{}; timing the forward only (forward+backward metrics are NaN)\n",
             message("forward+backward", backward_need, analytic, backward_factor));
  return false;
}

struct ModeMeasurement {
  double median_s = std::numeric_limits<double>::quiet_NaN();
  double peak_rss_delta_bytes = std::numeric_limits<double>::quiet_NaN();
};

// Runs `call` warmup times untimed, then repeats times timed; the high-water mark is reset just
// before the timed calls so the delta is this mode's own peak. `before_each` runs outside the clock.
template <class Call, class Prepare>
ModeMeasurement measure_mode(const SpeedEval& eval, Prepare before_each, Call call) {
  for (int64_t i = 0; i < eval.warmup; ++i) {
    before_each();
    call();
  }
  before_each();
  const bool peak_reset = reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  std::vector<double> seconds;
  for (int64_t i = 0; i < eval.repeats; ++i) {
    before_each();
    const auto t0 = std::chrono::steady_clock::now();
    call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  before_each();
  const ProcessMemory after = read_process_memory();
  std::sort(seconds.begin(), seconds.end());
  ModeMeasurement m;
  m.median_s = seconds[seconds.size() / 2];
  if (peak_reset) m.peak_rss_delta_bytes = static_cast<double>(after.peak_rss_bytes - before.rss_bytes);
  return m;
}

struct SpeedPlan : RunPlan {
  SpeedData data;
  SpeedEval eval;
  BudgetChoice budget;  // the attention object with any memory_budget resolved at the run's shape
  uint64_t seed = 0;
};

class SpeedPipeline : public TypedPipeline<SpeedPlan> {
 public:
  std::string name() const override { return "speed"; }

 protected:
  SpeedPlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"model", "train"});
    require_cpu_device(config, ctx.source, name());
    SpeedPlan plan;
    plan.data = SpeedData::from_json(config, ctx.source);
    plan.eval = SpeedEval::from_json(config, ctx.source);
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    const SpeedData& d = plan.data;
    plan.budget =
        resolve_memory_budget(config.value("attention", nlohmann::json::object()), d.shape(), "attention", ctx.source);
    const auto method = make_attention(plan.budget.attention, "attention", ctx.source);
    AttentionRequest request;
    request.shape = d.shape();
    request.causal = d.causal;
    const auto reasons = method->unsupported_reasons(request);
    if (!reasons.empty())
      throw ConfigError(fmt::format("config '{}': run '{}': {} cannot serve data with N=M={}{}: {}", ctx.source,
                                    ctx.run_id, method->name(), d.n_queries, d.causal ? " (causal)" : "",
                                    join(reasons, "; ")));
    return plan;
  }

  RunResult run_plan(const SpeedPlan& plan, const RunContext& ctx) const override {
    const SpeedData& d = plan.data;
    const SpeedEval& eval = plan.eval;
    const BudgetChoice& budget = plan.budget;
    const auto method = make_attention(budget.attention, "attention", ctx.source);
    const AttentionCost cost = method->cost(d.shape());
    const bool backward = check_memory_fits(*method, d, eval, cost);

    // Step 1: inputs, drawn directly in the run's dtype so no float64 copy inflates the baseline.
    auto data_gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(d.seed));
    const auto options = at::TensorOptions().dtype(d.dtype);
    const int64_t B = d.batch, H = d.heads, N = d.n_queries, D = d.head_dim, E = d.resolved_value_dim();
    AttentionInputs inputs;
    inputs.q_BHND = at::normal(0, 1, {B, H, N, D}, data_gen, options).requires_grad_(backward);
    inputs.k_BHMD = at::normal(0, 1, {B, H, N, D}, data_gen, options).requires_grad_(backward);
    inputs.v_BHME = at::normal(0, 1, {B, H, N, E}, data_gen, options).requires_grad_(backward);
    inputs.causal = d.causal;
    const uint64_t seed = plan.seed;
    auto forward = [&] {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);  // same hashes on every call
      return method->forward(inputs, gen);
    };

    // Step 2: forward only. The previous call's output is dropped before the next one starts so
    // it does not count in that call's peak.
    AttentionOutput out;
    ModeMeasurement fwd;
    {
      at::NoGradGuard no_grad;
      fwd = measure_mode(eval, [&] { out = AttentionOutput{}; }, [&] { out = forward(); });
    }

    // Step 3: forward + backward, each call into fresh gradients (accumulating into old ones
    // would measure an add instead of an allocation, and hide the gradients' memory).
    ModeMeasurement fwd_bwd;
    if (backward) {
      const auto reset_grads = [&] {
        out = AttentionOutput{};
        for (const at::Tensor* x : {&inputs.q_BHND, &inputs.k_BHMD, &inputs.v_BHME}) x->mutable_grad().reset();
      };
      fwd_bwd = measure_mode(eval, reset_grads, [&] {
        out = forward();
        out.out_BHNE.sum().backward();
      });
    }

    RunResult result;
    const double nan = std::numeric_limits<double>::quiet_NaN();
    result.metrics["forward_time_s"] = {fwd.median_s, "s", false};
    result.metrics["forward_backward_time_s"] = {backward ? fwd_bwd.median_s : nan, "s", false};
    result.metrics["tokens_per_s"] = {static_cast<double>(B * N) / fwd.median_s, "1/s", true};
    result.metrics["forward_peak_rss_delta_bytes"] = {fwd.peak_rss_delta_bytes, "bytes", false};
    result.metrics["forward_backward_peak_rss_delta_bytes"] = {backward ? fwd_bwd.peak_rss_delta_bytes : nan,
                                                               "bytes", false};
    result.metrics["memory_fraction"] = {cost.memory_fraction, "fraction", false};
    result.metrics["score_entries"] = {static_cast<double>(cost.score_entries), "count", false};
    result.metrics["analytic_bytes"] = {static_cast<double>(cost.analytic_bytes), "bytes", false};
    result.metrics["threads"] = {static_cast<double>(at::get_num_threads()), "count", false};
    add_budget_metrics(budget, result);
    return result;
  }
};

}  // namespace

const Pipeline& speed_pipeline() {
  static const SpeedPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
