// celeba_biggan: trains BigGAN (core/models/biggan.h) on an image folder (CelebA-HQ as
// distributed, datasets/image_folder.h) with any attention method in G's attention block, as the
// SMYRF paper's CelebA-HQ experiment: hinge loss, Adam(β1 0, β2 0.999), separate G and D learning
// rates, d_steps D steps per G step, optional EMA of G, bf16 autocast where asked.
//
// Shape legend: B batch, Z dim_z, A image side (resolution). real_B3AA / fake_B3AA in [-1, 1]; y_B int64.
//   "model":     BigGAN architecture (biggan_common.h)
//   "attention": G's attention method (default dense; memory_budget resolved at g_attn²)
//   "data":      image folder keys (path, on_bad_image, max_images, center_crop; resolution defaults
//                to model.resolution and must equal it), flip [true] (random horizontal flips)
//   "train":     iterations [120000] (G steps), batch [32], d_steps [2], g_lr [5e-5], d_lr [2e-4],
//                adam_betas [0, 0.999], adam_eps [1e-6], ema [false], ema_decay [0.9999], ema_start
//                [0] (G steps before averaging starts; copies until then), precision ["fp32" | "bf16"],
//                log_every [10], checkpoint_every [1000] (G steps; 0 = end only), keep_checkpoint [false],
//                sample_every [1000] (G steps; 0 = end only), sample_count [16] (grid images; fixed latents)
//   "eval":      image quality (ImageQualityOptions: inception_weights, samples, reference_stats, ...)
//                computed at the end with G_ema when ema, else G, in eval mode
//   "output":    checkpoints / samples / models folders [<output without .h5>.checkpoints / .samples /
//                .models]
// Sample grids: <samples>/<run_id>/step_<G step>.png (ceil(sqrt(sample_count)) per row), the last one
// also as final.png. The trained model: <models>/<run_id>/ (biggan.json, generator.safetensors —
// G_ema when kept, else G — and discriminator.safetensors), which biggan_pretrained loads.
// Curves: step, g_loss, d_loss_real, d_loss_fake (means over log_every G steps), step_time_s.
// Metrics: the final window's losses, train_time_s, g_steps_per_s, images_per_s (real images seen by
// D), memory_fraction of G's attention, peak memory, resumed_from_step, and the image-quality
// metrics or their notes.
// Training runs in the shared engine (experiments/engines/training_loop.h), which owns resume,
// checkpoints (G, D, G_ema, both Adam states, generator states, data position), curves and the
// memory window; a resumed run gives the result of an uninterrupted one (on the CPU; cuDNN's
// convolution backward is not deterministic). This file supplies the GAN step (GanTask).
// Tested by tests/test_celeba_biggan.cpp.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "datasets/image_folder.h"
#include "experiments/engines/biggan_common.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/engines/training_loop.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

enum class TrainPrecision { kFp32, kBf16 };
const EnumNames<TrainPrecision> kPrecisionNames = {{"fp32", TrainPrecision::kFp32}, {"bf16", TrainPrecision::kBf16}};

struct GanTrainOptions {
  int64_t iterations = 120000;
  int64_t batch = 32;
  int64_t d_steps = 2;
  double g_lr = 5e-5, d_lr = 2e-4;
  std::vector<double> adam_betas{0.0, 0.999};
  double adam_eps = 1e-6;
  bool ema = false;
  double ema_decay = 0.9999;
  int64_t ema_start = 0;
  TrainPrecision precision = TrainPrecision::kFp32;
  int64_t log_every = 10, checkpoint_every = 1000, sample_every = 1000, sample_count = 16;
  bool keep_checkpoint = false;

  static GanTrainOptions from_json(const json& config, const std::string& source) {
    GanTrainOptions t;
    JsonReader r(config.value("train", json::object()), "train", source);
    r.get("iterations", t.iterations)
        .get("batch", t.batch)
        .get("d_steps", t.d_steps)
        .get("g_lr", t.g_lr)
        .get("d_lr", t.d_lr)
        .get("adam_betas", t.adam_betas)
        .get("adam_eps", t.adam_eps)
        .get("ema", t.ema)
        .get("ema_decay", t.ema_decay)
        .get("ema_start", t.ema_start)
        .get_enum("precision", t.precision, kPrecisionNames)
        .get("log_every", t.log_every)
        .get("checkpoint_every", t.checkpoint_every)
        .get("keep_checkpoint", t.keep_checkpoint)
        .get("sample_every", t.sample_every)
        .get("sample_count", t.sample_count);
    r.finish();
    auto fail = [&](const std::string& what) { throw ConfigError(fmt::format("config '{}': 'train.{}", source, what)); };
    if (t.iterations < 1) fail(fmt::format("iterations' is {}; it must be >= 1", t.iterations));
    if (t.batch < 1) fail(fmt::format("batch' is {}; it must be >= 1", t.batch));
    if (t.d_steps < 1) fail(fmt::format("d_steps' is {}; it must be >= 1", t.d_steps));
    if (t.g_lr <= 0 || t.d_lr <= 0) fail("g_lr' and 'd_lr' must be > 0");
    if (t.adam_betas.size() != 2 || t.adam_betas[0] < 0 || t.adam_betas[0] >= 1 || t.adam_betas[1] < 0 ||
        t.adam_betas[1] >= 1)
      fail("adam_betas' must be two numbers in [0, 1), e.g. [0, 0.999]");
    if (t.ema_decay <= 0 || t.ema_decay >= 1) fail(fmt::format("ema_decay' is {}; it must be in (0, 1)", t.ema_decay));
    if (t.log_every < 1) fail(fmt::format("log_every' is {}; it must be >= 1", t.log_every));
    if (t.checkpoint_every < 0 || t.sample_every < 0 || t.ema_start < 0)
      fail("checkpoint_every', 'sample_every' and 'ema_start' must be >= 0");
    if (t.sample_count < 1) fail(fmt::format("sample_count' is {}; it must be >= 1", t.sample_count));
    return t;
  }
};

struct GanData {
  ImageFolderOptions folder;
  bool flip = true;
  static GanData from_json(const json& config, const BigGanConfig& model, const std::string& source) {
    GanData d;
    json section = config.value("data", json::object());
    if (!section.is_object())
      throw ConfigError(fmt::format("config '{}': 'data' must be an object with 'path'", source));
    if (section.contains("resolution") && section["resolution"] != model.resolution)
      throw ConfigError(fmt::format("config '{}': 'data.resolution' is {} but model.resolution is {}; drop "
                                    "data.resolution (images are resized to the model's)",
                                    source, section["resolution"].dump(), model.resolution));
    section["resolution"] = model.resolution;
    JsonReader r(section, "data", source);
    r.get("flip", d.flip);
    d.folder = ImageFolderOptions::from_json(r);  // finishes the reader
    if (model.n_classes != 1)
      throw ConfigError(fmt::format("config '{}': an image folder has no class labels, so 'model.n_classes' must be 1 "
                                    "(it is {})", source, model.n_classes));
    return d;
  }
};

struct EvalSection {
  ImageQualityOptions quality;
  static EvalSection from_json(const json& config, const std::string& source) {
    EvalSection e;
    JsonReader r(config.value("eval", json::object()), "eval", source);
    e.quality.read(r);
    r.finish();
    return e;
  }
};

struct GanPlan : RunPlan {
  BigGanModelSection model;
  GanData data;
  GanTrainOptions train;
  EvalSection eval;
  json attention;
  at::Device device = at::Device(at::kCPU);
  uint64_t seed = 0;
  fs::path run_dir, samples_dir, model_dir;  // checkpoints, sample grids, the exported generator
  json identity;                              // what a resumable checkpoint must have been made by
};

class CelebaBigGanPipeline : public TypedPipeline<GanPlan> {
 public:
  std::string name() const override { return "celeba_biggan"; }
  bool checkpoints() const override { return true; }

 protected:
  GanPlan make_plan(const json& config, const RunContext& ctx) const override {
    GanPlan plan;
    plan.model = BigGanModelSection::from_json(config, ctx.source, /*allow_dir=*/false);
    plan.data = GanData::from_json(config, plan.model.config, ctx.source);
    plan.train = GanTrainOptions::from_json(config, ctx.source);
    plan.eval = EvalSection::from_json(config, ctx.source);
    plan.attention = config.value("attention", json());
    build_generator_attention(plan.attention, plan.model.config, ctx.source);
    plan.run_dir = fs::path(checkpoints_root(config, ctx)) / ctx.run_id;
    plan.samples_dir = fs::path(output_sibling(config, ctx, "samples")) / ctx.run_id;
    plan.model_dir = fs::path(output_sibling(config, ctx, "models")) / ctx.run_id;
    plan.device = training_device(config, ctx.source, /*require_available=*/false);
    plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
    plan.identity = run_identity(config);
    if (!fs::is_directory(plan.data.folder.path))
      throw IoError(fmt::format("config '{}': 'data.path' is '{}', which is not a folder; see scripts/fetch_celebahq.md "
                                "for how to get CelebA-HQ", ctx.source, plan.data.folder.path));
    return plan;
  }

  RunResult run_plan(const GanPlan& plan, const RunContext& ctx) const override;
};

// The epoch's image order and flips depend only on (seed, epoch): the data position is two numbers.
struct EpochPlan {
  std::vector<int64_t> order;
  std::vector<bool> flips;
};
EpochPlan plan_epoch(int64_t n, uint64_t seed, int64_t epoch, bool flip) {
  EpochPlan plan;
  plan.order.resize(n);
  std::iota(plan.order.begin(), plan.order.end(), 0);
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  std::shuffle(plan.order.begin(), plan.order.end(), rng);
  plan.flips.resize(n);
  for (int64_t i = 0; i < n; ++i) plan.flips[i] = flip && (rng() & 1);
  return plan;
}

void set_requires_grad(torch::nn::Module& module, bool on) {
  for (auto& p : module.parameters()) p.set_requires_grad(on);
}

void ema_update(torch::nn::Module& ema, torch::nn::Module& source, double decay) {
  at::NoGradGuard no_grad;
  auto ema_params = ema.named_parameters();
  for (const auto& item : source.named_parameters()) {
    at::Tensor target = ema_params[item.key()];
    if (decay == 0) {
      target.copy_(item.value());
    } else {
      target.mul_(decay).add_(item.value(), 1 - decay);
    }
  }
  // Buffers (BN statistics, spectral-norm vectors) are copied, not averaged.
  auto ema_buffers = ema.named_buffers();
  for (const auto& item : source.named_buffers()) ema_buffers[item.key()].copy_(item.value());
}

torch::optim::Adam make_adam(torch::nn::Module& module, double lr, const GanTrainOptions& train) {
  return torch::optim::Adam(module.parameters(), torch::optim::AdamOptions(lr)
                                                     .betas({train.adam_betas[0], train.adam_betas[1]})
                                                     .eps(train.adam_eps)
                                                     .weight_decay(0));
}

// The three networks, seeded: the same seed gives the same initial weights.
struct GanNetworks {
  BigGanGenerator g{nullptr};
  BigGanDiscriminator d{nullptr};
  BigGanGenerator g_ema{nullptr};  // only with train.ema
  GanNetworks(const GanPlan& plan, const GeneratorAttention& attention) {
    const BigGanConfig& mc = plan.model.config;
    torch::manual_seed(plan.seed);
    g = BigGanGenerator(mc);
    d = BigGanDiscriminator(mc);
    if (plan.train.ema) {
      g_ema = BigGanGenerator(mc);
      ema_update(*g_ema, *g, 0.0);
    }
    if (g->attention()) g->attention()->set_method(attention.method);
    if (g_ema && g_ema->attention()) g_ema->attention()->set_method(attention.method);
    g->to(plan.device);
    d->to(plan.device);
    if (g_ema) g_ema->to(plan.device);
  }
  BigGanGenerator& sampler() { return g_ema ? g_ema : g; }  // what samples, is exported and is scored
};

// BigGAN training as a TrainingTask: one optimizer step is d_steps D steps then one G step (hinge
// loss), so the engine's step count is the G step count; sample grids after sample_every G steps.
class GanTask : public TrainingTask {
 public:
  GanTask(const GanPlan& plan, GanNetworks& nets, const at::Tensor& pixels_BAA3)
      : plan_(plan), train_(plan.train), mc_(plan.model.config), nets_(nets), pixels_NRR3_(pixels_BAA3),
        g_opt_(make_adam(*nets.g, train_.g_lr, train_)), d_opt_(make_adam(*nets.d, train_.d_lr, train_)),
        latent_gen_(at::make_generator<at::CPUGeneratorImpl>(plan.seed + 11)),
        attention_gen_(at::make_generator<at::CPUGeneratorImpl>(plan.seed + 12)),
        epoch_plan_(plan_epoch(pixels_BAA3.size(0), plan.seed, 0, plan.data.flip)),
        y_real_(at::zeros({train_.batch}, at::kLong).to(plan.device)) {
    at::Generator fixed_gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed + 13);
    z_fixed_ = at::randn({train_.sample_count, mc_.dim_z}, fixed_gen);  // a function of the seed only
    y_fixed_ = at::arange(train_.sample_count, at::kLong) % mc_.n_classes;
    nets_.g->train();
    nets_.d->train();
  }

  TrainingSchedule schedule() const {
    TrainingSchedule schedule;
    schedule.total_steps = train_.iterations;
    schedule.log_every = train_.log_every;
    schedule.checkpoint_every = train_.checkpoint_every;
    schedule.checkpoint_at_end = train_.keep_checkpoint;
    schedule.step_curve = "step";
    schedule.step_time_curve = true;
    schedule.device = plan_.device;
    return schedule;
  }

  MicroBatchLog accumulate(int64_t step) override {
    double loss_real = 0, loss_fake = 0;
    set_requires_grad(*nets_.d, true);
    for (int64_t k = 0; k < train_.d_steps; ++k) {
      const auto [real, fake] = d_step();
      loss_real += real / static_cast<double>(train_.d_steps);
      loss_fake += fake / static_cast<double>(train_.d_steps);
    }
    // G step: D's weights are constants here.
    set_requires_grad(*nets_.d, false);
    g_opt_.zero_grad();
    const at::Tensor z = at::randn({train_.batch, mc_.dim_z}, latent_gen_).to(plan_.device);
    const at::Tensor y_fake = at::randint(mc_.n_classes, {train_.batch}, latent_gen_).to(plan_.device);
    at::Tensor g_loss;
    {
      const AutocastScope autocast(plan_.device.type(), /*enabled=*/bf16());
      g_loss = -nets_.d->forward(nets_.g->forward(z, y_fake, attention_gen_), y_fake, attention_gen_).to(at::kFloat).mean();
    }
    g_loss.backward();
    const double g_loss_value = g_loss.item<double>();
    if (!std::isfinite(g_loss_value) || !std::isfinite(loss_real) || !std::isfinite(loss_fake))
      throw Error(fmt::format("BigGAN training diverged at G step {}: g_loss {}, d_loss_real {}, d_loss_fake {}; lower "
                              "train.g_lr / train.d_lr", step + 1, g_loss_value, loss_real, loss_fake));
    return {{{"g_loss", g_loss_value}, {"d_loss_real", loss_real}, {"d_loss_fake", loss_fake}}, false};
  }

  NamedValues optimizer_step(int64_t step) override {
    g_opt_.step();
    if (nets_.g_ema) ema_update(*nets_.g_ema, *nets_.g, step + 1 > train_.ema_start ? train_.ema_decay : 0.0);
    return {};
  }

  std::string progress_label() const override { return "G steps"; }

  bool after_step(int64_t steps_done, bool, Curves&) override {
    if (train_.sample_every > 0 && steps_done % train_.sample_every == 0)
      write_samples(fmt::format("step_{:06d}.png", steps_done));
    return false;
  }

  void finish(int64_t steps_done, Curves&) override {
    set_requires_grad(*nets_.d, true);
    const std::string last = fmt::format("step_{:06d}.png", steps_done);
    write_samples(last);
    fs::copy_file(plan_.samples_dir / last, plan_.samples_dir / "final.png", fs::copy_options::overwrite_existing);
  }

  json position() const override { return {{"epoch", epoch_}, {"next_image", next_image_}, {"images_seen", images_seen_}}; }
  void set_position(const json& j) override {
    epoch_ = j.at("epoch");
    next_image_ = j.at("next_image");
    images_seen_ = j.at("images_seen");
    epoch_plan_ = plan_epoch(pixels_NRR3_.size(0), plan_.seed, epoch_, plan_.data.flip);
  }

  TrainingParts parts() override {
    TrainingParts parts;
    parts.modules = {{"G", nets_.g.ptr().get()}, {"D", nets_.d.ptr().get()}};
    if (nets_.g_ema) parts.modules.emplace_back("G_ema", nets_.g_ema.ptr().get());
    parts.optimizers = {{"g_optimizer", &g_opt_}, {"d_optimizer", &d_opt_}};
    parts.generators = {latent_gen_, attention_gen_};
    return parts;
  }

  int64_t images_seen() const { return images_seen_; }

 private:
  bool bf16() const { return train_.precision == TrainPrecision::kBf16; }

  // One D step on a real batch and a fake one; G runs without gradients (still in training mode:
  // its BN statistics move). Returns the hinge losses on reals and fakes.
  std::pair<double, double> d_step() {
    const at::Tensor real = real_batch();
    const at::Tensor z = at::randn({train_.batch, mc_.dim_z}, latent_gen_).to(plan_.device);
    const at::Tensor y_fake = at::randint(mc_.n_classes, {train_.batch}, latent_gen_).to(plan_.device);
    d_opt_.zero_grad();
    at::Tensor d_real, d_fake;
    {
      const AutocastScope autocast(plan_.device.type(), /*enabled=*/bf16());
      at::Tensor fake;
      {
        at::NoGradGuard no_grad;
        fake = nets_.g->forward(z, y_fake, attention_gen_);
      }
      // One D forward over fakes then reals, as BigGAN does: one spectral-norm step per D step.
      const at::Tensor d_out =
          nets_.d->forward(at::cat({fake.to(real.scalar_type()), real}), at::cat({y_fake, y_real_}), attention_gen_)
              .to(at::kFloat);
      d_fake = d_out.slice(0, 0, train_.batch);
      d_real = d_out.slice(0, train_.batch);
    }
    const at::Tensor l_real = at::relu(1 - d_real).mean(), l_fake = at::relu(1 + d_fake).mean();
    (l_real + l_fake).backward();
    d_opt_.step();
    return {l_real.item<double>(), l_fake.item<double>()};
  }

  // The next train_.batch images of the epoch order (flipped where the epoch says), in [-1, 1].
  at::Tensor real_batch() {
    std::vector<at::Tensor> batch;
    const int64_t count = pixels_NRR3_.size(0);
    for (int64_t i = 0; i < train_.batch; ++i) {
      if (next_image_ >= count) {
        ++epoch_;
        next_image_ = 0;
        epoch_plan_ = plan_epoch(count, plan_.seed, epoch_, plan_.data.flip);
      }
      at::Tensor img = pixels_NRR3_[epoch_plan_.order[next_image_]];
      if (epoch_plan_.flips[next_image_]) img = img.flip({1});
      batch.push_back(img);
      ++next_image_;
    }
    images_seen_ += train_.batch;
    return (at::stack(batch).permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1).to(plan_.device);
  }

  // A grid of the sampler's images from the fixed latents: <samples>/<file>.
  void write_samples(const std::string& file) {
    at::NoGradGuard no_grad;
    BigGanGenerator& sampler = nets_.sampler();
    sampler->eval();
    at::Generator sample_gen = at::make_generator<at::CPUGeneratorImpl>(plan_.seed + 14);
    at::Tensor fake;
    {
      const AutocastScope autocast(plan_.device.type(), /*enabled=*/bf16());
      fake = sampler->forward(z_fixed_.to(plan_.device), y_fixed_.to(plan_.device), sample_gen);
    }
    sampler->train();
    const int64_t columns = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(train_.sample_count))));
    write_image_grid((plan_.samples_dir / file).string(), fake.to(at::kFloat), columns);
  }

  const GanPlan& plan_;
  const GanTrainOptions& train_;
  const BigGanConfig& mc_;
  GanNetworks& nets_;
  const at::Tensor pixels_NRR3_;  // uint8, the decoded images
  torch::optim::Adam g_opt_, d_opt_;
  at::Generator latent_gen_, attention_gen_;
  EpochPlan epoch_plan_;
  at::Tensor y_real_, z_fixed_, y_fixed_;
  // The position a checkpoint carries.
  int64_t epoch_ = 0, next_image_ = 0, images_seen_ = 0;
};

// Decoded, cropped and resized once, kept as uint8.
LoadedImages load_training_images(const GanPlan& plan, const RunContext& ctx) {
  const ImageFolder folder = ImageFolder::open(plan.data.folder);
  LoadedImages images = load_all(
      folder,
      [&](size_t done, size_t total) {
        if (ctx.progress) ctx.progress(static_cast<int64_t>(done), static_cast<int64_t>(total), "images decoded");
      },
      static_cast<size_t>(at::get_num_threads()));
  if (images.count < plan.train.batch)
    throw ConfigError(fmt::format("config '{}': the image folder '{}' has {} usable images, fewer than train.batch {}",
                                  ctx.source, plan.data.folder.path, images.count, plan.train.batch));
  return images;
}

// The trained model, in the layout biggan_pretrained (and scripts) read: the run's lasting output.
void export_gan_model(const GanPlan& plan, GanNetworks& nets) {
  const fs::path& model_dir = plan.model_dir;
  fs::create_directories(model_dir);
  write_safetensors((model_dir / "generator.safetensors").string(), module_state(*nets.sampler()));
  write_safetensors((model_dir / "discriminator.safetensors").string(), module_state(*nets.d));
  std::ofstream out(model_dir / "biggan.json");
  out << plan.model.config.to_json().dump(1) << "\n";
  if (!out) throw IoError(fmt::format("cannot write '{}'", (model_dir / "biggan.json").string()));
}

// Image quality with the sampler (G_ema when kept), eval mode, latents from their own generator.
void score_image_quality(const GanPlan& plan, const RunContext& ctx, GanNetworks& nets, const LoadedImages& images,
                         const at::Tensor& pixels_BAA3, RunResult& result) {
  const BigGanConfig& mc = plan.model.config;
  BigGanGenerator& sampler = nets.sampler();
  sampler->eval();
  at::Generator quality_gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed + 15);
  at::Generator quality_attention_gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed + 16);
  const bool bf16 = plan.train.precision == TrainPrecision::kBf16;
  const ImageSource generated = [&](int64_t, int64_t count) {
    at::NoGradGuard no_grad;
    const at::Tensor z = at::randn({count, mc.dim_z}, quality_gen).to(plan.device);
    const at::Tensor y = at::randint(mc.n_classes, {count}, quality_gen).to(plan.device);
    const AutocastScope autocast(plan.device.type(), /*enabled=*/bf16);
    return sampler->forward(z, y, quality_attention_gen).to(at::kFloat);
  };
  const ImageSource reference = [&](int64_t start, int64_t count) {
    return pixels_BAA3.slice(0, start, start + count).permute({0, 3, 1, 2}).to(at::kFloat) / 255.0;
  };
  const ImageFolderOptions& folder = plan.data.folder;
  const std::string reference_identity =
      fmt::format("data folder '{}' ({} images at {}x{}, center_crop {}, max_images {})", folder.path, images.count,
                  mc.resolution, mc.resolution, folder.center_crop, folder.max_images);
  add_image_quality(result, plan.eval.quality, generated, reference, images.count, reference_identity, plan.device,
                    [&](const std::string& note, int64_t done, int64_t total) {
                      if (ctx.progress) ctx.progress(done, total, note);
                    });
}

RunResult CelebaBigGanPipeline::run_plan(const GanPlan& plan, const RunContext& ctx) const {
  const GeneratorAttention attention = build_generator_attention(plan.attention, plan.model.config, ctx.source);
  require_device_available(plan.device, ctx.source);
  const LoadedImages images = load_training_images(plan, ctx);
  const int64_t r = plan.model.config.resolution;
  const at::Tensor pixels_BAA3 =
      at::from_blob(const_cast<uint8_t*>(images.pixels_BVWC.data()), {images.count, r, r, 3}, at::kByte);
  GanNetworks nets(plan, attention);
  GanTask task(plan, nets, pixels_BAA3);
  TrainingOutcome outcome = run_training(task, task.schedule(), plan.run_dir, plan.identity, ctx);
  export_gan_model(plan, nets);

  RunResult result;
  result.curves = outcome.curves;
  auto metric = [&](const std::string& name, double value, const std::string& unit, bool higher) {
    result.metrics[name] = {value, unit, higher};
  };
  metric("g_loss_final", outcome.curves.at("g_loss").back(), "1", false);
  metric("d_loss_real_final", outcome.curves.at("d_loss_real").back(), "1", false);
  metric("d_loss_fake_final", outcome.curves.at("d_loss_fake").back(), "1", false);
  metric("train_time_s", outcome.train_time_s, "s", false);
  metric("g_steps_per_s", outcome.steps / std::max(outcome.train_time_s, 1e-12), "1/s", true);
  metric("images_per_s", task.images_seen() / std::max(outcome.train_time_s, 1e-12), "1/s", true);
  metric("memory_fraction", attention.memory_fraction, "fraction", false);
  metric("train_images", static_cast<double>(images.count), "count", false);
  metric("skipped_images", static_cast<double>(images.skipped), "count", false);
  metric("resumed_from_step", static_cast<double>(outcome.resumed_from), "count", false);
  outcome.memory.add_metrics(result);
  if (!attention.budget.knob.empty()) add_budget_metrics(attention.budget, result);
  result.notes["samples"] = (plan.samples_dir / "final.png").string();
  result.notes["model"] = plan.model_dir.string();
  score_image_quality(plan, ctx, nets, images, pixels_BAA3, result);
  if (!plan.train.keep_checkpoint) fs::remove_all(plan.run_dir);
  return result;
}

}  // namespace

const Pipeline& celeba_biggan_pipeline() {
  static const CelebaBigGanPipeline pipeline;
  return pipeline;
}

}  // namespace smyrf
