// BigGAN G and D; see biggan.h for the architecture, names and the shape legend.
#include "core/models/biggan.h"

#include <torch/torch.h>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>

#include <ATen/autocast_mode.h>

#include "core/attention/registry.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"

namespace smyrf {
namespace {

constexpr double kBnMomentum = 0.1;
constexpr int64_t kBottomWidth = 4;  // G starts from a 4×4 map
constexpr double kOutputBnEps = 1e-5;

// Channel multipliers of BigGAN-PyTorch's G_arch / D_arch (times g_ch / d_ch).
struct Arch {
  std::vector<int64_t> in, out;
  std::vector<int64_t> resolution;  // output resolution of each block
  std::vector<bool> resample;       // upsample (G) / downsample (D)
};

Arch g_arch(int64_t r) {
  switch (r) {
    case 32: return {{4, 4, 4}, {4, 4, 4}, {8, 16, 32}, {true, true, true}};
    case 64: return {{16, 16, 8, 4}, {16, 8, 4, 2}, {8, 16, 32, 64}, {true, true, true, true}};
    case 128: return {{16, 16, 8, 4, 2}, {16, 8, 4, 2, 1}, {8, 16, 32, 64, 128}, std::vector<bool>(5, true)};
    case 256: return {{16, 16, 8, 8, 4, 2}, {16, 8, 8, 4, 2, 1}, {8, 16, 32, 64, 128, 256}, std::vector<bool>(6, true)};
    default: break;
  }
  throw ConfigError(fmt::format("BigGAN resolution {} is not one of 32, 64, 128, 256", r));
}

// D's first block reads the 3 image channels; `in` holds the multipliers of the others (in[0] unused).
Arch d_arch(int64_t r) {
  switch (r) {
    case 32: return {{0, 4, 4, 4}, {4, 4, 4, 4}, {16, 16, 16, 16}, {true, true, false, false}};
    case 64: return {{0, 1, 2, 4, 8}, {1, 2, 4, 8, 16}, {32, 16, 8, 4, 4}, {true, true, true, true, false}};
    case 128:
      return {{0, 1, 2, 4, 8, 16}, {1, 2, 4, 8, 16, 16}, {64, 32, 16, 8, 4, 4}, {true, true, true, true, true, false}};
    case 256:
      return {{0, 1, 2, 4, 8, 8, 16},
              {1, 2, 4, 8, 8, 16, 16},
              {128, 64, 32, 16, 8, 4, 4},
              {true, true, true, true, true, true, false}};
    default: break;
  }
  throw ConfigError(fmt::format("BigGAN resolution {} is not one of 32, 64, 128, 256", r));
}

// First block whose output is at `resolution`, or -1.
int64_t block_at(const std::vector<int64_t>& resolutions, int64_t resolution) {
  for (size_t i = 0; i < resolutions.size(); ++i)
    if (resolutions[i] == resolution) return static_cast<int64_t>(i);
  return -1;
}

void orthogonal_init(at::Tensor& weight) {
  at::NoGradGuard no_grad;
  torch::nn::init::orthogonal_(weight);
}

// PyTorch's default bias init for conv/linear: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
void default_bias_init(at::Tensor& bias, int64_t fan_in) {
  at::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(fan_in));
  bias.uniform_(-bound, bound);
}

// ---- spectral norm ----------------------------------------------------------------------------

// One power iteration from u0 (BigGAN-PyTorch's SN with one singular value and one iteration):
// v = n(u W), u' = n(v Wᵀ), σ = v Wᵀ u'ᵀ with n(x) = x / max(|x|, eps). u' and σ are stored in
// training only; σ carries the gradient through W (u, v are constants), as in the original.
// The layer's own op (conv, linear) still runs under autocast when it is on.
at::Tensor spectrally_normalised(const at::Tensor& weight, at::Tensor& u0, at::Tensor& sv0, double eps, bool training) {
  // u0 and σ in the weight's precision, not bf16.
  const AutocastScope cpu_off(at::kCPU, false), cuda_off(at::kCUDA, false);
  const at::Tensor w_mat = weight.reshape({weight.size(0), -1});
  at::Tensor u, v;
  {
    at::NoGradGuard no_grad;
    const at::Tensor w = w_mat.detach();
    v = at::matmul(u0, w);
    v = v / v.norm().clamp_min(eps);
    u = at::matmul(v, w.t());
    u = u / u.norm().clamp_min(eps);
    if (training) u0.copy_(u);
  }
  const at::Tensor sv = at::matmul(at::matmul(v, w_mat.t()), u.t()).squeeze();
  if (training) {
    at::NoGradGuard no_grad;
    sv0.copy_(sv.detach().reshape({1}));
  }
  return weight / sv;
}

// A weight with optional spectral norm and bias, under BigGAN-PyTorch's names.
class SnWeightModule : public torch::nn::Module {
 protected:
  void init_weight(std::vector<int64_t> shape, bool with_bias, int64_t fan_in, bool spectral, double sn_eps) {
    weight_ = register_parameter("weight", torch::empty(shape));
    orthogonal_init(weight_);
    if (with_bias) {
      bias_ = register_parameter("bias", torch::empty({shape[0]}));
      default_bias_init(bias_, fan_in);
    }
    spectral_ = spectral;
    sn_eps_ = sn_eps;
    if (spectral) {
      u0_ = register_buffer("u0", torch::randn({1, shape[0]}));
      sv0_ = register_buffer("sv0", torch::ones({1}));
    }
  }
  at::Tensor effective_weight() {
    return spectral_ ? spectrally_normalised(weight_, u0_, sv0_, sn_eps_, is_training()) : weight_;
  }
  at::Tensor weight_, bias_, u0_, sv0_;
  bool spectral_ = false;
  double sn_eps_ = 1e-6;
};

class SnConv2dImpl : public SnWeightModule {
 public:
  SnConv2dImpl(int64_t in, int64_t out, int64_t kernel, bool with_bias, bool spectral, double sn_eps)
      : padding_(kernel / 2) {
    init_weight({out, in, kernel, kernel}, with_bias, in * kernel * kernel, spectral, sn_eps);
  }
  at::Tensor forward(const at::Tensor& x) {
    return at::conv2d(x, effective_weight(), bias_, /*stride=*/{1, 1}, /*padding=*/{padding_, padding_});
  }

 private:
  int64_t padding_;
};
TORCH_MODULE(SnConv2d);

class SnLinearImpl : public SnWeightModule {
 public:
  SnLinearImpl(int64_t in, int64_t out, bool with_bias, bool spectral, double sn_eps) {
    init_weight({out, in}, with_bias, in, spectral, sn_eps);
  }
  at::Tensor forward(const at::Tensor& x) { return at::linear(x, effective_weight(), bias_); }
};
TORCH_MODULE(SnLinear);

// [n_classes, dim] table; spectral norm treats it as a dim -> n_classes map (u0 [1, n_classes]).
class SnEmbeddingImpl : public SnWeightModule {
 public:
  SnEmbeddingImpl(int64_t n, int64_t dim, bool spectral, double sn_eps) {
    init_weight({n, dim}, /*with_bias=*/false, dim, spectral, sn_eps);
  }
  at::Tensor forward(const at::Tensor& y_B) { return at::embedding(effective_weight(), y_B); }
};
TORCH_MODULE(SnEmbedding);

// ---- batch norms ------------------------------------------------------------------------------

// BigGAN-PyTorch's layers.bn: learned gain/bias [C], stored_mean/stored_var buffers.
class PlainBnImpl : public torch::nn::Module {
 public:
  PlainBnImpl(int64_t channels, double eps) : eps_(eps) {
    gain_ = register_parameter("gain", torch::ones({channels}));
    bias_ = register_parameter("bias", torch::zeros({channels}));
    mean_ = register_buffer("stored_mean", torch::zeros({channels}));
    var_ = register_buffer("stored_var", torch::ones({channels}));
  }
  at::Tensor forward(const at::Tensor& x) {
    return at::batch_norm(x, gain_, bias_, mean_, var_, is_training(), kBnMomentum, eps_, /*cudnn_enabled=*/true);
  }

 private:
  at::Tensor gain_, bias_, mean_, var_;
  double eps_;
};
TORCH_MODULE(PlainBn);

// Conditional BN: gain = 1 + gain(c), bias = bias(c). c is float [B, cond_dim] (bias-free SN
// linears) or int64 class ids [B] (embeddings). Unconditional: a PlainBn under the same name.
class ConditionalBnImpl : public torch::nn::Module {
 public:
  enum class Kind { kLinear, kEmbedding, kNone };
  ConditionalBnImpl(int64_t channels, Kind kind, int64_t cond_dim, double eps, double sn_eps) : kind_(kind), eps_(eps) {
    if (kind == Kind::kNone) {
      plain_ = register_module("plain", PlainBn(channels, eps));
      return;
    }
    if (kind == Kind::kLinear) {
      gain_lin_ = register_module("gain", SnLinear(cond_dim, channels, /*with_bias=*/false, /*spectral=*/true, sn_eps));
      bias_lin_ = register_module("bias", SnLinear(cond_dim, channels, /*with_bias=*/false, /*spectral=*/true, sn_eps));
    } else {
      gain_emb_ = register_module("gain", SnEmbedding(cond_dim, channels, /*spectral=*/false, sn_eps));
      bias_emb_ = register_module("bias", SnEmbedding(cond_dim, channels, /*spectral=*/false, sn_eps));
    }
    mean_ = register_buffer("stored_mean", torch::zeros({channels}));
    var_ = register_buffer("stored_var", torch::ones({channels}));
  }
  at::Tensor forward(const at::Tensor& x_BCVW, const at::Tensor& cond) {
    if (kind_ == Kind::kNone) return plain_->forward(x_BCVW);
    const at::Tensor gain = kind_ == Kind::kLinear ? gain_lin_->forward(cond) : gain_emb_->forward(cond);
    const at::Tensor bias = kind_ == Kind::kLinear ? bias_lin_->forward(cond) : bias_emb_->forward(cond);
    const at::Tensor normed =
        at::batch_norm(x_BCVW, {}, {}, mean_, var_, is_training(), kBnMomentum, eps_, /*cudnn_enabled=*/true);
    const int64_t b = x_BCVW.size(0), c = x_BCVW.size(1);
    return normed * (1 + gain).view({b, c, 1, 1}) + bias.view({b, c, 1, 1});
  }

 private:
  Kind kind_;
  double eps_;
  SnLinear gain_lin_{nullptr}, bias_lin_{nullptr};
  SnEmbedding gain_emb_{nullptr}, bias_emb_{nullptr};
  PlainBn plain_{nullptr};
  at::Tensor mean_, var_;
};
TORCH_MODULE(ConditionalBn);

// ---- blocks -----------------------------------------------------------------------------------

class GBlockImpl : public torch::nn::Module {
 public:
  GBlockImpl(int64_t in, int64_t out, bool upsample, ConditionalBnImpl::Kind kind, int64_t cond_dim,
             const BigGanConfig& c)
      : upsample_(upsample) {
    conv1_ = register_module("conv1", SnConv2d(in, out, 3, true, true, c.sn_eps));
    conv2_ = register_module("conv2", SnConv2d(out, out, 3, true, true, c.sn_eps));
    if (in != out || upsample) conv_sc_ = register_module("conv_sc", SnConv2d(in, out, 1, true, true, c.sn_eps));
    bn1_ = register_module("bn1", ConditionalBn(in, kind, cond_dim, c.bn_eps, c.sn_eps));
    bn2_ = register_module("bn2", ConditionalBn(out, kind, cond_dim, c.bn_eps, c.sn_eps));
  }
  at::Tensor forward(at::Tensor x, const at::Tensor& cond) {
    at::Tensor h = at::relu(bn1_->forward(x, cond));
    if (upsample_) {
      h = at::upsample_nearest2d(h, {h.size(2) * 2, h.size(3) * 2});
      x = at::upsample_nearest2d(x, {x.size(2) * 2, x.size(3) * 2});
    }
    h = conv2_->forward(at::relu(bn2_->forward(conv1_->forward(h), cond)));
    if (conv_sc_) x = conv_sc_->forward(x);
    return h + x;
  }

 private:
  bool upsample_;
  SnConv2d conv1_{nullptr}, conv2_{nullptr}, conv_sc_{nullptr};
  ConditionalBn bn1_{nullptr}, bn2_{nullptr};
};
TORCH_MODULE(GBlock);

class DBlockImpl : public torch::nn::Module {
 public:
  DBlockImpl(int64_t in, int64_t out, bool preactivation, bool downsample, double sn_eps)
      : preactivation_(preactivation), downsample_(downsample) {
    conv1_ = register_module("conv1", SnConv2d(in, out, 3, true, true, sn_eps));
    conv2_ = register_module("conv2", SnConv2d(out, out, 3, true, true, sn_eps));
    if (in != out || downsample) conv_sc_ = register_module("conv_sc", SnConv2d(in, out, 1, true, true, sn_eps));
  }
  at::Tensor forward(const at::Tensor& x) {
    at::Tensor h = preactivation_ ? at::relu(x) : x;
    h = conv2_->forward(at::relu(conv1_->forward(h)));
    if (downsample_) h = at::avg_pool2d(h, {2, 2});
    // The shortcut convolves before pooling after a preactivated block, after pooling in the first.
    at::Tensor sc = x;
    if (preactivation_) {
      if (conv_sc_) sc = conv_sc_->forward(sc);
      if (downsample_) sc = at::avg_pool2d(sc, {2, 2});
    } else {
      if (downsample_) sc = at::avg_pool2d(sc, {2, 2});
      if (conv_sc_) sc = conv_sc_->forward(sc);
    }
    return h + sc;
  }

 private:
  bool preactivation_, downsample_;
  SnConv2d conv1_{nullptr}, conv2_{nullptr}, conv_sc_{nullptr};
};
TORCH_MODULE(DBlock);

template <class T>
T* impl_of(const std::shared_ptr<torch::nn::Module>& m) {
  return static_cast<T*>(m.get());
}

void check_labels(const at::Tensor& y_B, int64_t batch, int64_t n_classes) {
  TORCH_CHECK(y_B.dim() == 1 && y_B.size(0) == batch && y_B.scalar_type() == at::kLong, "y_B must be int64 [", batch,
              "], got ", y_B.scalar_type(), " ", y_B.sizes());
  if (batch > 0 && y_B.is_cpu()) {  // on a GPU the range check would cost two syncs per forward
    const int64_t lo = y_B.min().item<int64_t>(), hi = y_B.max().item<int64_t>();
    TORCH_CHECK(lo >= 0 && hi < n_classes, "y_B holds class ", lo < 0 ? lo : hi, "; the model has ", n_classes,
                " classes (model.n_classes)");
  }
}

}  // namespace

// ---- autocast ----------------------------------------------------------------------------------

AutocastScope::AutocastScope(at::DeviceType device, bool enabled, at::ScalarType dtype)
    : device_(device),
      enabled_(enabled),
      was_enabled_(at::autocast::is_autocast_enabled(device)),
      was_dtype_(at::autocast::get_autocast_dtype(device)) {
  at::autocast::set_autocast_dtype(device_, dtype);
  at::autocast::set_autocast_enabled(device_, enabled_);
}

AutocastScope::~AutocastScope() {
  at::autocast::set_autocast_enabled(device_, was_enabled_);
  at::autocast::set_autocast_dtype(device_, was_dtype_);
  if (enabled_ && !was_enabled_) at::autocast::clear_cache();  // casts cached while it was on
}

// ---- config -----------------------------------------------------------------------------------

BigGanConfig BigGanConfig::from_json(JsonReader& r) {
  BigGanConfig c;
  r.get("resolution", c.resolution)
      .get("g_ch", c.g_ch)
      .get("d_ch", c.d_ch)
      .get("dim_z", c.dim_z)
      .get("n_classes", c.n_classes)
      .get("shared_dim", c.shared_dim)
      .get("hier", c.hier)
      .get("g_attn", c.g_attn)
      .get("d_attn", c.d_attn)
      .get("bn_eps", c.bn_eps)
      .get("sn_eps", c.sn_eps)
      .get("g_conditional_bn", c.g_conditional_bn);
  c.check(fmt::format("config '{}': '{}'", r.source(), r.path()));
  return c;
}

nlohmann::json BigGanConfig::to_json() const {
  return {{"resolution", resolution}, {"g_ch", g_ch},     {"d_ch", d_ch},     {"dim_z", dim_z},
          {"n_classes", n_classes},   {"shared_dim", shared_dim}, {"hier", hier}, {"g_attn", g_attn},
          {"d_attn", d_attn},         {"bn_eps", bn_eps}, {"sn_eps", sn_eps}, {"g_conditional_bn", g_conditional_bn}};
}

void BigGanConfig::check(const std::string& where) const {
  auto fail = [&](const std::string& what) { throw ConfigError(fmt::format("{}: {}", where, what)); };
  if (resolution != 32 && resolution != 64 && resolution != 128 && resolution != 256)
    fail(fmt::format("resolution {} is not one of 32, 64, 128, 256", resolution));
  if (g_ch < 1 || d_ch < 1) fail(fmt::format("g_ch {} and d_ch {} must be >= 1", g_ch, d_ch));
  if (dim_z < 1) fail(fmt::format("dim_z {} must be >= 1", dim_z));
  if (n_classes < 1) fail(fmt::format("n_classes {} must be >= 1 (1 for an unconditional dataset)", n_classes));
  if (shared_dim < 0) fail(fmt::format("shared_dim {} must be >= 0 (0: no shared embedding)", shared_dim));
  if (hier && shared_dim == 0) fail("hier needs shared_dim > 0 (the z chunks join the shared class embedding)");
  if (hier && dim_z % num_slots() != 0)
    fail(fmt::format("dim_z {} must split evenly into {} chunks with hier (one per G block plus one)", dim_z,
                     num_slots()));
  if (!g_conditional_bn && (hier || shared_dim > 0))
    fail("g_conditional_bn false (plain BN) cannot take hier or shared_dim");
  const auto g_res = g_block_resolutions(), d_res = d_block_resolutions();
  if (g_attn != 0 && block_at(g_res, g_attn) < 0)
    fail(fmt::format("g_attn {} is not the output resolution of a G block at resolution {} (choose from {}; 0 = none)",
                     g_attn, resolution, fmt::join(g_res, ", ")));
  if (d_attn != 0 && block_at(d_res, d_attn) < 0)
    fail(fmt::format("d_attn {} is not the label of a D block at resolution {} (choose from {}; 0 = none)", d_attn,
                     resolution, fmt::join(d_res, ", ")));
  if (bn_eps <= 0 || sn_eps <= 0) fail("bn_eps and sn_eps must be > 0");
  // The attention block projects to C/8 (queries, keys) and C/2 (values) channels.
  const Arch ga = g_arch(resolution), da = d_arch(resolution);
  for (size_t i = 0; i < ga.out.size(); ++i)
    if (ga.resolution[i] == g_attn && (ga.out[i] * g_ch) % 8 != 0)
      fail(fmt::format("G's attention at {} has {} channels, not a multiple of 8 (it uses C/8 and C/2): change g_ch",
                       g_attn, ga.out[i] * g_ch));
  for (size_t i = 0; i < da.out.size(); ++i)
    if (da.resolution[i] == d_attn && (da.out[i] * d_ch) % 8 != 0)
      fail(fmt::format("D's attention at {} has {} channels, not a multiple of 8 (it uses C/8 and C/2): change d_ch",
                       d_attn, da.out[i] * d_ch));
}

int64_t BigGanConfig::num_slots() const { return hier ? static_cast<int64_t>(g_arch(resolution).in.size()) + 1 : 1; }
int64_t BigGanConfig::z_chunk_size() const { return hier ? dim_z / num_slots() : 0; }
std::vector<int64_t> BigGanConfig::g_block_resolutions() const { return g_arch(resolution).resolution; }
std::vector<int64_t> BigGanConfig::d_block_resolutions() const { return d_arch(resolution).resolution; }
int64_t BigGanConfig::g_attention_channels() const {
  const Arch arch = g_arch(resolution);
  const int64_t index = g_attn == 0 ? -1 : block_at(arch.resolution, g_attn);
  return index < 0 ? 0 : arch.out[index] * g_ch;
}

// ---- attention ----------------------------------------------------------------------------------

BigGanAttentionImpl::BigGanAttentionImpl(int64_t channels, double sn_eps) : channels_(channels) {
  theta_ = register_module("theta", SnConv2d(channels, channels / 8, 1, false, true, sn_eps));
  phi_ = register_module("phi", SnConv2d(channels, channels / 8, 1, false, true, sn_eps));
  g_ = register_module("g", SnConv2d(channels, channels / 2, 1, false, true, sn_eps));
  o_ = register_module("o", SnConv2d(channels / 2, channels, 1, false, true, sn_eps));
  gamma_ = register_parameter("gamma", torch::zeros({}));
}

AttentionShape BigGanAttentionImpl::shape_for(int64_t batch, int64_t channels, int64_t resolution) {
  AttentionShape s;
  s.batch = batch;
  s.heads = 1;
  s.n_queries = resolution * resolution;
  s.n_keys = s.n_queries / 4;
  s.head_dim = channels / 8;
  s.value_dim = channels / 2;
  s.element_bytes = 4;
  return s;
}

at::Tensor BigGanAttentionImpl::forward(const at::Tensor& x_BCVW, at::Generator& generator) {
  const int64_t b = x_BCVW.size(0), c = x_BCVW.size(1), h = x_BCVW.size(2), w = x_BCVW.size(3);
  TORCH_CHECK(c == channels_ && h % 2 == 0 && w % 2 == 0, "BigGAN attention: x_BCVW must be [B, ", channels_,
              ", H, W] with even H, W; got ", x_BCVW.sizes());
  const int64_t x_pos = h * w, m_pos = x_pos / 4;
  const at::Tensor theta = impl_of<SnConv2dImpl>(theta_)->forward(x_BCVW);
  const at::Tensor phi = at::max_pool2d(impl_of<SnConv2dImpl>(phi_)->forward(x_BCVW), {2, 2});
  const at::Tensor g = at::max_pool2d(impl_of<SnConv2dImpl>(g_)->forward(x_BCVW), {2, 2});
  // Methods take float32/float64: under autocast the projections may be half precision.
  const auto dtype = x_BCVW.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  AttentionInputs in;
  in.q_BHND = theta.reshape({b, c / 8, x_pos}).transpose(1, 2).unsqueeze(1).to(dtype);
  in.k_BHMD = phi.reshape({b, c / 8, m_pos}).transpose(1, 2).unsqueeze(1).to(dtype);
  in.v_BHME = g.reshape({b, c / 2, m_pos}).transpose(1, 2).unsqueeze(1).to(dtype);
  in.scale = 1.0;  // BigGAN does not scale its logits
  in.training = is_training();
  at::Tensor out_BXE;
  // Attention computes in float32 (or float64), whichever method: mixed precision stops here, so
  // dense and SMYRF rows of a bf16 run are compared at one precision.
  {
    const AutocastScope cpu_off(at::kCPU, false), cuda_off(at::kCUDA, false);
    if (method_) {
      out_BXE = method_->forward(in, generator).out_BHNE.squeeze(1);
    } else {
      const at::Tensor logits = at::matmul(in.q_BHND.squeeze(1), in.k_BHMD.squeeze(1).transpose(1, 2));
      out_BXE = at::matmul(at::softmax(logits, -1), in.v_BHME.squeeze(1));
    }
  }
  const at::Tensor o_in = out_BXE.to(theta.scalar_type()).transpose(1, 2).reshape({b, c / 2, h, w});
  return x_BCVW + gamma_ * impl_of<SnConv2dImpl>(o_)->forward(o_in);
}

// ---- generator ----------------------------------------------------------------------------------

BigGanGeneratorImpl::BigGanGeneratorImpl(const BigGanConfig& config) : config_(config) {
  config_.check("BigGAN generator");
  const Arch arch = g_arch(config_.resolution);
  const int64_t ch = config_.g_ch;
  ConditionalBnImpl::Kind kind = ConditionalBnImpl::Kind::kNone;
  int64_t cond_dim = 0;
  if (config_.g_conditional_bn) {
    kind = config_.shared_dim > 0 ? ConditionalBnImpl::Kind::kLinear : ConditionalBnImpl::Kind::kEmbedding;
    cond_dim = config_.shared_dim > 0 ? config_.shared_dim + config_.z_chunk_size() : config_.n_classes;
  }
  if (config_.shared_dim > 0)
    shared_ = register_module("shared", SnEmbedding(config_.n_classes, config_.shared_dim, false, config_.sn_eps));
  const int64_t linear_in = config_.hier ? config_.z_chunk_size() : config_.dim_z;
  linear_ = register_module("linear", SnLinear(linear_in, arch.in[0] * ch * kBottomWidth * kBottomWidth, true, true,
                                               config_.sn_eps));
  attention_after_ = config_.g_attn == 0 ? -1 : block_at(arch.resolution, config_.g_attn);
  torch::nn::ModuleList blocks;
  for (size_t i = 0; i < arch.in.size(); ++i) {
    torch::nn::ModuleList inner;
    auto block = GBlock(arch.in[i] * ch, arch.out[i] * ch, arch.resample[i], kind, cond_dim, config_);
    inner->push_back(block);
    blocks_.push_back(block.ptr());
    if (static_cast<int64_t>(i) == attention_after_) {
      attention_ = BigGanAttention(arch.out[i] * ch, config_.sn_eps);
      inner->push_back(attention_);
    }
    blocks->push_back(inner);
  }
  register_module("blocks", blocks);
  torch::nn::Sequential output;
  // BigGAN-PyTorch builds the output BN without its BN_eps: it keeps layers.bn's default.
  auto bn = PlainBn(arch.out.back() * ch, kOutputBnEps);
  auto conv = SnConv2d(arch.out.back() * ch, 3, 3, true, true, config_.sn_eps);
  output->push_back(bn);
  output->push_back(torch::nn::ReLU());
  output->push_back(conv);
  register_module("output_layer", output);
  output_bn_ = bn.ptr();
  output_conv_ = conv.ptr();
}

std::optional<AttentionShape> BigGanGeneratorImpl::attention_shape(int64_t batch) const {
  if (!attention_) return std::nullopt;
  return BigGanAttentionImpl::shape_for(batch, attention_->channels(), config_.g_attn);
}

at::Tensor BigGanGeneratorImpl::forward(const at::Tensor& z_BZ, const at::Tensor& y_B, at::Generator& generator) {
  TORCH_CHECK(z_BZ.dim() == 2 && z_BZ.size(1) == config_.dim_z, "z_BZ must be [B, ", config_.dim_z, "], got ",
              z_BZ.sizes());
  const int64_t b = z_BZ.size(0);
  check_labels(y_B, b, config_.n_classes);
  at::Tensor z0 = z_BZ;
  std::vector<at::Tensor> conds(blocks_.size(), y_B);
  if (config_.shared_dim > 0) {
    const at::Tensor shared = impl_of<SnEmbeddingImpl>(shared_)->forward(y_B);
    if (config_.hier) {
      const auto chunks = z_BZ.split(config_.z_chunk_size(), 1);
      z0 = chunks[0];
      for (size_t i = 0; i < blocks_.size(); ++i) conds[i] = at::cat({shared, chunks[i + 1]}, 1);
    } else {
      std::fill(conds.begin(), conds.end(), shared);
    }
  }
  at::Tensor h = impl_of<SnLinearImpl>(linear_)->forward(z0).view({b, -1, kBottomWidth, kBottomWidth});
  for (size_t i = 0; i < blocks_.size(); ++i) {
    h = impl_of<GBlockImpl>(blocks_[i])->forward(h, conds[i]);
    if (static_cast<int64_t>(i) == attention_after_) h = attention_->forward(h, generator);
  }
  h = impl_of<SnConv2dImpl>(output_conv_)->forward(at::relu(impl_of<PlainBnImpl>(output_bn_)->forward(h)));
  return at::tanh(h);
}

// ---- discriminator -------------------------------------------------------------------------------

BigGanDiscriminatorImpl::BigGanDiscriminatorImpl(const BigGanConfig& config) : config_(config) {
  config_.check("BigGAN discriminator");
  const Arch arch = d_arch(config_.resolution);
  const int64_t ch = config_.d_ch;
  torch::nn::ModuleList blocks;
  for (size_t i = 0; i < arch.out.size(); ++i) {
    torch::nn::ModuleList inner;
    const int64_t in = i == 0 ? 3 : arch.in[i] * ch;
    auto block = DBlock(in, arch.out[i] * ch, /*preactivation=*/i > 0, arch.resample[i], config_.sn_eps);
    inner->push_back(block);
    blocks_.push_back(block.ptr());
    // As BigGAN-PyTorch: after every block whose table label is d_attn (D at 32 labels all four 16).
    attentions_.push_back(BigGanAttention(nullptr));
    if (config_.d_attn != 0 && arch.resolution[i] == config_.d_attn) {
      attentions_.back() = BigGanAttention(arch.out[i] * ch, config_.sn_eps);
      inner->push_back(attentions_.back());
    }
    blocks->push_back(inner);
  }
  register_module("blocks", blocks);
  linear_ = register_module("linear", SnLinear(arch.out.back() * ch, 1, true, true, config_.sn_eps));
  embed_ = register_module("embed", SnEmbedding(config_.n_classes, arch.out.back() * ch, true, config_.sn_eps));
}

at::Tensor BigGanDiscriminatorImpl::forward(const at::Tensor& images_B3AA, const at::Tensor& y_B,
                                            at::Generator& generator) {
  const int64_t r = config_.resolution;
  TORCH_CHECK(images_B3AA.dim() == 4 && images_B3AA.size(1) == 3 && images_B3AA.size(2) == r &&
                  images_B3AA.size(3) == r,
              "images_B3AA must be [B, 3, ", r, ", ", r, "], got ", images_B3AA.sizes());
  const int64_t b = images_B3AA.size(0);
  check_labels(y_B, b, config_.n_classes);
  at::Tensor h = images_B3AA;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    h = impl_of<DBlockImpl>(blocks_[i])->forward(h);
    if (attentions_[i]) h = attentions_[i]->forward(h, generator);
  }
  const at::Tensor pooled_BC = at::relu(h).sum({2, 3});
  const at::Tensor out = impl_of<SnLinearImpl>(linear_)->forward(pooled_BC).squeeze(1);
  return out + (impl_of<SnEmbeddingImpl>(embed_)->forward(y_B) * pooled_BC).sum(1);
}

}  // namespace smyrf
