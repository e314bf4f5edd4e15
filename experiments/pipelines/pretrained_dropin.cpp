// pretrained_dropin: a pretrained encoder over real text with its attention replaced by a method
// (in every layer or in model.attention_layers), no retraining, against the same encoder with dense
// attention. Config sections: model and data as in pretrained_text.h, attention (any registered
// method; memory_budget is resolved at the window length), eval {warmup 0, repeats 1, svd_windows 2}.
//
// Shape legend: B windows in a batch, N tokens, H heads, D head dim, C hidden, Y layers.
// Metrics (errors are over real tokens only; padded rows are not outputs):
//   attention_rel_error_mean/_max  per-layer attention-output error of the method on the dense
//                                  model's own Q/K/V of that layer (teacher-forced: the error this
//                                  layer adds, not what it inherits); tensor attention_rel_error_Y
//   hidden_rel_error_final         ||h - h_dense|| / ||h_dense|| of the last layer when the method
//                                  runs in the model (errors compound); tensor hidden_rel_error_Y
//                                  (embeddings first, then every layer)
//   final_hidden_cosine            mean over tokens of cos(h, h_dense) in the last layer
//   embedding_cosine_mean/_min     cos of mean-pooled sentence embeddings (as sentence-transformers
//                                  pools: mean over real tokens) over windows
//   memory_fraction                mean over layers of each layer's analytic fraction (dense = 1) at
//                                  the window length (a batch of shorter windows costs less)
//   forward_time_s, tokens_per_s   the whole encoder over every window, median of eval.repeats
//   peak_rss_bytes, peak_rss_delta_bytes, windows, tokens
//   dense only — the paper's low-rank vs sparse argument, over the first eval.svd_windows windows:
//   attention_rank90_fraction      singular values needed for 90% of a head's attention-map energy
//                                  (sum of σ²), divided by the window's tokens; mean over heads, layers
//   attention_top90_fraction       entries needed for 90% of a row's probability mass / tokens
//   tensors attention_rank90_fraction_YH, attention_top90_fraction_YH, attention_singular_values_YHI
//   (first window, σ / σ_max).
// Tested by tests/test_pretrained.cpp (smoke config on MiniLM, dense vs dense is exact, an exact
// smyrf configuration matches, bad input).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <set>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"
#include "experiments/io/tensor_h5.h"
#include "experiments/runner/pipeline.h"
#include "experiments/engines/pretrained_text.h"

namespace smyrf {
namespace {

struct DropinEval {
  int64_t warmup = 0, repeats = 1, svd_windows = 2;
  static DropinEval from_json(const nlohmann::json& config, const std::string& source) {
    DropinEval e;
    JsonReader r(config.value("eval", nlohmann::json::object()), "eval", source);
    r.get("warmup", e.warmup).get("repeats", e.repeats).get("svd_windows", e.svd_windows);
    r.finish();
    if (e.warmup < 0 || e.repeats < 1 || e.svd_windows < 0)
      throw ConfigError(fmt::format("config '{}': 'eval.warmup' and 'eval.svd_windows' must be >= 0 and 'eval.repeats' "
                                    ">= 1, got {}, {} and {}", source, e.warmup, e.svd_windows, e.repeats));
    return e;
  }
};

// Fewest leading entries of each row of `sorted_desc` (non-negative, sorted descending) whose sum
// reaches `share` of the row's total.
at::Tensor count_to_share(const at::Tensor& sorted_desc, double share) {
  const at::Tensor cumulative = sorted_desc.cumsum(-1);
  const at::Tensor total = cumulative.select(-1, -1).unsqueeze(-1);
  return (cumulative < share * total).sum(-1).to(at::kDouble) + 1;
}

// Low-rank vs sparse statistics of one window's dense attention maps (real tokens only), per head.
struct MapStatistics {
  at::Tensor rank90_H, top90_H, singular_values_HK;
};
MapStatistics attention_map_statistics(const AttentionInputs& in, int64_t window, int64_t n_real) {
  const at::Tensor q_HND = in.q_BHND[window].narrow(1, 0, n_real).to(at::kDouble);
  const at::Tensor k_HND = in.k_BHMD[window].narrow(1, 0, n_real).to(at::kDouble);
  const at::Tensor probs_HNN = at::softmax(at::matmul(q_HND, k_HND.transpose(1, 2)) * in.scale, -1);
  MapStatistics s;
  s.singular_values_HK = at::linalg_svdvals(probs_HNN);
  s.rank90_H = count_to_share(s.singular_values_HK.square(), 0.9) / static_cast<double>(n_real);
  s.top90_H = (count_to_share(std::get<0>(probs_HNN.sort(-1, /*descending=*/true)), 0.9) / static_cast<double>(n_real))
                  .mean(-1);
  return s;
}

struct DropinPlan : RunPlan {
  PretrainedModelSection model;
  TextDataSection data;
  DropinEval eval;
  nlohmann::json attention;  // a memory_budget is resolved at the window length when the text is cut
  uint64_t seed = 0;
};

// The method to drop in, at the text's window length, and the layers it goes into.
struct DropinSetup {
  BudgetChoice budget;
  std::shared_ptr<const AttentionMethod> method;
  std::vector<int64_t> layers;
  std::set<int64_t> method_layers;
  AttentionShape shape;
  bool is_dense = false;
};

DropinSetup set_up_method(const DropinPlan& plan, PretrainedText& text, const RunContext& ctx) {
  const EncoderConfig& mc = text.model.config;
  DropinSetup s;
  s.shape = {1, mc.num_attention_heads, text.window_tokens, text.window_tokens, mc.head_dim(), mc.head_dim(), 4};
  s.budget = resolve_memory_budget(plan.attention, s.shape, "attention", ctx.source);
  s.method = make_attention(s.budget.attention, "attention", ctx.source);
  const AttentionRequest request{s.shape, false, true};
  if (const auto reasons = s.method->unsupported_reasons(request); !reasons.empty())
    throw ConfigError(fmt::format("config '{}': run '{}': {} cannot serve windows of {} tokens: {}", ctx.source,
                                  ctx.run_id, s.method->name(), text.window_tokens, join(reasons, "; ")));
  s.layers = plan.model.attention_layers;
  if (s.layers.empty())
    for (int64_t y = 0; y < mc.num_hidden_layers; ++y) s.layers.push_back(y);
  text.model.encoder->set_attention(s.method, s.layers);  // checks the indices
  text.model.encoder->set_attention(make_attention({{"method", "dense"}}));
  s.method_layers = std::set<int64_t>(s.layers.begin(), s.layers.end());
  s.is_dense = s.method->name() == "dense";
  return s;
}

// Shape legend here: Y layers, H heads, I singular values (largest first), G windows.
struct DensePass {
  std::vector<EncoderOutput> outputs;           // the reference hidden states, per batch
  std::vector<double> err_sq, ref_sq;           // per layer: the method's squared error on dense Q/K/V
  at::Tensor rank90_YH, top90_YH;               // attention-map statistics (dense runs only)
  std::vector<at::Tensor> first_window_spectra;  // per layer [H, K]
  int64_t svd_windows_done = 0;
};

// The model with dense attention: reference hidden states, the method's error on each layer's
// dense Q/K/V, and (for dense) the attention maps' spectra.
DensePass run_dense_pass(PretrainedText& text, const DropinSetup& setup, const DropinPlan& plan) {
  const int64_t Y = text.model.config.num_hidden_layers, H = text.model.config.num_attention_heads;
  DensePass p;
  p.err_sq.assign(static_cast<size_t>(Y), 0.0);
  p.ref_sq.assign(static_cast<size_t>(Y), 0.0);
  p.rank90_YH = at::zeros({Y, H}, at::kDouble);
  p.top90_YH = at::zeros({Y, H}, at::kDouble);
  p.first_window_spectra.resize(static_cast<size_t>(Y));
  int64_t windows_seen = 0;
  auto teacher_gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed);
  for (const TokenBatch& batch : text.batches) {
    const int64_t B = batch.ids_BN.size(0);
    const int64_t svd_here = std::clamp<int64_t>(plan.eval.svd_windows - windows_seen, 0, B);
    EncoderForwardOptions options;
    options.all_hidden_states = true;
    options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput& dense_out) {
      const at::Tensor rows = in.query_keep_BN->view({B, 1, -1, 1});
      const at::Tensor reference = dense_out.out_BHNE.to(at::kDouble);
      p.ref_sq[static_cast<size_t>(layer)] += at::where(rows, reference.square(), 0.0).sum().item<double>();
      if (!setup.is_dense && setup.method_layers.count(layer)) {
        const at::Tensor approx = setup.method->forward(in, teacher_gen).out_BHNE.to(at::kDouble);
        p.err_sq[static_cast<size_t>(layer)] += at::where(rows, (approx - reference).square(), 0.0).sum().item<double>();
      }
      if (!setup.is_dense) return;
      for (int64_t w = 0; w < svd_here; ++w) {
        const int64_t n_real = in.query_keep_BN->select(0, w).sum().item<int64_t>();
        const MapStatistics s = attention_map_statistics(in, w, n_real);
        p.rank90_YH[layer] += s.rank90_H;
        p.top90_YH[layer] += s.top90_H;
        if (windows_seen + w == 0)
          p.first_window_spectra[static_cast<size_t>(layer)] =
              s.singular_values_HK / s.singular_values_HK.select(1, 0).unsqueeze(1);
      }
    };
    p.outputs.push_back(text.model.encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, teacher_gen, options));
    windows_seen += B;
    p.svd_windows_done += svd_here;
  }
  return p;
}

struct MethodPass {
  std::vector<EncoderOutput> outputs;  // of the last repeat, per batch
  double median_s = 0;
  double peak_rss_bytes = 0, peak_rss_delta_bytes = 0;
};

// The model with the method dropped in, timed over every window (warmup, then repeats).
MethodPass run_method_pass(PretrainedText& text, const DropinPlan& plan) {
  TransformerEncoder& encoder = text.model.encoder;
  for (int64_t i = 0; i < plan.eval.warmup; ++i) {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed);
    for (const TokenBatch& batch : text.batches) encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen);
  }
  MethodPass p;
  std::vector<double> seconds;
  const bool peak_reset = reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  for (int64_t i = 0; i < plan.eval.repeats; ++i) {
    p.outputs.clear();
    auto gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed);  // the same draws on every repeat
    const auto t0 = std::chrono::steady_clock::now();
    for (const TokenBatch& batch : text.batches)
      p.outputs.push_back(encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen, {true, {}}));
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  const ProcessMemory after = read_process_memory();
  std::sort(seconds.begin(), seconds.end());
  p.median_s = seconds[seconds.size() / 2];
  p.peak_rss_bytes = static_cast<double>(after.peak_rss_bytes);
  p.peak_rss_delta_bytes = peak_reset ? static_cast<double>(after.peak_rss_bytes - before.rss_bytes) : std::nan("");
  return p;
}

struct HiddenComparison {
  at::Tensor hidden_error_Y1;  // relative error of each hidden state (embeddings, then every layer)
  at::Tensor embedding_cosine_G;
  double cosine_sum = 0;
  int64_t tokens = 0;
};

// The method's hidden states against dense ones at real tokens. Padded positions are selected
// away (at::where), never multiplied by 0: nothing there can leak.
HiddenComparison compare_hidden_states(const PretrainedText& text, const DensePass& dense, const MethodPass& timed) {
  const int64_t Y = text.model.config.num_hidden_layers;
  std::vector<double> err_sq(static_cast<size_t>(Y + 1), 0.0), ref_sq(static_cast<size_t>(Y + 1), 0.0);
  HiddenComparison c;
  std::vector<at::Tensor> embedding_cosines;
  for (size_t b = 0; b < text.batches.size(); ++b) {
    const at::Tensor keep_BN = text.batches[b].keep_BN, keep = keep_BN.unsqueeze(-1);
    for (int64_t y = 0; y <= Y; ++y) {
      const at::Tensor h = timed.outputs[b].hidden_states[static_cast<size_t>(y)].to(at::kDouble);
      const at::Tensor ref = dense.outputs[b].hidden_states[static_cast<size_t>(y)].to(at::kDouble);
      err_sq[static_cast<size_t>(y)] += at::where(keep, (h - ref).square(), 0.0).sum().item<double>();
      ref_sq[static_cast<size_t>(y)] += at::where(keep, ref.square(), 0.0).sum().item<double>();
    }
    const at::Tensor h = at::where(keep, timed.outputs[b].hidden_BNC.to(at::kDouble), 0.0);
    const at::Tensor ref = at::where(keep, dense.outputs[b].hidden_BNC.to(at::kDouble), 0.0);
    c.cosine_sum += at::where(keep_BN, at::cosine_similarity(h, ref, -1), 0.0).sum().item<double>();
    c.tokens += text.batches[b].real_tokens();
    const at::Tensor count = keep_BN.sum(1, /*keepdim=*/true).to(at::kDouble);
    embedding_cosines.push_back(at::cosine_similarity(h.sum(1) / count, ref.sum(1) / count, -1));
  }
  c.embedding_cosine_G = at::cat(embedding_cosines);
  c.hidden_error_Y1 = at::zeros({Y + 1}, at::kDouble);
  for (int64_t y = 0; y <= Y; ++y)
    c.hidden_error_Y1[y] = std::sqrt(err_sq[static_cast<size_t>(y)] / std::max(ref_sq[static_cast<size_t>(y)], 1e-300));
  return c;
}

// The metrics of results/README.md: attention and hidden-state errors, cosines, memory, time.
RunResult compare_with_dense(const PretrainedText& text, const DropinSetup& setup, const DensePass& dense,
                             const MethodPass& timed) {
  const int64_t Y = text.model.config.num_hidden_layers;
  const HiddenComparison hidden = compare_hidden_states(text, dense, timed);
  at::Tensor attention_error_Y = at::zeros({Y}, at::kDouble);
  double attention_error_sum = 0, attention_error_max = 0;
  for (int64_t y : setup.method_layers) {
    const double e = std::sqrt(dense.err_sq[static_cast<size_t>(y)] / std::max(dense.ref_sq[static_cast<size_t>(y)], 1e-300));
    attention_error_Y[y] = e;
    attention_error_sum += e;
    attention_error_max = std::max(attention_error_max, e);
  }
  double fraction_sum = 0;
  for (int64_t y = 0; y < Y; ++y)
    fraction_sum += setup.method_layers.count(y) ? setup.method->cost(setup.shape).memory_fraction : 1.0;
  RunResult result;
  auto& m = result.metrics;
  m["attention_rel_error_mean"] = {attention_error_sum / static_cast<double>(setup.method_layers.size()), "1", false};
  m["attention_rel_error_max"] = {attention_error_max, "1", false};
  m["hidden_rel_error_final"] = {hidden.hidden_error_Y1[Y].item<double>(), "1", false};
  m["final_hidden_cosine"] = {hidden.cosine_sum / static_cast<double>(hidden.tokens), "1", true};
  m["embedding_cosine_mean"] = {hidden.embedding_cosine_G.mean().item<double>(), "1", true};
  m["embedding_cosine_min"] = {hidden.embedding_cosine_G.min().item<double>(), "1", true};
  m["memory_fraction"] = {fraction_sum / static_cast<double>(Y), "fraction", false};
  m["forward_time_s"] = {timed.median_s, "s", false};
  m["tokens_per_s"] = {static_cast<double>(hidden.tokens) / timed.median_s, "1/s", true};
  m["peak_rss_bytes"] = {timed.peak_rss_bytes, "bytes", false};
  m["peak_rss_delta_bytes"] = {timed.peak_rss_delta_bytes, "bytes", false};
  m["windows"] = {static_cast<double>(text.windows.size()), "count", false};
  m["tokens"] = {static_cast<double>(hidden.tokens), "count", false};
  m["window_tokens"] = {static_cast<double>(text.window_tokens), "count", false};
  m["threads"] = {static_cast<double>(at::get_num_threads()), "count", false};
  // tensor names keep the results files' letters: _L is layers there
  result.tensors["attention_rel_error_Y"] = named_array_of(attention_error_Y);
  result.tensors["hidden_rel_error_Y"] = named_array_of(hidden.hidden_error_Y1);
  result.tensors["embedding_cosine_G"] = named_array_of(hidden.embedding_cosine_G);
  if (setup.is_dense && dense.svd_windows_done > 0) {
    const at::Tensor rank90_YH = dense.rank90_YH / static_cast<double>(dense.svd_windows_done);
    const at::Tensor top90_YH = dense.top90_YH / static_cast<double>(dense.svd_windows_done);
    m["attention_rank90_fraction"] = {rank90_YH.mean().item<double>(), "fraction", false};
    m["attention_top90_fraction"] = {top90_YH.mean().item<double>(), "fraction", false};
    result.tensors["attention_rank90_fraction_YH"] = named_array_of(rank90_YH);
    result.tensors["attention_top90_fraction_YH"] = named_array_of(top90_YH);
    result.tensors["attention_singular_values_YHI"] = named_array_of(at::stack(dense.first_window_spectra));
  }
  return result;
}


class PretrainedDropinPipeline : public TypedPipeline<DropinPlan> {
 public:
  std::string name() const override { return "pretrained_dropin"; }

 protected:
  DropinPlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"train"});
    DropinPlan plan;
    plan.model = PretrainedModelSection::from_json(config, ctx.source);
    plan.data = TextDataSection::from_json(config, ctx.source);
    plan.eval = DropinEval::from_json(config, ctx.source);
    plan.attention = config.value("attention", nlohmann::json::object());
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    nlohmann::json attention = plan.attention;
    if (attention.is_object()) attention.erase("memory_budget");
    make_attention(attention, "attention", ctx.source);
    require_cpu_device(config, ctx.source, name());
    validate_pretrained_text(plan.model, plan.data, ctx.source);
    return plan;
  }

  RunResult run_plan(const DropinPlan& plan, const RunContext& ctx) const override {
    PretrainedText text = load_pretrained_text(plan.model, plan.data, ctx.source);
    const DropinSetup setup = set_up_method(plan, text, ctx);
    at::NoGradGuard no_grad;
    const DensePass dense = run_dense_pass(text, setup, plan);
    text.model.encoder->set_attention(setup.method, setup.layers);
    const MethodPass timed = run_method_pass(text, plan);
    RunResult result = compare_with_dense(text, setup, dense, timed);
    add_budget_metrics(setup.budget, result);
    return result;
  }
};

}  // namespace

const Pipeline& pretrained_dropin_pipeline() {
  static const PretrainedDropinPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
