// Shared parts of the BigGAN pipelines; see biggan_common.h.
#include "experiments/engines/biggan_common.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/attention/registry.h"
#include "core/models/inception_fid.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/json_parse.h"
#include "datasets/image_io.h"
#include "experiments/metrics/image_metrics.h"

namespace smyrf {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string BigGanModelSection::generator_weights() const {
  return dir.empty() ? std::string() : (fs::path(dir) / "generator.safetensors").string();
}

BigGanModelSection BigGanModelSection::from_json(const json& config, const std::string& source, bool allow_dir) {
  BigGanModelSection m;
  const json section = config.value("model", json::object());
  if (section.is_object() && section.contains("dir") && !section["dir"].is_null()) {
    JsonReader r(section, "model", source);
    r.require("dir", m.dir);
    r.finish();  // the architecture comes from the folder, not from keys beside it
    if (!allow_dir)
      throw ConfigError(fmt::format("config '{}': 'model.dir' is not read by this pipeline; give the architecture keys",
                                    source));
    const fs::path arch = fs::path(m.dir) / "biggan.json";
    if (!fs::is_regular_file(arch) || !fs::is_regular_file(m.generator_weights()))
      throw IoError(fmt::format("config '{}': 'model.dir' is '{}', which lacks biggan.json or generator.safetensors; "
                                "convert a BigGAN-PyTorch checkpoint with scripts/convert_biggan_pytorch.py",
                                source, m.dir));
    const json arch_json = read_json_file_or_discarded(arch.string());
    if (arch_json.is_discarded())
      throw IoError(fmt::format("'{}' is not valid JSON; re-run scripts/convert_biggan_pytorch.py", arch.string()));
    JsonReader ar(arch_json, "", arch.string());
    m.config = BigGanConfig::from_json(ar);
    ar.finish();
    return m;
  }
  JsonReader r(section, "model", source);
  m.config = BigGanConfig::from_json(r);
  r.finish();
  return m;
}

GeneratorAttention build_generator_attention(const json& attention, const BigGanConfig& model,
                                             const std::string& source) {
  GeneratorAttention g;
  if (model.g_attn == 0) {
    if (!attention.is_null() && attention.value("method", std::string("dense")) != "dense")
      throw ConfigError(fmt::format("config '{}': 'attention' asks for {} but model.g_attn is 0 (no attention block); "
                                    "set model.g_attn", source, attention.value("method", std::string())));
    g.memory_fraction = 0;
    return g;
  }
  const int64_t channels = model.g_attention_channels();
  const AttentionShape shape = BigGanAttentionImpl::shape_for(1, channels, model.g_attn);
  const json requested = attention.is_null() ? json{{"method", "dense"}} : attention;
  g.budget = resolve_memory_budget(requested, shape, "attention", source);
  auto method = std::shared_ptr<const AttentionMethod>(make_attention(g.budget.attention, "attention", source));
  const AttentionRequest request{shape, false, false};
  if (const auto reasons = method->unsupported_reasons(request); !reasons.empty())
    throw ConfigError(fmt::format("config '{}': 'attention' ({}) cannot serve G's attention at {}x{} ({} queries, {} "
                                  "keys): {}", source, method->name(), model.g_attn, model.g_attn, shape.n_queries,
                                  shape.n_keys, fmt::join(reasons, "; ")));
  g.memory_fraction = method->cost(shape).memory_fraction;
  g.method_name = method->name();
  // Plain dense is BigGAN's own softmax; dense with options (dropout) goes through the method.
  if (g.method_name != "dense" || g.budget.attention.size() > 1) g.method = std::move(method);
  return g;
}

at::Tensor quantize_to_unit(const at::Tensor& images_B3AA) {
  return ((images_B3AA.to(at::kFloat).clamp(-1, 1) + 1) * 127.5).round() / 255.0;
}

void write_image_grid(const std::string& path, const at::Tensor& images_B3AA, int64_t columns) {
  TORCH_CHECK(images_B3AA.dim() == 4 && images_B3AA.size(1) == 3, "images_B3AA must be [B, 3, R, R], got ",
              images_B3AA.sizes());
  const int64_t b = images_B3AA.size(0), h = images_B3AA.size(2), w = images_B3AA.size(3);
  TORCH_CHECK(b > 0 && columns > 0, "write_image_grid: no images or no columns");
  constexpr int64_t kGutter = 2;
  const int64_t cols = std::min(columns, b), rows = (b + cols - 1) / cols;
  const int64_t grid_h = rows * h + (rows + 1) * kGutter, grid_w = cols * w + (cols + 1) * kGutter;
  at::Tensor grid_VW3 = at::full({grid_h, grid_w, 3}, 255, at::kByte);
  const at::Tensor pixels_BVW3 =
      (quantize_to_unit(images_B3AA.detach().to(at::kCPU)) * 255).round().to(at::kByte).permute({0, 2, 3, 1});
  for (int64_t i = 0; i < b; ++i) {
    const int64_t top = kGutter + (i / cols) * (h + kGutter), left = kGutter + (i % cols) * (w + kGutter);
    grid_VW3.slice(0, top, top + h).slice(1, left, left + w).copy_(pixels_BVW3[i]);
  }
  fs::create_directories(fs::path(path).parent_path());
  const at::Tensor contiguous = grid_VW3.contiguous();
  write_png(path, contiguous.data_ptr<uint8_t>(), grid_h, grid_w, 3);
}

void ImageQualityOptions::read(JsonReader& r) {
  r.get("inception_weights", inception_weights)
      .get("samples", samples)
      .get("reference_stats", reference_stats)
      .get("batch", batch)
      .get("kid_subsets", kid_subsets)
      .get("kid_subset_size", kid_subset_size)
      .get("is_splits", is_splits);
  auto at_least = [&](const char* key, int64_t v, int64_t least, const char* why) {
    if (v < least)
      throw ConfigError(fmt::format("config '{}': '{}.{}' is {}; it must be >= {}{}", r.source(), r.path(), key, v, least,
                                    why));
  };
  at_least("samples", samples, 2, " (a covariance needs two images)");
  at_least("batch", batch, 1, "");
  at_least("kid_subsets", kid_subsets, 1, "");
  at_least("kid_subset_size", kid_subset_size, 2, " (the unbiased MMD needs pairs)");
  at_least("is_splits", is_splits, 1, "");
  if (!reference_stats.empty() && !fs::path(reference_stats).parent_path().empty() &&
      !fs::is_directory(fs::path(reference_stats).parent_path()))
    throw ConfigError(fmt::format("config '{}': '{}.reference_stats' is '{}', whose folder does not exist; create it",
                                  r.source(), r.path(), reference_stats));
}

void add_image_quality(RunResult& result, const ImageQualityOptions& options, const ImageSource& generated,
                       const ImageSource& reference_01, int64_t reference_count, const std::string& reference_identity,
                       const at::Device& device,
                       const std::function<void(const std::string& note, int64_t done, int64_t total)>& progress) {
  const std::string unavailable = fid_unavailable_reason(options.inception_weights);
  if (!unavailable.empty()) {
    for (const char* name : {"fid", "kid", "inception_score"}) result.notes[name] = unavailable;
    return;
  }
  FidInceptionV3 net = FidInceptionV3Impl::load(options.inception_weights);
  net->to(device);
  auto report = [&](const std::string& note) {
    return [&progress, note](int64_t done, int64_t total) {
      if (progress) progress(note, done, total);
    };
  };
  const InceptionBatchOutputs fake = run_inception(
      net, [&](int64_t start, int64_t count) { return quantize_to_unit(generated(start, count)).to(device); },
      options.samples, options.batch, report("Inception on generated images"));
  const FeatureStats fake_stats = feature_stats(fake.pool3_B2048);
  const MeanStd is = inception_score(fake.logits_B1008, std::min(options.is_splits, options.samples));
  result.metrics["inception_score"] = {is.mean, "1", true};
  result.metrics["inception_score_std"] = {is.std, "1", false};
  const FeatureSource source = fid_feature_source(net, "generator");
  const std::string protocol =
      fmt::format("{} {} features (weights '{}', sha256 {}), resize: {}; {} generated images quantised to uint8 levels",
                  source.feature_network, source.feature, source.weights_path, source.weights_sha256, source.resize,
                  options.samples);
  result.notes["inception_score"] = fmt::format("{}; {} splits", protocol, std::min(options.is_splits, options.samples));

  FeatureStats real_stats;
  at::Tensor real_features;
  std::string reference_note;
  const bool stored = !options.reference_stats.empty() && fs::exists(options.reference_stats);
  if (stored) {
    const StoredFeatureStats read = read_feature_stats(options.reference_stats);
    // Different networks or weights throw; what cannot be checked is said in the note.
    const auto warnings = check_same_features(read.source, options.reference_stats, source, "this run");
    if (reference_01 && read.source.images != reference_identity)
      throw ConfigError(fmt::format("eval.reference_stats '{}' holds statistics of {}, but this run's data is {}; delete "
                                    "the file (it is recomputed) or name another",
                                    options.reference_stats, read.source.images, reference_identity));
    real_stats = read.stats;
    reference_note = fmt::format("reference statistics '{}' ({} images)", options.reference_stats, read.stats.count);
    for (const auto& w : warnings) reference_note += "; warning: " + w;
  } else if (reference_01 && reference_count >= 2) {
    const InceptionBatchOutputs real = run_inception(
        net, [&](int64_t start, int64_t count) { return reference_01(start, count).to(device); }, reference_count,
        options.batch, report("Inception on real images"));
    real_features = real.pool3_B2048;
    real_stats = feature_stats(real_features);
    reference_note = fmt::format("{} real images of {}", reference_count, reference_identity);
    if (!options.reference_stats.empty())
      write_feature_stats(options.reference_stats, real_stats, fid_feature_source(net, reference_identity));
  } else {
    const std::string why =
        options.reference_stats.empty()
            ? "unavailable: no reference statistics; give eval.reference_stats (smyrf fid-stats writes them from real "
              "images)"
            : fmt::format("unavailable: eval.reference_stats '{}' does not exist; write it with smyrf fid-stats",
                          options.reference_stats);
    result.notes["fid"] = why;
    result.notes["kid"] = "unavailable: KID needs the real images' features, and this run has no data folder";
    return;
  }
  result.metrics["fid"] = {frechet_distance(fake_stats, real_stats), "1", false};
  result.notes["fid"] = fmt::format("{}; vs {}", protocol, reference_note);
  if (real_features.defined()) {
    const int64_t subset = std::min({options.kid_subset_size, options.samples, reference_count});
    const MeanStd k = kid(fake.pool3_B2048, real_features, options.kid_subsets, subset, /*seed=*/0);
    result.metrics["kid_mean"] = {k.mean, "1", false};
    result.metrics["kid_std"] = {k.std, "1", false};
    result.notes["kid"] = fmt::format("{}; vs {}; {} subsets of {}", protocol, reference_note, options.kid_subsets, subset);
  } else {
    result.notes["kid"] = reference_01 ? "unavailable: eval.reference_stats holds statistics only and KID needs the real "
                                         "features; leave eval.reference_stats empty to compute them from the data"
                                       : "unavailable: KID needs the real images' features, and this run has no data "
                                         "folder";
  }
}

}  // namespace smyrf
