// attention_fidelity: one attention method on one Q/K/V source, against exact dense attention
// computed in float64 on the same inputs.
//
// Sources ("data.source"):
//   synthetic  queries and keys near a few shared directions, like trained attention:
//              centers c_1..c_K (unit), q_i = a r_i (c_{z_i} + noise g_i / sqrt(D)), same for k_j,
//              a = sqrt(sharpness * sqrt(D)), r = exp(norm_spread * N(0,1)); so with the default
//              scale a query's logits on keys of its own center exceed the others by about
//              `sharpness` (sharpness 0: uniform attention). Values carry their key's center, as
//              similar tokens carry similar content: v_j = w_{z_j} + value_noise N(0, I); a large
//              value_noise makes values independent of keys (then any approximation that sees a
//              different subset of equally weighted keys has relative error near 1).
//              Optional per-batch key_lengths pad the tail of each batch row.
//   captured   Q/K/V read from a captured-QKV HDF5 file (format in results/README.md).
// Metrics: rel_fro_error, max_abs_error, mean_row_cosine vs dense float64 (for a method that
// approximates another function, e.g. polysketch: also rel_fro_error_vs_target and
// rel_fro_error_vs_softmax, target_rel_fro_error_vs_softmax, and rel_fro_error follows its `target`); memory_fraction,
// score_entries, analytic_bytes (analytic); wall_time_s (median of eval.repeats after eval.warmup),
// peak_rss_delta_bytes (high-water mark reset right before the timed calls, minus the RSS then)
// and peak_rss_bytes; tensors/rel_fro_error_BH per (batch, head).
// Tested by tests/test_experiments.cpp (smoke config, captured file, bad input).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/attention/dense.h"
#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"
#include "core/util/tensor_compare.h"
#include "experiments/io/captured_qkv.h"
#include "experiments/io/tensor_h5.h"
#include "experiments/runner/pipeline.h"

namespace smyrf {
namespace {

enum class FidelitySource { kSynthetic, kCaptured };
const EnumNames<FidelitySource> kSourceNames = {{"synthetic", FidelitySource::kSynthetic},
                                                {"captured", FidelitySource::kCaptured}};

struct FidelityData {
  FidelitySource source = FidelitySource::kSynthetic;
  int64_t batch = 1, heads = 1, n_queries = 1024, head_dim = 64;
  std::optional<int64_t> n_keys, value_dim;
  double sharpness = 6.0, noise = 0.5, norm_spread = 0.0, value_noise = 0.5;
  int64_t n_centers = 64, seed = 0;
  std::vector<int64_t> key_lengths;
  std::string path, group;
  bool causal = false;
  double scale = 0.0;
  at::ScalarType dtype = at::kFloat;

  static FidelityData from_json(const nlohmann::json& config, const std::string& source_file) {
    FidelityData d;
    JsonReader r(config.contains("data") ? config.at("data") : nlohmann::json::object(), "data", source_file);
    r.get_enum("source", d.source, kSourceNames);
    r.get("causal", d.causal).get("scale", d.scale).get_enum("dtype", d.dtype, kFloatDtypeNames);
    const auto fail = [&](const std::string& key, const std::string& why) {
      throw ConfigError(fmt::format("config '{}': 'data.{}' {}", source_file, key, why));
    };
    if (d.source == FidelitySource::kSynthetic) {
      r.get("batch", d.batch).get("heads", d.heads).require("n_queries", d.n_queries).get("n_keys", d.n_keys);
      r.get("head_dim", d.head_dim).get("value_dim", d.value_dim).get("sharpness", d.sharpness);
      r.get("noise", d.noise).get("n_centers", d.n_centers).get("seed", d.seed).get("key_lengths", d.key_lengths);
      r.get("norm_spread", d.norm_spread).get("value_noise", d.value_noise);
      for (auto [key, value] : {std::pair<const char*, int64_t>{"batch", d.batch}, {"heads", d.heads},
                                {"n_queries", d.n_queries}, {"head_dim", d.head_dim}, {"n_centers", d.n_centers}})
        if (value < 1) fail(key, fmt::format("must be >= 1, got {}", value));
      if (d.n_keys && *d.n_keys < 1) fail("n_keys", fmt::format("must be >= 1, got {}", *d.n_keys));
      if (d.value_dim && *d.value_dim < 1) fail("value_dim", fmt::format("must be >= 1, got {}", *d.value_dim));
      for (auto [key, value] : {std::pair<const char*, double>{"sharpness", d.sharpness}, {"noise", d.noise},
                                {"norm_spread", d.norm_spread}, {"value_noise", d.value_noise}})
        if (!(value >= 0)) fail(key, fmt::format("must be >= 0, got {}", value));
      const int64_t M = d.n_keys.value_or(d.n_queries);
      if (!d.key_lengths.empty()) {
        if (static_cast<int64_t>(d.key_lengths.size()) != d.batch)
          fail("key_lengths", fmt::format("needs one length per batch row ({}), got {}", d.batch, d.key_lengths.size()));
        for (int64_t len : d.key_lengths)
          if (len < 1 || len > M) fail("key_lengths", fmt::format("entries must be in [1, {}], got {}", M, len));
      }
      const double elements = static_cast<double>(d.batch * d.heads) * static_cast<double>(d.n_queries) *
                              static_cast<double>(M);
      if (elements > 4e9)
        fail("n_queries", fmt::format("x n_keys x batch x heads = {:.3g} score entries: the float64 dense reference "
                                      "would need {:.1f} GiB; lower the sizes", elements, elements * 8 * 3 / (1 << 30)));
    } else {
      r.require("path", d.path).require("group", d.group);
    }
    if (d.scale < 0) fail("scale", fmt::format("must be >= 0 (0 = 1/sqrt(head_dim)), got {}", d.scale));
    r.finish();
    return d;
  }
};

struct FidelityEval {
  int64_t warmup = 1, repeats = 3;
  static FidelityEval from_json(const nlohmann::json& config, const std::string& source_file) {
    FidelityEval e;
    JsonReader r(config.contains("eval") ? config.at("eval") : nlohmann::json::object(), "eval", source_file);
    r.get("warmup", e.warmup).get("repeats", e.repeats);
    if (e.warmup < 0 || e.repeats < 1)
      throw ConfigError(fmt::format("config '{}': 'eval.warmup' must be >= 0 and 'eval.repeats' >= 1, got {} and {}",
                                    source_file, e.warmup, e.repeats));
    r.finish();
    return e;
  }
};

AttentionInputs synthetic_inputs(const FidelityData& d) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(d.seed));
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const int64_t B = d.batch, H = d.heads, N = d.n_queries, M = d.n_keys.value_or(N), D = d.head_dim;
  const int64_t E = d.value_dim.value_or(D);
  at::Tensor centers_HKD = at::normal(0, 1, {H, d.n_centers, D}, gen, f64);
  centers_HKD = centers_HKD / centers_HKD.norm(2, -1, true);
  at::Tensor values_HKE = at::normal(0, 1, {H, d.n_centers, E}, gen, f64);
  const double amplitude = std::sqrt(d.sharpness * std::sqrt(static_cast<double>(D)));
  auto pick_centers = [&](int64_t T) {
    return at::randint(d.n_centers, {B, H, T}, gen, at::TensorOptions().dtype(at::kLong));
  };
  auto gather_per_head = [&](const at::Tensor& table_HKX, const at::Tensor& z_BHT) {
    at::Tensor x = at::empty({B, H, z_BHT.size(2), table_HKX.size(2)}, f64);
    for (int64_t h = 0; h < H; ++h)
      x.select(1, h).copy_(table_HKX[h].index_select(0, z_BHT.select(1, h).reshape({-1})).view({B, -1, table_HKX.size(2)}));
    return x;
  };
  auto near_centers = [&](const at::Tensor& z_BHT) {
    const int64_t T = z_BHT.size(2);
    const at::Tensor noise = d.noise / std::sqrt(static_cast<double>(D)) * at::normal(0, 1, {B, H, T, D}, gen, f64);
    const at::Tensor norms = at::exp(d.norm_spread * at::normal(0, 1, {B, H, T, 1}, gen, f64));
    return amplitude * norms * (gather_per_head(centers_HKD, z_BHT) + noise);
  };
  const auto dtype = d.dtype;
  const at::Tensor z_q = pick_centers(N), z_k = pick_centers(M);
  AttentionInputs in;
  in.q_BHND = near_centers(z_q).to(dtype);
  in.k_BHMD = near_centers(z_k).to(dtype);
  in.v_BHME = (gather_per_head(values_HKE, z_k) + d.value_noise * at::normal(0, 1, {B, H, M, E}, gen, f64)).to(dtype);
  if (!d.key_lengths.empty()) {
    at::Tensor keep = at::zeros({B, M}, at::kBool);
    for (int64_t b = 0; b < B; ++b) keep[b].narrow(0, 0, d.key_lengths[static_cast<size_t>(b)]).fill_(true);
    in.key_keep_BM = keep;
    if (M == N) in.query_keep_BN = keep;
  }
  in.causal = d.causal;
  in.scale = d.scale;
  return in;
}

AttentionInputs captured_inputs(const FidelityData& d, const std::string& source) {
  AttentionInputs in = load_captured_qkv(d.path, d.group, d.dtype,
                                         fmt::format("config '{}': data.path/data.group", source));
  in.causal = d.causal || in.causal;
  if (d.scale > 0) in.scale = d.scale;
  return in;
}

struct FidelityPlan : RunPlan {
  FidelityData data;
  FidelityEval eval;
  nlohmann::json attention;  // as the config gives it; a memory_budget is resolved at the data's shape
  uint64_t seed = 0;
};

// The method's output on `inputs` after `warmup` untimed calls, with the median time of `repeats`
// timed ones and the process memory around them. Every call draws from a generator seeded alike,
// so the clusters are the same on every repeat.
struct TimedCalls {
  AttentionOutput out;
  double median_s = 0;
  bool peak_reset = false;
  ProcessMemory before, after;
};
TimedCalls time_calls(const AttentionMethod& method, const AttentionInputs& inputs, uint64_t seed, int64_t warmup,
                      int64_t repeats) {
  auto call = [&] {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    return method.forward(inputs, gen);
  };
  for (int64_t i = 0; i < warmup; ++i) call();
  TimedCalls timed;
  timed.peak_reset = reset_peak_rss();
  timed.before = read_process_memory();
  std::vector<double> seconds;
  for (int64_t i = 0; i < repeats; ++i) {
    timed.out = AttentionOutput{};  // the previous repeat's output must not count in this one's peak
    const auto t0 = std::chrono::steady_clock::now();
    timed.out = call();
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  timed.after = read_process_memory();
  std::sort(seconds.begin(), seconds.end());
  timed.median_s = seconds[seconds.size() / 2];
  return timed;
}

class AttentionFidelityPipeline : public TypedPipeline<FidelityPlan> {
 public:
  std::string name() const override { return "attention_fidelity"; }

 protected:
  FidelityPlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"model", "train"});
    FidelityPlan plan;
    plan.data = FidelityData::from_json(config, ctx.source);
    plan.eval = FidelityEval::from_json(config, ctx.source);
    plan.attention = config.value("attention", nlohmann::json::object());
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    const FidelityData& d = plan.data;
    const nlohmann::json& attention = plan.attention;
    if (d.source == FidelitySource::kSynthetic) {
      AttentionRequest request;
      request.shape = {d.batch, d.heads, d.n_queries, d.n_keys.value_or(d.n_queries), d.head_dim,
                       d.value_dim.value_or(d.head_dim), d.dtype == at::kDouble ? 8 : 4};
      request.causal = d.causal;
      request.shape.causal = d.causal;
      request.padded = !d.key_lengths.empty();
      const auto method = make_attention(resolve_memory_budget(attention, request.shape, "attention", ctx.source).attention,
                                         "attention", ctx.source);
      const auto reasons = method->unsupported_reasons(request);
      if (!reasons.empty())
        throw ConfigError(fmt::format("config '{}': run '{}': {} cannot serve data with N={} M={}: {}", ctx.source,
                                      ctx.run_id, method->name(), request.shape.n_queries, request.shape.n_keys,
                                      join(reasons, "; ")));
    } else {
      // the shape comes from the file, so a memory_budget is resolved when the run starts
      nlohmann::json without_budget = attention;
      if (without_budget.is_object()) without_budget.erase("memory_budget");
      make_attention(without_budget, "attention", ctx.source);
    }
    require_cpu_device(config, ctx.source, name());
    return plan;
  }

  RunResult run_plan(const FidelityPlan& plan, const RunContext& ctx) const override {
    const FidelityData& d = plan.data;
    const FidelityEval& eval = plan.eval;
    const AttentionInputs inputs =
        d.source == FidelitySource::kSynthetic ? synthetic_inputs(d) : captured_inputs(d, ctx.source);
    const BudgetChoice budget = resolve_memory_budget(plan.attention, shape_of(inputs), "attention", ctx.source);
    const auto method = make_attention(budget.attention, "attention", ctx.source);
    const uint64_t seed = plan.seed;
    at::NoGradGuard no_grad;
    const TimedCalls timed = time_calls(*method, inputs, seed, eval.warmup, eval.repeats);
    const AttentionOutput& out = timed.out;

    // the reference comes after the timed calls so that its memory is not counted
    AttentionInputs exact_inputs = inputs;
    exact_inputs.q_BHND = inputs.q_BHND.to(at::kDouble);
    exact_inputs.k_BHMD = inputs.k_BHMD.to(at::kDouble);
    exact_inputs.v_BHME = inputs.v_BHME.to(at::kDouble);
    auto ref_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    const at::Tensor exact = DenseAttention().forward(exact_inputs, ref_gen).out_BHNE;

    // padded query rows are zeros by contract: leave them out of the metrics
    const auto metrics_against = [&](const at::Tensor& reference_BHNE) {
      at::Tensor approx = out.out_BHNE.to(at::kDouble), reference = reference_BHNE;
      if (inputs.query_keep_BN) {
        const at::Tensor keep = inputs.query_keep_BN->view({inputs.q_BHND.size(0), 1, -1, 1}).expand_as(approx);
        approx = approx.masked_select(keep).view({-1, approx.size(-1)});
        reference = reference.masked_select(keep).view({-1, reference.size(-1)});
      }
      return fidelity_metrics(approx, reference);
    };
    RunResult result;
    // a method that approximates another function (polysketch: polynomial attention) is measured
    // against both; `reports_against_target` picks which one rel_fro_error means
    at::Tensor primary_reference = exact;
    if (const auto target = method->approximation_target()) {
      auto target_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      const at::Tensor target_out = target->forward(exact_inputs, target_gen).out_BHNE;
      const FidelityMetrics vs_target = metrics_against(target_out);
      const FidelityMetrics vs_softmax = metrics_against(exact);
      result.metrics["rel_fro_error_vs_target"] = {vs_target.rel_fro_error, "1", false};
      result.metrics["rel_fro_error_vs_softmax"] = {vs_softmax.rel_fro_error, "1", false};
      // how far the target itself is from softmax attention: the floor of rel_fro_error_vs_softmax
      result.metrics["target_rel_fro_error_vs_softmax"] = {fidelity_metrics(target_out, exact).rel_fro_error, "1", false};
      if (method->reports_against_target()) primary_reference = target_out;
    }
    const FidelityMetrics fm = metrics_against(primary_reference);
    result.metrics["rel_fro_error"] = {fm.rel_fro_error, "1", false};
    result.metrics["max_abs_error"] = {fm.max_abs_error, "1", false};
    result.metrics["mean_row_cosine"] = {fm.mean_row_cosine, "1", true};
    result.metrics["memory_fraction"] = {out.cost.memory_fraction, "fraction", false};
    result.metrics["score_entries"] = {static_cast<double>(out.cost.score_entries), "count", false};
    result.metrics["analytic_bytes"] = {static_cast<double>(out.cost.analytic_bytes), "bytes", false};
    result.metrics["wall_time_s"] = {timed.median_s, "s", false};
    result.metrics["peak_rss_delta_bytes"] = {
        timed.peak_reset ? static_cast<double>(timed.after.peak_rss_bytes - timed.before.rss_bytes) : std::nan(""),
        "bytes", false};
    result.metrics["peak_rss_bytes"] = {static_cast<double>(timed.after.peak_rss_bytes), "bytes", false};
    result.metrics["threads"] = {static_cast<double>(at::get_num_threads()), "count", false};
    add_budget_metrics(budget, result);

    // per (batch, head) relative error: where the approximation hurts
    const at::Tensor diff = (out.out_BHNE.to(at::kDouble) - primary_reference).square().sum({2, 3}).sqrt();
    const at::Tensor per_head = (diff / primary_reference.square().sum({2, 3}).sqrt().clamp_min(1e-300)).contiguous();
    result.tensors["rel_fro_error_BH"] = named_array_of(per_head);
    return result;
  }
};

}  // namespace

const Pipeline& attention_fidelity_pipeline() {
  static const AttentionFidelityPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
