// celeba_biggan: trains BigGAN (core/models/biggan.h) on an image folder (CelebA-HQ as
// distributed, datasets/image_folder.h) with any attention method in G's attention block, as the
// SMYRF paper's CelebA-HQ experiment: hinge loss, Adam(β1 0, β2 0.999), separate G and D learning
// rates, d_steps D steps per G step, optional EMA of G, bf16 autocast where asked.
//
// Shape legend: B batch, Z dim_z, R resolution. real_B3RR / fake_B3RR in [-1, 1]; y_B int64.
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
// G_ema when kept, else G — and discriminator.safetensors), which biggan_pretrained loads. Curves: step, g_loss, d_loss_real, d_loss_fake (means over log_every G steps),
// step_time_s. Metrics: the final window's losses, train_time_s, g_steps_per_s, images_per_s (real
// images seen by D), memory_fraction of G's attention, peak memory, resumed_from_step, and the
// image-quality metrics or their notes. Resume: atomic checkpoints (G, D, G_ema, both Adam states,
// generator states, data position) give the same result as an uninterrupted run (on the CPU; cuDNN's
// convolution backward is not deterministic).
// Tested by tests/test_celeba_biggan.cpp.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/optim/adam.h>
#include <torch/serialize/archive.h>
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "datasets/image_folder.h"
#include "experiments/engines/biggan_common.h"
#include "experiments/engines/checkpoint.h"

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

// Everything a resumed run needs beyond the files beside it.
struct GanState {
  int64_t step = 0;                  // G steps done
  int64_t epoch = 0, next_image = 0; // data position
  int64_t images_seen = 0;
  double train_time_s = 0;
  double window_g = 0, window_real = 0, window_fake = 0, window_time = 0;
  int64_t window_count = 0;
  std::map<std::string, std::vector<double>> curves;

  json to_json() const {
    return {{"step", step},         {"epoch", epoch},           {"next_image", next_image},
            {"images_seen", images_seen}, {"train_time_s", train_time_s}, {"window_g", window_g},
            {"window_real", window_real}, {"window_fake", window_fake}, {"window_time", window_time},
            {"window_count", window_count}, {"curves", curves}};
  }
  static GanState from_json(const json& j) {
    GanState s;
    s.step = j.at("step");
    s.epoch = j.at("epoch");
    s.next_image = j.at("next_image");
    s.images_seen = j.at("images_seen");
    s.train_time_s = j.at("train_time_s");
    s.window_g = j.at("window_g");
    s.window_real = j.at("window_real");
    s.window_fake = j.at("window_fake");
    s.window_time = j.at("window_time");
    s.window_count = j.at("window_count");
    s.curves = j.at("curves").get<std::map<std::string, std::vector<double>>>();
    return s;
  }
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

void save_gan_checkpoint(const fs::path& run_dir, const json& identity, const GanState& state, torch::nn::Module& g,
                         torch::nn::Module& d, torch::nn::Module* g_ema, torch::optim::Optimizer& g_opt,
                         torch::optim::Optimizer& d_opt, const std::vector<at::Generator>& generators) {
  write_checkpoint(run_dir, identity, state.to_json(), [&](const fs::path& dir) {
    write_safetensors((dir / "G.safetensors").string(), module_state(g));
    write_safetensors((dir / "D.safetensors").string(), module_state(d));
    if (g_ema) write_safetensors((dir / "G_ema.safetensors").string(), module_state(*g_ema));
    torch::serialize::OutputArchive archive, g_archive, d_archive;
    g_opt.save(g_archive);
    d_opt.save(d_archive);
    archive.write("g_optimizer", g_archive);
    archive.write("d_optimizer", d_archive);
    save_generators(archive, generators);
    archive.save_to((dir / "optimizers.pt").string());
  });
}

GanState load_gan_checkpoint(const fs::path& dir, torch::nn::Module& g, torch::nn::Module& d, torch::nn::Module* g_ema,
                             torch::optim::Optimizer& g_opt, torch::optim::Optimizer& d_opt,
                             const std::vector<at::Generator>& generators) {
  load_module_state(g, (dir / "G.safetensors").string());
  load_module_state(d, (dir / "D.safetensors").string());
  if (g_ema) load_module_state(*g_ema, (dir / "G_ema.safetensors").string());
  torch::serialize::InputArchive archive, g_archive, d_archive;
  archive.load_from((dir / "optimizers.pt").string());
  archive.read("g_optimizer", g_archive);
  archive.read("d_optimizer", d_archive);
  g_opt.load(g_archive);
  d_opt.load(d_archive);
  load_generators(archive, generators);
  return GanState::from_json(checkpoint_state(dir));
}

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

RunResult CelebaBigGanPipeline::run_plan(const GanPlan& plan, const RunContext& ctx) const {
  const BigGanModelSection& model = plan.model;
  const BigGanConfig& mc = model.config;
  const GanData& data = plan.data;
  const GanTrainOptions& train = plan.train;
  const EvalSection& eval = plan.eval;
  const GeneratorAttention attention = build_generator_attention(plan.attention, mc, ctx.source);
  const at::Device device = plan.device;
  require_device_available(device, ctx.source);
  const uint64_t seed = plan.seed;
  const fs::path& run_dir = plan.run_dir;
  const fs::path& samples_dir = plan.samples_dir;
  const bool bf16 = train.precision == TrainPrecision::kBf16;
  const at::DeviceType device_type = device.type();

  // Data: decoded, cropped and resized once, kept as uint8.
  const ImageFolder folder = ImageFolder::open(data.folder);
  const LoadedImages images = load_all(
      folder,
      [&](size_t done, size_t total) {
        if (ctx.progress) ctx.progress(static_cast<int64_t>(done), static_cast<int64_t>(total), "images decoded");
      },
      static_cast<size_t>(at::get_num_threads()));
  if (images.count < train.batch)
    throw ConfigError(fmt::format("config '{}': the image folder '{}' has {} usable images, fewer than train.batch {}",
                                  ctx.source, data.folder.path, images.count, train.batch));
  const int64_t r = mc.resolution;
  const at::Tensor pixels_NRR3 =
      at::from_blob(const_cast<uint8_t*>(images.pixels_NHWC.data()), {images.count, r, r, 3}, at::kByte);

  // Models: the same seed gives the same initial weights.
  torch::manual_seed(seed);
  BigGanGenerator g(mc);
  BigGanDiscriminator d(mc);
  BigGanGenerator g_ema{nullptr};
  if (train.ema) {
    g_ema = BigGanGenerator(mc);
    ema_update(*g_ema, *g, 0.0);
  }
  if (g->attention()) g->attention()->set_method(attention.method);
  if (g_ema && g_ema->attention()) g_ema->attention()->set_method(attention.method);
  g->to(device);
  d->to(device);
  if (g_ema) g_ema->to(device);
  auto adam = [&](torch::nn::Module& m, double lr) {
    return torch::optim::Adam(m.parameters(), torch::optim::AdamOptions(lr)
                                                  .betas({train.adam_betas[0], train.adam_betas[1]})
                                                  .eps(train.adam_eps)
                                                  .weight_decay(0));
  };
  torch::optim::Adam g_opt = adam(*g, train.g_lr);
  torch::optim::Adam d_opt = adam(*d, train.d_lr);

  at::Generator latent_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 11);
  at::Generator attention_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 12);
  std::vector<at::Generator> generators{latent_gen, attention_gen, at::detail::getDefaultCPUGenerator()};
  if (device.is_cuda()) generators.push_back(at::globalContext().defaultGenerator(device));

  // Resume.
  const json& identity = plan.identity;
  GanState state;
  int64_t resumed_from = 0;
  if (const auto ckpt = usable_checkpoint(run_dir, identity)) {
    state = load_gan_checkpoint(*ckpt, *g, *d, g_ema ? g_ema.get() : nullptr, g_opt, d_opt, generators);
    resumed_from = state.step;
  }

  // Fixed latents for the sample grids: a function of the seed only.
  at::Generator fixed_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 13);
  const at::Tensor z_fixed = at::randn({train.sample_count, mc.dim_z}, fixed_gen);
  const at::Tensor y_fixed = at::arange(train.sample_count, at::kLong) % mc.n_classes;
  const int64_t grid_columns = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(std::sqrt(train.sample_count))));
  BigGanGenerator& sampler = g_ema ? g_ema : g;
  auto write_samples = [&](const std::string& file) {
    at::NoGradGuard no_grad;
    sampler->eval();
    at::Generator sample_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 14);
    at::Tensor fake;
    {
      const AutocastScope autocast(device_type, /*enabled=*/bf16);
      fake = sampler->forward(z_fixed.to(device), y_fixed.to(device), sample_gen);
    }
    sampler->train();
    write_image_grid((samples_dir / file).string(), fake.to(at::kFloat), grid_columns);
  };

  auto real_batch = [&](EpochPlan& epoch_plan) {
    std::vector<at::Tensor> batch;
    for (int64_t i = 0; i < train.batch; ++i) {
      if (state.next_image >= images.count) {
        ++state.epoch;
        state.next_image = 0;
        epoch_plan = plan_epoch(images.count, seed, state.epoch, data.flip);
      }
      const int64_t index = epoch_plan.order[state.next_image];
      at::Tensor img = pixels_NRR3[index];
      if (epoch_plan.flips[state.next_image]) img = img.flip({1});
      batch.push_back(img);
      ++state.next_image;
    }
    state.images_seen += train.batch;
    return (at::stack(batch).permute({0, 3, 1, 2}).to(at::kFloat) / 127.5 - 1).to(device);
  };

  PeakMemoryWindow memory(device);
  EpochPlan epoch = plan_epoch(images.count, seed, state.epoch, data.flip);
  const at::Tensor y_real = at::zeros({train.batch}, at::kLong).to(device);
  g->train();
  d->train();
  using Clock = std::chrono::steady_clock;
  while (state.step < train.iterations) {
    const auto t0 = Clock::now();
    double loss_real = 0, loss_fake = 0;
    // D steps: G runs without gradients (still in training mode: its BN statistics move).
    set_requires_grad(*d, true);
    for (int64_t k = 0; k < train.d_steps; ++k) {
      const at::Tensor real = real_batch(epoch);
      const at::Tensor z = at::randn({train.batch, mc.dim_z}, latent_gen).to(device);
      const at::Tensor y_fake = at::randint(mc.n_classes, {train.batch}, latent_gen).to(device);
      d_opt.zero_grad();
      at::Tensor d_real, d_fake;
      {
        const AutocastScope autocast(device_type, /*enabled=*/bf16);
        at::Tensor fake;
        {
          at::NoGradGuard no_grad;
          fake = g->forward(z, y_fake, attention_gen);
        }
        // One D forward over fakes then reals, as BigGAN does: one spectral-norm step per D step.
        const at::Tensor d_out = d->forward(at::cat({fake.to(real.scalar_type()), real}), at::cat({y_fake, y_real}),
                                            attention_gen)
                                     .to(at::kFloat);
        d_fake = d_out.slice(0, 0, train.batch);
        d_real = d_out.slice(0, train.batch);
      }
      const at::Tensor l_real = at::relu(1 - d_real).mean(), l_fake = at::relu(1 + d_fake).mean();
      (l_real + l_fake).backward();
      d_opt.step();
      loss_real += l_real.item<double>() / train.d_steps;
      loss_fake += l_fake.item<double>() / train.d_steps;
    }
    // G step: D's weights are constants here.
    set_requires_grad(*d, false);
    g_opt.zero_grad();
    const at::Tensor z = at::randn({train.batch, mc.dim_z}, latent_gen).to(device);
    const at::Tensor y_fake = at::randint(mc.n_classes, {train.batch}, latent_gen).to(device);
    at::Tensor g_loss;
    {
      const AutocastScope autocast(device_type, /*enabled=*/bf16);
      g_loss = -d->forward(g->forward(z, y_fake, attention_gen), y_fake, attention_gen).to(at::kFloat).mean();
    }
    g_loss.backward();
    g_opt.step();
    ++state.step;
    if (g_ema) ema_update(*g_ema, *g, state.step > train.ema_start ? train.ema_decay : 0.0);
    const double g_loss_value = g_loss.item<double>();
    if (!std::isfinite(g_loss_value) || !std::isfinite(loss_real) || !std::isfinite(loss_fake))
      throw Error(fmt::format("BigGAN training diverged at G step {}: g_loss {}, d_loss_real {}, d_loss_fake {}; lower "
                              "train.g_lr / train.d_lr", state.step, g_loss_value, loss_real, loss_fake));
    const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    state.train_time_s += seconds;
    state.window_g += g_loss_value;
    state.window_real += loss_real;
    state.window_fake += loss_fake;
    state.window_time += seconds;
    ++state.window_count;
    if (state.step % train.log_every == 0 || state.step == train.iterations) {
      const double n = static_cast<double>(state.window_count);
      state.curves["step"].push_back(static_cast<double>(state.step));
      state.curves["g_loss"].push_back(state.window_g / n);
      state.curves["d_loss_real"].push_back(state.window_real / n);
      state.curves["d_loss_fake"].push_back(state.window_fake / n);
      state.curves["step_time_s"].push_back(state.window_time / n);
      state.window_g = state.window_real = state.window_fake = state.window_time = 0;
      state.window_count = 0;
    }
    if (ctx.progress) ctx.progress(state.step, train.iterations, "G steps");
    if (train.sample_every > 0 && state.step % train.sample_every == 0)
      write_samples(fmt::format("step_{:06d}.png", state.step));
    const bool last = state.step == train.iterations;
    if ((train.checkpoint_every > 0 && state.step % train.checkpoint_every == 0) || (last && train.keep_checkpoint))
      save_gan_checkpoint(run_dir, identity, state, *g, *d, g_ema ? g_ema.get() : nullptr, g_opt, d_opt, generators);
  }
  set_requires_grad(*d, true);
  write_samples(fmt::format("step_{:06d}.png", state.step));
  fs::copy_file(samples_dir / fmt::format("step_{:06d}.png", state.step), samples_dir / "final.png",
                fs::copy_options::overwrite_existing);
  memory.close();

  // The trained model, in the layout biggan_pretrained (and scripts) read: the run's lasting output.
  const fs::path& model_dir = plan.model_dir;
  fs::create_directories(model_dir);
  write_safetensors((model_dir / "generator.safetensors").string(), module_state(*sampler));
  write_safetensors((model_dir / "discriminator.safetensors").string(), module_state(*d));
  {
    std::ofstream out(model_dir / "biggan.json");
    out << mc.to_json().dump(1) << "\n";
    if (!out) throw IoError(fmt::format("cannot write '{}'", (model_dir / "biggan.json").string()));
  }

  RunResult result;
  result.curves = state.curves;
  auto metric = [&](const std::string& name, double value, const std::string& unit, bool higher) {
    result.metrics[name] = {value, unit, higher};
  };
  metric("g_loss_final", state.curves.at("g_loss").back(), "1", false);
  metric("d_loss_real_final", state.curves.at("d_loss_real").back(), "1", false);
  metric("d_loss_fake_final", state.curves.at("d_loss_fake").back(), "1", false);
  metric("train_time_s", state.train_time_s, "s", false);
  metric("g_steps_per_s", state.step / std::max(state.train_time_s, 1e-12), "1/s", true);
  metric("images_per_s", state.images_seen / std::max(state.train_time_s, 1e-12), "1/s", true);
  metric("memory_fraction", attention.memory_fraction, "fraction", false);
  metric("train_images", static_cast<double>(images.count), "count", false);
  metric("skipped_images", static_cast<double>(images.skipped), "count", false);
  metric("resumed_from_step", static_cast<double>(resumed_from), "count", false);
  memory.add_metrics(result);
  if (!attention.budget.knob.empty()) add_budget_metrics(attention.budget, result);
  result.notes["samples"] = (samples_dir / "final.png").string();
  result.notes["model"] = model_dir.string();

  // Image quality with the sampler (G_ema when kept), eval mode, latents from their own generator.
  sampler->eval();
  at::Generator quality_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 15);
  at::Generator quality_attention_gen = at::make_generator<at::CPUGeneratorImpl>(seed + 16);
  const ImageSource generated = [&](int64_t, int64_t count) {
    at::NoGradGuard no_grad;
    const at::Tensor z = at::randn({count, mc.dim_z}, quality_gen).to(device);
    const at::Tensor y = at::randint(mc.n_classes, {count}, quality_gen).to(device);
    const AutocastScope autocast(device_type, /*enabled=*/bf16);
    return sampler->forward(z, y, quality_attention_gen).to(at::kFloat);
  };
  const ImageSource reference = [&](int64_t start, int64_t count) {
    return pixels_NRR3.slice(0, start, start + count).permute({0, 3, 1, 2}).to(at::kFloat) / 255.0;
  };
  const std::string reference_identity =
      fmt::format("data folder '{}' ({} images at {}x{}, center_crop {}, max_images {})", data.folder.path, images.count,
                  r, r, data.folder.center_crop, data.folder.max_images);
  add_image_quality(result, eval.quality, generated, reference, images.count, reference_identity, device,
                    [&](const std::string& note, int64_t done, int64_t total) {
                      if (ctx.progress) ctx.progress(done, total, note);
                    });
  if (!train.keep_checkpoint) fs::remove_all(run_dir);
  return result;
}

}  // namespace

const Pipeline& celeba_biggan_pipeline() {
  static const CelebaBigGanPipeline pipeline;
  return pipeline;
}

}  // namespace smyrf
