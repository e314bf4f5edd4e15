// biggan_pretrained: a pretrained BigGAN generator (BigGAN-PyTorch's ImageNet-128 checkpoint after
// scripts/convert_biggan_pytorch.py) sampled with another attention method swapped into its
// attention block, no retraining: the SMYRF paper's memory/quality figure. Each run (one memory
// level; sweep attention.memory_budget) draws the same latents and classes, so runs differ only by
// the attention. The figure is drawn from the runs by scripts/plot_biggan_memory_grid.py.
//
// Shape legend: K figure classes, A image side (resolution), Z dim_z. samples_K3AA in [-1, 1].
//   "model":     {"dir": DIR}: biggan.json + generator.safetensors (scripts/convert_biggan_pytorch.py)
//   "attention": G's method (default dense), memory_budget resolved at G's attention shape
//   "eval":      classes [933, 250, 14, 153] (cheeseburger, Siberian husky, indigo bunting, Maltese:
//                the figure's rows), truncation [2.0] (z clamped to [-t, t], as the reference sampler
//                does: a clamp, not resampling), plus image quality (ImageQualityOptions: inception_weights, samples, reference_stats, ...)
//                on `samples` images of random classes; FID needs reference_stats for the real data, and
//                KID is unavailable (it needs the real features). G runs in eval mode (stored BN statistics).
// Outputs: <samples>/<run_id>.png (the classes side by side), tensor `samples` [K, 3, R, R]
// (float32) for the figure, metrics memory_fraction, g_forward_s (one batch of K, median of 3),
// peak memory, inception_score / fid / kid or notes saying why they are unavailable.
// Tested by tests/test_celeba_biggan.cpp on a converted random-weights checkpoint.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <filesystem>

#include "core/util/check.h"
#include "experiments/engines/biggan_common.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct SamplingOptions {
  std::vector<int64_t> classes{933, 250, 14, 153};
  double truncation = 2.0;
  ImageQualityOptions quality;

  static SamplingOptions from_json(const json& config, const BigGanConfig& model, const std::string& source) {
    SamplingOptions o;
    o.quality.samples = 1000;
    JsonReader r(config.value("eval", json::object()), "eval", source);
    r.get("classes", o.classes).get("truncation", o.truncation);
    o.quality.read(r);
    r.finish();
    if (o.classes.empty()) throw ConfigError(fmt::format("config '{}': 'eval.classes' is empty; list class ids", source));
    for (int64_t c : o.classes)
      if (c < 0 || c >= model.n_classes)
        throw ConfigError(fmt::format("config '{}': 'eval.classes' holds {}, outside the model's {} classes", source, c,
                                      model.n_classes));
    if (o.truncation <= 0)
      throw ConfigError(fmt::format("config '{}': 'eval.truncation' is {}; it must be > 0", source, o.truncation));
    return o;
  }
};

struct SamplingPlan : RunPlan {
  BigGanModelSection model;
  SamplingOptions options;
  json attention;
  at::Device device = at::Device(at::kCPU);
  uint64_t seed = 0;
  std::string samples_dir;
};

class BigGanPretrainedPipeline : public TypedPipeline<SamplingPlan> {
 public:
  std::string name() const override { return "biggan_pretrained"; }

 protected:
  SamplingPlan make_plan(const json& config, const RunContext& ctx) const override {
    reject_sections(config, ctx.source, name(), {"data", "train"});
    SamplingPlan plan;
    plan.model = BigGanModelSection::from_json(config, ctx.source, /*allow_dir=*/true);
    if (plan.model.dir.empty())
      throw ConfigError(fmt::format("config '{}': 'model.dir' is required: a folder with biggan.json and "
                                    "generator.safetensors (scripts/convert_biggan_pytorch.py)", ctx.source));
    plan.options = SamplingOptions::from_json(config, plan.model.config, ctx.source);
    plan.attention = config.value("attention", json());
    build_generator_attention(plan.attention, plan.model.config, ctx.source);
    plan.device = training_device(config, ctx.source, /*require_available=*/false);
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    plan.samples_dir = output_sibling(config, ctx, "samples");
    return plan;
  }

  RunResult run_plan(const SamplingPlan& plan, const RunContext& ctx) const override {
    const BigGanModelSection& model = plan.model;
    const BigGanConfig& mc = model.config;
    const SamplingOptions& options = plan.options;
    const GeneratorAttention attention = build_generator_attention(plan.attention, mc, ctx.source);
    const at::Device device = plan.device;
    require_device_available(device, ctx.source);
    const uint64_t seed = plan.seed;

    BigGanGenerator g(mc);
    load_module_state(*g, model.generator_weights());
    if (g->attention()) g->attention()->set_method(attention.method);
    g->to(device);
    g->eval();
    at::NoGradGuard no_grad;

    // The figure: one latent per class, the same in every run of the sweep.
    const int64_t k = static_cast<int64_t>(options.classes.size());
    at::Generator latent_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 13);
    const at::Tensor z_KZ = at::randn({k, mc.dim_z}, latent_gen).clamp(-options.truncation, options.truncation);
    const at::Tensor y_K = at::tensor(options.classes, at::kLong);
    PeakMemoryWindow memory(device);
    at::Tensor samples_K3AA;
    std::vector<double> seconds;
    for (int repeat = 0; repeat < 3; ++repeat) {  // same attention draws each time: identical samples
      at::Generator attention_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 14);
      const auto t0 = std::chrono::steady_clock::now();
      samples_K3AA = g->forward(z_KZ.to(device), y_K.to(device), attention_gen).to(at::kCPU);
      seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(seconds.begin(), seconds.end());
    memory.close();

    RunResult result;
    const fs::path png = fs::path(plan.samples_dir) / (ctx.run_id + ".png");
    write_image_grid(png.string(), samples_K3AA, k);
    result.notes["samples"] = png.string();
    result.tensors["samples"] = named_array_of(samples_K3AA, /*store_float32=*/true);
    result.tensors["classes"] = {std::vector<double>(options.classes.begin(), options.classes.end()), {k}, false};
    result.metrics["memory_fraction"] = {attention.memory_fraction, "fraction", false};
    result.metrics["g_forward_s"] = {seconds[1], "s", false};
    memory.add_metrics(result);
    if (!attention.budget.knob.empty()) add_budget_metrics(attention.budget, result);

    // Quality over random classes with their own generators (independent of the figure's draws).
    at::Generator quality_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 15);
    at::Generator quality_attention_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 16);
    const ImageSource generated = [&](int64_t, int64_t count) {
      const at::Tensor z =
          at::randn({count, mc.dim_z}, quality_gen).clamp(-options.truncation, options.truncation).to(device);
      const at::Tensor y = at::randint(mc.n_classes, {count}, quality_gen).to(device);
      return g->forward(z, y, quality_attention_gen);
    };
    add_image_quality(result, options.quality, generated, /*reference_01=*/nullptr, 0, "", device,
                      [&](const std::string& note, int64_t done, int64_t total) {
                        if (ctx.progress) ctx.progress(done, total, note);
                      });
    return result;
  }
};

}  // namespace

const Pipeline& biggan_pretrained_pipeline() {
  static const BigGanPretrainedPipeline pipeline;
  return pipeline;
}

}  // namespace smyrf
