// capture: runs a pretrained encoder over real text and writes every layer's Q, K, V and padding
// masks into a captured-QKV HDF5 file (results/README.md), so that attention_fidelity can measure
// every method on real attention. Config sections: model and data as in pretrained_text.h,
// attention (what the encoder runs while capturing; default dense), output.captured_qkv (the file
// to write; required). Groups: `layer_LL_batch_B` (e.g. layer_03_batch_0) with q [B,H,N,D],
// k [B,H,N,D], v [B,H,N,D] (float32), key_keep and query_keep [B,N], ids [B,N], attributes
// scale, causal = 0, layer, batch. Root attributes: format, model_path, windows, window_tokens.
// Metrics: layers, windows, tokens, groups, captured_bytes, wall_time_s. One config is one capture
// (no sweep); a re-run into the same results file skips it like any complete run.
// Tested by tests/test_pretrained.cpp (the captured inputs reproduce the encoder's attention; the
// fidelity pipeline reads the file).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>

#include "core/attention/registry.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/json_options.h"
#include "experiments/runner/config.h"
#include "experiments/io/captured_qkv.h"
#include "experiments/runner/pipeline.h"
#include "experiments/engines/pretrained_text.h"

namespace smyrf {
namespace {

std::string captured_qkv_path(const nlohmann::json& config, const std::string& source) {
  JsonReader r(config.value("output", nlohmann::json::object()), "output", source);
  std::string results, captured;
  r.get("path", results).require("captured_qkv", captured);
  r.finish();
  if (captured == results)
    throw ConfigError(fmt::format("config '{}': 'output.captured_qkv' must differ from 'output.path' (the results file)",
                                  source));
  return captured;
}

struct CapturePlan : RunPlan {
  PretrainedModelSection model;
  TextDataSection data;
  nlohmann::json attention;  // what the encoder runs while capturing
  std::string captured_path;
  uint64_t seed = 0;
};

class CapturePipeline : public TypedPipeline<CapturePlan> {
 public:
  std::string name() const override { return "capture"; }

 protected:
  CapturePlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"train", "eval"});
    // One config writes one captured file; sweep points would overwrite each other's.
    if (ctx.run_id != kUnsweptRunId)
      throw ConfigError(fmt::format("config '{}': the capture pipeline writes one captured file per config, so it "
                                    "cannot be swept (run '{}'); write one config per capture", ctx.source, ctx.run_id));
    CapturePlan plan;
    plan.model = PretrainedModelSection::from_json(config, ctx.source);
    plan.data = TextDataSection::from_json(config, ctx.source);
    plan.captured_path = captured_qkv_path(config, ctx.source);
    plan.attention = config.value("attention", nlohmann::json{{"method", "dense"}});
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    make_attention(plan.attention, "attention", ctx.source);
    validate_pretrained_text(plan.model, plan.data, ctx.source);
    return plan;
  }

  RunResult run_plan(const CapturePlan& plan, const RunContext& ctx) const override {
    const PretrainedModelSection& model_section = plan.model;
    const std::string& out_path = plan.captured_path;
    PretrainedText text = load_pretrained_text(model_section, plan.data, ctx.source);
    text.model.encoder->set_attention(make_attention(plan.attention, "attention", ctx.source),
                                      model_section.attention_layers);
    CapturedQkvWriter file(out_path, {{"model_path", model_section.path}},
                           {{"windows", static_cast<int64_t>(text.windows.size())}, {"window_tokens", text.window_tokens}});
    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t tokens = 0;
    for (size_t b = 0; b < text.batches.size(); ++b) {
      const TokenBatch& batch = text.batches[b];
      EncoderForwardOptions options;
      options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput&) {
        file.add_group(fmt::format("/layer_{:02}_batch_{}", layer, b), in, batch.ids_BN, layer, static_cast<int64_t>(b));
      };
      text.model.encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen, options);
      tokens += batch.real_tokens();
    }
    file.commit();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    RunResult result;
    result.metrics["layers"] = {static_cast<double>(text.model.config.num_hidden_layers), "count", false};
    result.metrics["windows"] = {static_cast<double>(text.windows.size()), "count", false};
    result.metrics["tokens"] = {static_cast<double>(tokens), "count", false};
    result.metrics["groups"] = {static_cast<double>(file.groups()), "count", false};
    result.metrics["captured_bytes"] = {static_cast<double>(std::filesystem::file_size(out_path)), "bytes", false};
    result.metrics["wall_time_s"] = {seconds, "s", false};
    return result;
  }
};

}  // namespace

const Pipeline& capture_pipeline() {
  static const CapturePipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
