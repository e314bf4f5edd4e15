// What the BigGAN pipelines share (celeba_biggan trains, biggan_pretrained samples):
// the `model` section, G's attention method, sample grids as PNG and the image-quality metrics.
//
// Shape legend: B images, A image side (resolution); images_B3AA are G outputs in [-1, 1].
//   "model": BigGAN architecture keys (core/models/biggan.h BigGanConfig: resolution, g_ch, d_ch,
//            dim_z, n_classes, shared_dim, hier, g_attn, d_attn, bn_eps, sn_eps, g_conditional_bn),
//            or {"dir": DIR} for a converted checkpoint (DIR/biggan.json, DIR/generator.safetensors;
//            scripts/convert_biggan_pytorch.py writes it).
//   "attention": G's attention method (default dense); memory_budget is resolved at G's attention
//            shape (queries at g_attn², keys a quarter of them). D keeps dense attention, as in the paper.
//   "eval": quality keys, see ImageQualityOptions.
// Tested by tests/test_celeba_biggan.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/attention/attention_method.h"
#include "core/attention/memory_budget.h"
#include "core/models/biggan.h"
#include "core/util/json_options.h"
#include "experiments/runner/results_store.h"

namespace smyrf {

struct BigGanModelSection {
  BigGanConfig config;
  std::string dir;  // "" unless the model came from a converted checkpoint folder
  std::string generator_weights() const;  // dir/generator.safetensors ("" without dir)
  // `allow_dir`: the pipeline can start from a converted checkpoint. Errors name the key and file.
  static BigGanModelSection from_json(const nlohmann::json& config, const std::string& source, bool allow_dir);
};

// G's attention method (nullptr for dense) for batch-1 shapes at the model's g_attn; ConfigError
// when the method cannot serve that shape (e.g. a cluster size that does not divide the queries).
struct GeneratorAttention {
  std::shared_ptr<const AttentionMethod> method;  // nullptr: BigGAN's own dense softmax
  BudgetChoice budget;
  double memory_fraction = 1.0;   // attention score entries vs dense at that shape
  std::string method_name = "dense";
};
GeneratorAttention build_generator_attention(const nlohmann::json& attention, const BigGanConfig& model,
                                             const std::string& source);

// Writes images_B3AA (values in [-1, 1]) as one PNG grid, `columns` per row, 2-pixel white gutters.
void write_image_grid(const std::string& path, const at::Tensor& images_B3AA, int64_t columns);

// [-1, 1] floats -> the uint8 levels a saved PNG would hold, as floats in [0, 1] (Inception input).
at::Tensor quantize_to_unit(const at::Tensor& images_B3AA);

struct ImageQualityOptions {
  std::string inception_weights;  // FID Inception safetensors (scripts/convert_fid_inception.py); "" = none
  int64_t samples = 10000;        // generated images for FID/KID/IS (>= 2)
  std::string reference_stats;    // HDF5 of the real images' pool3 stats (smyrf fid-stats); "" = from the data
  int64_t batch = 50;
  int64_t kid_subsets = 100, kid_subset_size = 1000;
  int64_t is_splits = 10;
  void read(JsonReader& eval_reader);  // reads these keys only; the caller finishes the reader
};

// Generated images [start, start+count) as images_B3AA; the reference side as float [0, 1] batches.
using ImageSource = std::function<at::Tensor(int64_t start, int64_t count)>;

// FID (vs the reference statistics), KID (when reference features are at hand) and IS of
// `generated`, as metrics fid, kid_mean, kid_std, inception_score, inception_score_std, with notes
// recording the protocol, or, without the Inception weights, why they are unavailable (no number
// from another network is ever logged). `reference_01` gives real images in [0, 1] (count
// `reference_count`; empty when the pipeline has no data) when no reference_stats file is given or
// it does not exist yet (it is then written there, tagged with `reference_identity`, which a later
// run's data must match).
void add_image_quality(RunResult& result, const ImageQualityOptions& options, const ImageSource& generated,
                       const ImageSource& reference_01, int64_t reference_count, const std::string& reference_identity,
                       const at::Device& device,
                       const std::function<void(const std::string& note, int64_t done, int64_t total)>& progress);

}  // namespace smyrf
