// BigGAN generator and discriminator (Brock et al. 2019) with one self-attention block whose
// attention method is pluggable: dense softmax as in SAGAN/BigGAN, or SMYRF and its peers.
//
// Shape legend: B batch, Z latent size (dim_z), A image side (resolution), C channels, X = V·W positions.
//   z_BZ (float), y_B (int64 class ids), images_B3AA (float in [-1, 1]), d_out_B (float logits).
//   Inside the attention block: q_B1XD (D = C/8) over all X positions; k_B1MD, v_B1ME (E = C/2)
//   over the M = X/4 positions left by a 2×2 max-pool, so a method's key clusters are a quarter of
//   its query clusters (C_k = C_q/4). Logits are not scaled (scale 1), as in BigGAN.
//
// Parameter and buffer names are the state_dict keys of BigGAN-PyTorch (linear.weight,
// blocks.3.0.conv1.u0, blocks.3.1.gamma, output_layer.2.weight, ...), so its checkpoints load after a
// format change only (scripts/convert_biggan_pytorch.py). Architecture facts carried over:
//   spectral norm: u0 [1, out], sv0 [1]; every forward runs one power iteration from u0 (stored
//     only in training) and divides the weight by the resulting σ, with gradient through σ;
//   conditional BN: gain = 1 + gain(c), bias = bias(c), where c is the class embedding (shared_dim 0:
//     per-layer nn.Embedding of the class) or [shared(y), z chunk] through bias-free SN linears;
//     batch statistics in training, stored_mean/stored_var in eval (momentum 0.1);
//   hierarchical z (hier): z is split into blocks+1 chunks; the first feeds `linear`, one per block;
//   G block: BN, ReLU, nearest ×2, conv3×3, BN, ReLU, conv3×3, plus a 1×1 conv shortcut;
//   D block: (ReLU unless first), conv3×3, ReLU, conv3×3, 2×2 average pool, learnable shortcut;
//     D output = linear(Σ_xy ReLU(h)) + <embed(y), Σ_xy ReLU(h)> (projection discriminator);
//   orthogonal init of every conv, linear and embedding weight.
//   D's attention follows every block whose arch-table resolution label is d_attn (the labels of D at
//     32 are all 16, so there it follows all four blocks); G's labels are unique;
//   the output BN keeps eps 1e-5 whatever bn_eps says (it is built without it).
// Extension: g_conditional_bn false gives plain BN with learned gain/bias (unconditional G).
// Tested by tests/test_biggan.cpp (shapes at every resolution, SN against SVD, attention block vs a
// float64 oracle, SMYRF at full memory equals dense, determinism, save/load) and
// tests/python/test_biggan_convert.py (outputs vs an independent Python implementation).
#pragma once

#include <ATen/core/Generator.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"
#include "core/models/module_state.h"
#include "core/util/json_options.h"

namespace smyrf {

// Sets autocast for one device type while alive (on with `dtype`, or off), then restores what was
// set. BigGAN keeps attention and spectral norm out of reduced precision; training turns bf16 on.
class AutocastScope {
 public:
  AutocastScope(at::DeviceType device, bool enabled, at::ScalarType dtype = at::kBFloat16);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  at::DeviceType device_;
  bool enabled_, was_enabled_;
  at::ScalarType was_dtype_;
};

struct BigGanConfig {
  int64_t resolution = 128;  // 32, 64, 128 or 256
  int64_t g_ch = 96, d_ch = 96;
  int64_t dim_z = 120;
  int64_t n_classes = 1;
  int64_t shared_dim = 0;  // > 0: one shared class embedding feeding every BN (BigGAN's G_shared)
  bool hier = false;       // hierarchical z (needs shared_dim > 0)
  int64_t g_attn = 64;     // resolution of G's attention block, 0 = none
  int64_t d_attn = 64;     // label of D's attention blocks (after every block with it), 0 = none
  double bn_eps = 1e-5, sn_eps = 1e-6;
  bool g_conditional_bn = true;

  // Reads model keys from `reader` (the caller's `model` section may hold other keys it reads
  // itself) and checks them: ConfigError naming the key and the fix.
  static BigGanConfig from_json(JsonReader& reader);
  nlohmann::json to_json() const;
  void check(const std::string& where) const;
  int64_t num_slots() const;        // z chunks: G blocks + 1 when hier, else 1
  int64_t z_chunk_size() const;     // dim_z / num_slots when hier, else 0
  std::vector<int64_t> g_block_resolutions() const;  // output resolution of each G block
  std::vector<int64_t> d_block_resolutions() const;  // output resolution of each D block
  int64_t g_attention_channels() const;              // channels at G's attention block (0 without one)
};

// One spectrally normalised weight (conv, linear or embedding) with BigGAN-PyTorch's state.
class SpectralWeightImpl;

// Self-attention over a feature map with a pluggable method (nullptr = dense softmax).
class BigGanAttentionImpl : public torch::nn::Module {
 public:
  BigGanAttentionImpl(int64_t channels, double sn_eps);
  at::Tensor forward(const at::Tensor& x_BCVW, at::Generator& generator);
  void set_method(std::shared_ptr<const AttentionMethod> method) { method_ = std::move(method); }
  const std::shared_ptr<const AttentionMethod>& method() const { return method_; }
  // Shapes the method sees for a batch at this block's resolution.
  static AttentionShape shape_for(int64_t batch, int64_t channels, int64_t resolution);
  int64_t channels() const { return channels_; }

 private:
  int64_t channels_;
  std::shared_ptr<const AttentionMethod> method_;
  std::shared_ptr<torch::nn::Module> theta_, phi_, g_, o_;
  at::Tensor gamma_;
};
TORCH_MODULE(BigGanAttention);

class BigGanGeneratorImpl : public torch::nn::Module {
 public:
  explicit BigGanGeneratorImpl(const BigGanConfig& config);
  // z_BZ float [B, dim_z], y_B int64 [B] in [0, n_classes) -> images_B3AA in [-1, 1].
  at::Tensor forward(const at::Tensor& z_BZ, const at::Tensor& y_B, at::Generator& generator);
  const BigGanConfig& config() const { return config_; }
  // The attention block (nullptr when g_attn is 0).
  BigGanAttention attention() const { return attention_; }
  std::optional<AttentionShape> attention_shape(int64_t batch) const;

 private:
  struct Block;
  BigGanConfig config_;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks_;
  BigGanAttention attention_{nullptr};
  int64_t attention_after_ = -1;  // index of the block the attention follows
  std::shared_ptr<torch::nn::Module> shared_, linear_, output_bn_, output_conv_;
};
TORCH_MODULE(BigGanGenerator);

class BigGanDiscriminatorImpl : public torch::nn::Module {
 public:
  explicit BigGanDiscriminatorImpl(const BigGanConfig& config);
  // images_B3AA float, y_B int64 -> d_out_B (unbounded logits; hinge loss outside).
  at::Tensor forward(const at::Tensor& images_B3AA, const at::Tensor& y_B, at::Generator& generator);
  const BigGanConfig& config() const { return config_; }

 private:
  BigGanConfig config_;
  std::vector<std::shared_ptr<torch::nn::Module>> blocks_;
  std::vector<BigGanAttention> attentions_;  // per block; empty holder where there is none
  std::shared_ptr<torch::nn::Module> linear_, embed_;
};
TORCH_MODULE(BigGanDiscriminator);

}  // namespace smyrf
