// pretrained_dropin: a pretrained encoder over real text with its attention replaced by a method
// (in every layer or in model.attention_layers), no retraining, against the same encoder with dense
// attention. Config sections: model and data as in pretrained_text.h, attention (any registered
// method; memory_budget is resolved at the window length), eval {warmup 0, repeats 1, svd_windows 2}.
//
// Shape legend: B windows in a batch, N tokens, H heads, D head dim, C hidden, L layers.
// Metrics (errors are over real tokens only; padded rows are not outputs):
//   attention_rel_error_mean/_max  per-layer attention-output error of the method on the dense
//                                  model's own Q/K/V of that layer (teacher-forced: the error this
//                                  layer adds, not what it inherits); tensor attention_rel_error_L
//   hidden_rel_error_final         ||h - h_dense|| / ||h_dense|| of the last layer when the method
//                                  runs in the model (errors compound); tensor hidden_rel_error_L
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
//   tensors attention_rank90_fraction_LH, attention_top90_fraction_LH, attention_singular_values_LHK
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
#include "experiments/pipelines/pipeline.h"
#include "experiments/pipelines/pretrained_text.h"

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

NamedArray named_array(const at::Tensor& t) {
  const at::Tensor x = t.to(at::kDouble).contiguous();
  NamedArray a;
  a.data.assign(x.data_ptr<double>(), x.data_ptr<double>() + x.numel());
  a.dims = x.sizes().vec();
  return a;
}

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

class PretrainedDropinPipeline : public Pipeline {
 public:
  std::string name() const override { return "pretrained_dropin"; }

  void validate(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"train"});
    const auto model = PretrainedModelSection::from_json(config, ctx.source);
    const auto data = TextDataSection::from_json(config, ctx.source);
    DropinEval::from_json(config, ctx.source);
    nlohmann::json attention = config.value("attention", nlohmann::json::object());
    if (attention.is_object()) attention.erase("memory_budget");  // resolved at the window length
    make_attention(attention, "attention", ctx.source);
    if (config.value("device", std::string("cpu")) != "cpu")
      throw ConfigError(fmt::format("config '{}': 'device' is '{}'; pretrained_dropin runs on the CPU in this build",
                                    ctx.source, config.value("device", std::string())));
    validate_pretrained_text(model, data, ctx.source);
  }

  RunResult run(const nlohmann::json& config, const RunContext& ctx) const override {
    apply_thread_setting(config);
    const auto model_section = PretrainedModelSection::from_json(config, ctx.source);
    const auto data = TextDataSection::from_json(config, ctx.source);
    const DropinEval eval = DropinEval::from_json(config, ctx.source);
    PretrainedText text = load_pretrained_text(model_section, data, ctx.source);
    TransformerEncoder& encoder = text.model.encoder;
    const EncoderConfig& mc = text.model.config;
    const int64_t L = mc.num_hidden_layers, H = mc.num_attention_heads, D = mc.head_dim();

    AttentionShape shape{1, H, text.window_tokens, text.window_tokens, D, D, 4};
    const BudgetChoice budget =
        resolve_memory_budget(config.value("attention", nlohmann::json::object()), shape, "attention", ctx.source);
    const std::shared_ptr<const AttentionMethod> method = make_attention(budget.attention, "attention", ctx.source);
    AttentionRequest request{shape, false, true};
    if (const auto reasons = method->unsupported_reasons(request); !reasons.empty())
      throw ConfigError(fmt::format("config '{}': run '{}': {} cannot serve windows of {} tokens: {}", ctx.source,
                                    ctx.run_id, method->name(), text.window_tokens, join(reasons, "; ")));
    std::vector<int64_t> layers = model_section.attention_layers;
    if (layers.empty())
      for (int64_t l = 0; l < L; ++l) layers.push_back(l);
    encoder->set_attention(method, layers);  // checks the indices
    encoder->set_attention(make_attention({{"method", "dense"}}));
    const std::set<int64_t> method_layers(layers.begin(), layers.end());
    const bool is_dense = method->name() == "dense";
    const uint64_t seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    at::NoGradGuard no_grad;

    // 1. Dense pass: reference hidden states, the method's error on each layer's dense Q/K/V, and
    //    (for dense) the attention maps' spectra.
    std::vector<double> err_sq(static_cast<size_t>(L), 0.0), ref_sq(static_cast<size_t>(L), 0.0);
    std::vector<EncoderOutput> dense_outputs;
    at::Tensor rank90_LH = at::zeros({L, H}, at::kDouble), top90_LH = at::zeros({L, H}, at::kDouble);
    std::vector<at::Tensor> first_window_spectra(static_cast<size_t>(L));
    int64_t windows_seen = 0, svd_windows_done = 0;
    auto teacher_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    for (const TokenBatch& batch : text.batches) {
      const int64_t B = batch.ids_BN.size(0);
      const int64_t svd_here = std::clamp<int64_t>(eval.svd_windows - windows_seen, 0, B);
      EncoderForwardOptions options;
      options.all_hidden_states = true;
      options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput& dense_out) {
        const at::Tensor rows = in.query_keep_BN->view({B, 1, -1, 1});
        const at::Tensor reference = dense_out.out_BHNE.to(at::kDouble);
        ref_sq[static_cast<size_t>(layer)] += at::where(rows, reference.square(), 0.0).sum().item<double>();
        if (!is_dense && method_layers.count(layer)) {
          const at::Tensor approx = method->forward(in, teacher_gen).out_BHNE.to(at::kDouble);
          err_sq[static_cast<size_t>(layer)] += at::where(rows, (approx - reference).square(), 0.0).sum().item<double>();
        }
        if (!is_dense) return;
        for (int64_t w = 0; w < svd_here; ++w) {
          const int64_t n_real = in.query_keep_BN->select(0, w).sum().item<int64_t>();
          const MapStatistics s = attention_map_statistics(in, w, n_real);
          rank90_LH[layer] += s.rank90_H;
          top90_LH[layer] += s.top90_H;
          if (windows_seen + w == 0)
            first_window_spectra[static_cast<size_t>(layer)] =
                s.singular_values_HK / s.singular_values_HK.select(1, 0).unsqueeze(1);
        }
      };
      dense_outputs.push_back(encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, teacher_gen, options));
      windows_seen += B;
      svd_windows_done += svd_here;
    }

    // 2. The method in the model, timed over every window.
    encoder->set_attention(method, layers);
    std::vector<EncoderOutput> outputs;
    std::vector<double> seconds;
    for (int64_t i = 0; i < eval.warmup; ++i) {
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
      for (const TokenBatch& batch : text.batches) encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen);
    }
    const bool peak_reset = reset_peak_rss();
    const ProcessMemory before = read_process_memory();
    for (int64_t i = 0; i < eval.repeats; ++i) {
      outputs.clear();
      auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);  // the same draws on every repeat
      const auto t0 = std::chrono::steady_clock::now();
      for (const TokenBatch& batch : text.batches)
        outputs.push_back(encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen, {true, {}}));
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const ProcessMemory after = read_process_memory();
    std::sort(seconds.begin(), seconds.end());

    // 3. Compare with dense at real tokens.
    std::vector<double> hidden_err_sq(static_cast<size_t>(L + 1), 0.0), hidden_ref_sq(static_cast<size_t>(L + 1), 0.0);
    double cosine_sum = 0;
    int64_t tokens = 0;
    std::vector<at::Tensor> embedding_cosines;
    for (size_t b = 0; b < text.batches.size(); ++b) {
      // Padded positions are selected away (at::where), never multiplied by 0: nothing there can leak.
      const at::Tensor keep_BN = text.batches[b].keep_BN, keep = keep_BN.unsqueeze(-1);
      for (int64_t l = 0; l <= L; ++l) {
        const at::Tensor h = outputs[b].hidden_states[static_cast<size_t>(l)].to(at::kDouble);
        const at::Tensor ref = dense_outputs[b].hidden_states[static_cast<size_t>(l)].to(at::kDouble);
        hidden_err_sq[static_cast<size_t>(l)] += at::where(keep, (h - ref).square(), 0.0).sum().item<double>();
        hidden_ref_sq[static_cast<size_t>(l)] += at::where(keep, ref.square(), 0.0).sum().item<double>();
      }
      const at::Tensor h = at::where(keep, outputs[b].hidden_BNC.to(at::kDouble), 0.0);
      const at::Tensor ref = at::where(keep, dense_outputs[b].hidden_BNC.to(at::kDouble), 0.0);
      cosine_sum += at::where(keep_BN, at::cosine_similarity(h, ref, -1), 0.0).sum().item<double>();
      tokens += text.batches[b].real_tokens();
      const at::Tensor count = keep_BN.sum(1, /*keepdim=*/true).to(at::kDouble);
      embedding_cosines.push_back(at::cosine_similarity(h.sum(1) / count, ref.sum(1) / count, -1));
    }
    const at::Tensor embedding_cosine = at::cat(embedding_cosines);

    RunResult result;
    at::Tensor attention_error_L = at::zeros({L}, at::kDouble);
    double attention_error_sum = 0, attention_error_max = 0;
    for (int64_t l : method_layers) {
      const double e = std::sqrt(err_sq[static_cast<size_t>(l)] / std::max(ref_sq[static_cast<size_t>(l)], 1e-300));
      attention_error_L[l] = e;
      attention_error_sum += e;
      attention_error_max = std::max(attention_error_max, e);
    }
    at::Tensor hidden_error_L = at::zeros({L + 1}, at::kDouble);
    for (int64_t l = 0; l <= L; ++l)
      hidden_error_L[l] = std::sqrt(hidden_err_sq[static_cast<size_t>(l)] /
                                    std::max(hidden_ref_sq[static_cast<size_t>(l)], 1e-300));
    double fraction_sum = 0;
    for (int64_t l = 0; l < L; ++l) fraction_sum += method_layers.count(l) ? method->cost(shape).memory_fraction : 1.0;

    result.metrics["attention_rel_error_mean"] = {attention_error_sum / static_cast<double>(method_layers.size()), "1", false};
    result.metrics["attention_rel_error_max"] = {attention_error_max, "1", false};
    result.metrics["hidden_rel_error_final"] = {hidden_error_L[L].item<double>(), "1", false};
    result.metrics["final_hidden_cosine"] = {cosine_sum / static_cast<double>(tokens), "1", true};
    result.metrics["embedding_cosine_mean"] = {embedding_cosine.mean().item<double>(), "1", true};
    result.metrics["embedding_cosine_min"] = {embedding_cosine.min().item<double>(), "1", true};
    result.metrics["memory_fraction"] = {fraction_sum / static_cast<double>(L), "fraction", false};
    result.metrics["forward_time_s"] = {seconds[seconds.size() / 2], "s", false};
    result.metrics["tokens_per_s"] = {static_cast<double>(tokens) / seconds[seconds.size() / 2], "1/s", true};
    result.metrics["peak_rss_bytes"] = {static_cast<double>(after.peak_rss_bytes), "bytes", false};
    result.metrics["peak_rss_delta_bytes"] = {
        peak_reset ? static_cast<double>(after.peak_rss_bytes - before.rss_bytes) : std::nan(""), "bytes", false};
    result.metrics["windows"] = {static_cast<double>(text.windows.size()), "count", false};
    result.metrics["tokens"] = {static_cast<double>(tokens), "count", false};
    result.metrics["window_tokens"] = {static_cast<double>(text.window_tokens), "count", false};
    result.metrics["threads"] = {static_cast<double>(at::get_num_threads()), "count", false};
    add_budget_metrics(budget, result);
    result.tensors["attention_rel_error_L"] = named_array(attention_error_L);
    result.tensors["hidden_rel_error_L"] = named_array(hidden_error_L);
    result.tensors["embedding_cosine_W"] = named_array(embedding_cosine);
    if (is_dense && svd_windows_done > 0) {
      rank90_LH /= static_cast<double>(svd_windows_done);
      top90_LH /= static_cast<double>(svd_windows_done);
      result.metrics["attention_rank90_fraction"] = {rank90_LH.mean().item<double>(), "fraction", false};
      result.metrics["attention_top90_fraction"] = {top90_LH.mean().item<double>(), "fraction", false};
      result.tensors["attention_rank90_fraction_LH"] = named_array(rank90_LH);
      result.tensors["attention_top90_fraction_LH"] = named_array(top90_LH);
      result.tensors["attention_singular_values_LHK"] = named_array(at::stack(first_window_spectra));
    }
    return result;
  }
};

}  // namespace

const Pipeline& pretrained_dropin_pipeline() {
  static const PretrainedDropinPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
