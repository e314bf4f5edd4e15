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
#include "experiments/config.h"
#include "experiments/pipelines/pipeline.h"
#include "experiments/pipelines/pretrained_text.h"

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

void write_tensor(H5File& file, const std::string& path, const at::Tensor& t) {
  const at::Tensor x = t.detach().to(at::kFloat).contiguous();
  file.write_array(path, std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel()), x.sizes().vec());
}

class CapturePipeline : public Pipeline {
 public:
  std::string name() const override { return "capture"; }

  void validate(const nlohmann::json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"train", "eval"});
    // One config writes one captured file; sweep points would overwrite each other's.
    if (ctx.run_id != kUnsweptRunId)
      throw ConfigError(fmt::format("config '{}': the capture pipeline writes one captured file per config, so it "
                                    "cannot be swept (run '{}'); write one config per capture", ctx.source, ctx.run_id));
    const auto model = PretrainedModelSection::from_json(config, ctx.source);
    const auto data = TextDataSection::from_json(config, ctx.source);
    captured_qkv_path(config, ctx.source);
    make_attention(config.value("attention", nlohmann::json{{"method", "dense"}}), "attention", ctx.source);
    validate_pretrained_text(model, data, ctx.source);
  }

  RunResult run(const nlohmann::json& config, const RunContext& ctx) const override {
    apply_thread_setting(config);
    const auto model_section = PretrainedModelSection::from_json(config, ctx.source);
    const auto data = TextDataSection::from_json(config, ctx.source);
    const std::string out_path = captured_qkv_path(config, ctx.source);
    PretrainedText text = load_pretrained_text(model_section, data, ctx.source);
    const nlohmann::json attention = config.value("attention", nlohmann::json{{"method", "dense"}});
    text.model.encoder->set_attention(make_attention(attention, "attention", ctx.source),
                                      model_section.attention_layers);
    if (const auto parent = std::filesystem::path(out_path).parent_path(); !parent.empty())
      std::filesystem::create_directories(parent);
    // Written under a temporary name and renamed when complete: a killed run leaves no file that
    // looks finished.
    const std::string partial = out_path + ".partial";
    H5File file = H5File::create(partial);
    file.set_attr("/", "format", "smyrf-captured-qkv");
    file.set_attr("/", "model_path", model_section.path);
    file.set_attr("/", "windows", static_cast<int64_t>(text.windows.size()));
    file.set_attr("/", "window_tokens", text.window_tokens);

    at::NoGradGuard no_grad;
    auto gen = at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(config.value("seed", int64_t{0})));
    const auto t0 = std::chrono::steady_clock::now();
    int64_t groups = 0, tokens = 0;
    for (size_t b = 0; b < text.batches.size(); ++b) {
      const TokenBatch& batch = text.batches[b];
      EncoderForwardOptions options;
      options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput&) {
        const std::string group = fmt::format("/layer_{:02}_batch_{}", layer, b);
        file.create_groups(group);
        write_tensor(file, group + "/q", in.q_BHND);
        write_tensor(file, group + "/k", in.k_BHMD);
        write_tensor(file, group + "/v", in.v_BHME);
        write_tensor(file, group + "/key_keep", in.key_keep_BM->to(at::kFloat));
        write_tensor(file, group + "/query_keep", in.query_keep_BN->to(at::kFloat));
        write_tensor(file, group + "/ids", batch.ids_BN.to(at::kFloat));
        file.set_attr(group, "scale", in.scale);
        file.set_attr(group, "causal", static_cast<int64_t>(0));
        file.set_attr(group, "layer", layer);
        file.set_attr(group, "batch", static_cast<int64_t>(b));
        ++groups;
      };
      text.model.encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, gen, options);
      tokens += batch.real_tokens();
    }
    file.close();
    std::filesystem::rename(partial, out_path);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    RunResult result;
    result.metrics["layers"] = {static_cast<double>(text.model.config.num_hidden_layers), "count", false};
    result.metrics["windows"] = {static_cast<double>(text.windows.size()), "count", false};
    result.metrics["tokens"] = {static_cast<double>(tokens), "count", false};
    result.metrics["groups"] = {static_cast<double>(groups), "count", false};
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
