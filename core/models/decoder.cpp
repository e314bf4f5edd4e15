// TransformerDecoder (Llama, GPT-2) and Hugging Face checkpoint loading; see decoder.h.
#include "core/models/decoder.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/nn/modules/dropout.h>

#include <cmath>
#include <filesystem>

#include "core/attention/registry.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "core/util/text_file.h"

namespace smyrf {
namespace {

struct ConfigReader {
  const nlohmann::json& j;
  const std::string& source;
  int64_t positive(const char* key) const {
    if (!j.contains(key))
      throw ConfigError(fmt::format("model config '{}' has no '{}': it is not a Llama/GPT-2 config.json", source, key));
    const auto& v = j[key];
    if (!v.is_number_integer() || v.get<int64_t>() <= 0)
      throw ConfigError(fmt::format("model config '{}': '{}' must be a positive integer, got {}", source, key, v.dump()));
    return v.get<int64_t>();
  }
  template <class T>
  void optional(const char* key, T& out) const {
    if (!j.contains(key) || j[key].is_null()) return;
    try {
      out = j[key].get<T>();
    } catch (const nlohmann::json::exception&) {
      throw ConfigError(fmt::format("model config '{}': '{}' has the wrong type ({})", source, key, j[key].dump()));
    }
  }
  [[noreturn]] void unsupported(const char* key, const std::string& value, const char* why) const {
    throw ConfigError(fmt::format("model config '{}': '{}' = {} is not supported: {}", source, key, value, why));
  }
};

void read_llama(const ConfigReader& r, DecoderConfig& c) {
  c.hidden_size = r.positive("hidden_size");
  c.num_layers = r.positive("num_hidden_layers");
  c.num_heads = r.positive("num_attention_heads");
  c.intermediate_size = r.positive("intermediate_size");
  c.num_kv_heads = c.num_heads;
  r.optional("num_key_value_heads", c.num_kv_heads);
  c.max_positions = 2048;
  r.optional("max_position_embeddings", c.max_positions);
  r.optional("rms_norm_eps", c.norm_eps);
  r.optional("rope_theta", c.rope_theta);
  r.optional("attention_bias", c.attention_bias);
  r.optional("mlp_bias", c.mlp_bias);
  r.optional("tie_word_embeddings", c.tie_word_embeddings);
  c.head_dim = c.hidden_size / c.num_heads;
  r.optional("head_dim", c.head_dim);
  std::string act = "silu";
  r.optional("hidden_act", act);
  if (act != "silu") r.unsupported("hidden_act", act, "Llama's MLP is SwiGLU (silu)");
  // transformers 5 keeps the RoPE settings in rope_parameters; older files in rope_theta / rope_scaling
  for (const char* key : {"rope_parameters", "rope_scaling"}) {
    if (!r.j.contains(key) || r.j[key].is_null()) continue;
    const auto& p = r.j[key];
    if (!p.is_object()) r.unsupported(key, p.dump(), "expected an object");
    const std::string type = p.value("rope_type", p.value("type", std::string("default")));
    if (type != "default" && type != "linear")
      r.unsupported(key, p.dump(), "only the default RoPE and its \"linear\" scaling are implemented");
    if (p.contains("rope_theta")) c.rope_theta = p["rope_theta"].get<double>();
    if (type == "linear") {
      c.rope_linear_factor = p.value("factor", 0.0);
      if (!(c.rope_linear_factor > 0)) r.unsupported(key, p.dump(), "linear scaling needs a factor > 0");
    }
  }
}

void read_gpt2(const ConfigReader& r, DecoderConfig& c) {
  c.hidden_size = r.positive("n_embd");
  c.num_layers = r.positive("n_layer");
  c.num_heads = c.num_kv_heads = r.positive("n_head");
  c.max_positions = r.positive("n_positions");
  c.intermediate_size = 4 * c.hidden_size;
  r.optional("n_inner", c.intermediate_size);
  c.norm_eps = 1e-5;
  r.optional("layer_norm_epsilon", c.norm_eps);
  c.tie_word_embeddings = true;
  r.optional("tie_word_embeddings", c.tie_word_embeddings);
  if (!c.tie_word_embeddings) r.unsupported("tie_word_embeddings", "false", "GPT-2's head is its token embedding");
  c.hidden_dropout = 0.1;
  r.optional("resid_pdrop", c.hidden_dropout);
  c.head_dim = c.hidden_size / c.num_heads;
  std::string act = "gelu_new";
  r.optional("activation_function", act);
  if (act != "gelu_new" && act != "gelu_pytorch_tanh") r.unsupported("activation_function", act, "GPT-2 uses gelu_new");
  bool flag = true;
  r.optional("scale_attn_weights", flag);
  if (!flag) r.unsupported("scale_attn_weights", "false", "the scale is 1/sqrt(D)");
  flag = false;
  r.optional("scale_attn_by_inverse_layer_idx", flag);
  if (flag) r.unsupported("scale_attn_by_inverse_layer_idx", "true", "the scale is 1/sqrt(D) in every layer");
}

// A parameter registered under a dotted Hugging Face path below `parent` (plain Modules in between,
// so that named_parameters() spells the names as transformers does).
at::Tensor add_parameter(torch::nn::Module& parent, const std::string& path, at::IntArrayRef shape) {
  torch::nn::Module* module = &parent;
  std::string rest = path;
  for (size_t dot; (dot = rest.find('.')) != std::string::npos; rest = rest.substr(dot + 1)) {
    const std::string name = rest.substr(0, dot);
    const auto children = module->named_children();
    module = children.contains(name) ? children[name].get()
                                     : module->register_module(name, std::make_shared<torch::nn::Module>()).get();
  }
  return module->register_parameter(rest, at::empty(shape));
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

}  // namespace

struct TransformerDecoderImpl::Layer {
  std::shared_ptr<torch::nn::Module> norm1, norm2;
  // Llama: q, k, v, o, gate, up, down as [out, in] (+ biases when configured); GPT-2: c_attn, c_proj,
  // fc, fc_proj as [in, out] with biases
  at::Tensor q, k, v, o, q_b, k_b, v_b, o_b, gate, up, down, gate_b, up_b, down_b;
};

DecoderConfig DecoderConfig::from_hf_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(fmt::format("model config '{}' must be a JSON object", source));
  const ConfigReader r{j, source};
  std::string type;
  r.optional("model_type", type);
  DecoderConfig c;
  if (type == "llama") {
    c.architecture = DecoderArchitecture::kLlama;
    read_llama(r, c);
  } else if (type == "gpt2") {
    c.architecture = DecoderArchitecture::kGpt2;
    read_gpt2(r, c);
  } else {
    r.unsupported("model_type", "'" + type + "'", "decoders are llama or gpt2");
  }
  c.vocab_size = r.positive("vocab_size");
  r.optional("initializer_range", c.initializer_range);
  if (c.num_kv_heads < 1 || c.num_heads % c.num_kv_heads != 0)
    r.unsupported("num_key_value_heads", std::to_string(c.num_kv_heads), "it must divide num_attention_heads");
  if (c.head_dim < 2 || c.head_dim % 2 != 0 ||
      (c.architecture == DecoderArchitecture::kGpt2 && c.head_dim * c.num_heads != c.hidden_size))
    r.unsupported("head_dim", std::to_string(c.head_dim), "it must be even (and n_embd / n_head for GPT-2)");
  return c;
}

DecoderConfig DecoderConfig::load(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw IoError(fmt::format("model config '{}' cannot be opened: a Hugging Face model directory holds config.json "
                              "beside model.safetensors", path));
  const nlohmann::json j = parse_json(read_text_file(path, "model config"),
                                      {fmt::format("model config '{}'", path), "re-save the model or download it again", true});
  return from_hf_json(j, path);
}

nlohmann::json DecoderConfig::to_hf_json() const {
  if (architecture == DecoderArchitecture::kGpt2)
    return {{"architectures", {"GPT2LMHeadModel"}}, {"model_type", "gpt2"}, {"vocab_size", vocab_size},
            {"n_embd", hidden_size}, {"n_layer", num_layers}, {"n_head", num_heads}, {"n_positions", max_positions},
            {"n_inner", intermediate_size}, {"layer_norm_epsilon", norm_eps}, {"resid_pdrop", hidden_dropout},
            {"embd_pdrop", hidden_dropout}, {"attn_pdrop", 0.0}, {"activation_function", "gelu_new"},
            {"initializer_range", initializer_range}, {"tie_word_embeddings", true}};
  return {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"}, {"vocab_size", vocab_size},
          {"hidden_size", hidden_size}, {"num_hidden_layers", num_layers}, {"num_attention_heads", num_heads},
          {"num_key_value_heads", num_kv_heads}, {"intermediate_size", intermediate_size}, {"head_dim", head_dim},
          {"max_position_embeddings", max_positions}, {"rms_norm_eps", norm_eps}, {"rope_theta", rope_theta},
          {"hidden_act", "silu"}, {"attention_bias", attention_bias}, {"mlp_bias", mlp_bias},
          {"tie_word_embeddings", tie_word_embeddings}, {"initializer_range", initializer_range},
          {"rope_parameters", rope_linear_factor == 1.0
                                  ? nlohmann::json{{"rope_type", "default"}, {"rope_theta", rope_theta}}
                                  : nlohmann::json{{"rope_type", "linear"}, {"factor", rope_linear_factor},
                                                   {"rope_theta", rope_theta}}}};
}

struct TransformerDecoderImpl::LearnedSketch {
  int64_t features = 0;
  // [branch][level]
  at::Tensor norm_weight[2][2], norm_bias[2][2], up[2][2], down[2][2];
};

TransformerDecoderImpl::TransformerDecoderImpl(const DecoderConfig& config, uint64_t init_seed)
    : config_(config), init_seed_(init_seed) {
  const int64_t C = config.hidden_size, V = config.vocab_size, F = config.intermediate_size, D = config.head_dim;
  const int64_t HD = config.num_heads * D, GD = config.num_kv_heads * D;
  const bool llama = config.architecture == DecoderArchitecture::kLlama;
  body_ = register_module(llama ? "model" : "transformer", std::make_shared<torch::nn::Module>());
  embed_ = add_parameter(*body_, llama ? "embed_tokens.weight" : "wte.weight", {V, C});
  if (!llama) positions_ = add_parameter(*body_, "wpe.weight", {config.max_positions, C});
  auto add_norm = [&](torch::nn::Module& parent, const std::string& name) {
    add_parameter(parent, name + ".weight", {C});
    if (!llama) add_parameter(parent, name + ".bias", {C});
    return parent.named_children()[name];
  };
  for (int64_t i = 0; i < config.num_layers; ++i) {
    const std::string prefix = (llama ? "layers." : "h.") + std::to_string(i) + ".";
    auto layer = std::make_shared<Layer>();
    auto p = [&](const std::string& name, at::IntArrayRef shape) { return add_parameter(*body_, prefix + name, shape); };
    if (llama) {
      layer->q = p("self_attn.q_proj.weight", {HD, C}), layer->k = p("self_attn.k_proj.weight", {GD, C});
      layer->v = p("self_attn.v_proj.weight", {GD, C}), layer->o = p("self_attn.o_proj.weight", {C, HD});
      if (config.attention_bias) {
        layer->q_b = p("self_attn.q_proj.bias", {HD}), layer->k_b = p("self_attn.k_proj.bias", {GD});
        layer->v_b = p("self_attn.v_proj.bias", {GD}), layer->o_b = p("self_attn.o_proj.bias", {C});
      }
      layer->gate = p("mlp.gate_proj.weight", {F, C}), layer->up = p("mlp.up_proj.weight", {F, C});
      layer->down = p("mlp.down_proj.weight", {C, F});
      if (config.mlp_bias)
        layer->gate_b = p("mlp.gate_proj.bias", {F}), layer->up_b = p("mlp.up_proj.bias", {F}), layer->down_b = p("mlp.down_proj.bias", {C});
    } else {
      layer->q = p("attn.c_attn.weight", {C, 3 * C}), layer->q_b = p("attn.c_attn.bias", {3 * C});
      layer->o = p("attn.c_proj.weight", {C, C}), layer->o_b = p("attn.c_proj.bias", {C});
      layer->up = p("mlp.c_fc.weight", {C, F}), layer->up_b = p("mlp.c_fc.bias", {F});
      layer->down = p("mlp.c_proj.weight", {F, C}), layer->down_b = p("mlp.c_proj.bias", {C});
    }
    torch::nn::Module& block = *body_->named_children()[llama ? "layers" : "h"]->named_children()[std::to_string(i)];
    layer->norm1 = add_norm(block, llama ? "input_layernorm" : "ln_1");
    layer->norm2 = add_norm(block, llama ? "post_attention_layernorm" : "ln_2");
    layers_.push_back(layer);
  }
  final_norm_ = add_norm(*body_, llama ? "norm" : "ln_f");
  if (llama && !config.tie_word_embeddings) head_ = add_parameter(*this, "lm_head.weight", {V, C});

  // transformers' _init_weights, from our own seeded generator so two runs start from the same bits
  at::Generator generator = at::detail::createCPUGenerator(init_seed);
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    const bool is_norm = name.find("norm") != std::string::npos || name.find("ln_") != std::string::npos;
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_bias)
      item.value().zero_();
    else if (is_norm)
      item.value().fill_(1.0);
    else
      item.value().normal_(0.0, config.initializer_range, generator);
  }
  auto dense = std::shared_ptr<const AttentionMethod>(make_attention({{"method", "dense"}}));
  attention_.assign(static_cast<size_t>(config.num_layers), dense);
  sketches_.resize(static_cast<size_t>(config.num_layers));
}

void TransformerDecoderImpl::add_learned_sketch(size_t l, int64_t r) {
  if (sketches_[l]) {
    if (sketches_[l]->features != r)
      throw ConfigError(fmt::format("layer {} already has a learned sketch of size {}; a model learns one size per "
                                    "layer, so give the methods of a model the same sketch_size (got {})", l,
                                    sketches_[l]->features, r));
    return;
  }
  const bool llama = config_.architecture == DecoderArchitecture::kLlama;
  const std::string prefix = (llama ? "layers." : "h.") + std::to_string(l) + (llama ? ".self_attn" : ".attn") + ".sketch.";
  auto sketch = std::make_shared<LearnedSketch>();
  sketch->features = r;
  at::Generator generator = at::detail::createCPUGenerator(init_seed_ * 0x9E3779B97F4A7C15ULL + 0x5e7c + l);
  torch::NoGradGuard no_grad;
  // LayerNorms start as the identity, the linear maps LeCun-normal (std 1/sqrt(fan_in))
  const auto parameter = [&](const std::string& name, const at::Tensor& values) {
    at::Tensor p = add_parameter(*body_, prefix + name, values.sizes());
    p.set_data(values.to(embed_.options()));
    return p;
  };
  const auto lecun = [&](int64_t out, int64_t in) {
    return at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(in)), {out, in}, generator, at::kFloat);
  };
  for (int branch = 0; branch < 2; ++branch)
    for (int level = 0; level < 2; ++level) {
      const int64_t in = level == 0 ? config_.head_dim : r;
      const std::string at = std::to_string(branch) + "." + std::to_string(level) + ".";
      sketch->norm_weight[branch][level] = parameter(at + "norm.weight", at::ones({in}));
      sketch->norm_bias[branch][level] = parameter(at + "norm.bias", at::zeros({in}));
      sketch->up[branch][level] = parameter(at + "up.weight", lecun(8 * r, in));
      sketch->down[branch][level] = parameter(at + "down.weight", lecun(r, 8 * r));
    }
  sketches_[l] = sketch;
}

at::Tensor TransformerDecoderImpl::sketch_features(const LearnedSketch& sketch, const at::Tensor& x_BHND) {
  at::Tensor branch_out[2];
  for (int branch = 0; branch < 2; ++branch) {
    at::Tensor h = x_BHND;
    for (int level = 0; level < 2; ++level) {
      h = at::layer_norm(h, {h.size(-1)}, sketch.norm_weight[branch][level], sketch.norm_bias[branch][level], 1e-5);
      h = at::linear(at::gelu(at::linear(h, sketch.up[branch][level])), sketch.down[branch][level]);
    }
    branch_out[branch] = h;
  }
  const double root_r = std::sqrt(static_cast<double>(sketch.features));
  return at::tanh(branch_out[0] * branch_out[1] / root_r) * root_r;
}

void TransformerDecoderImpl::set_attention(std::shared_ptr<const AttentionMethod> method,
                                           const std::vector<int64_t>& layers) {
  SMYRF_CHECK(method != nullptr, "set_attention: method is null");
  if (!method->capabilities().causal)
    throw ConfigError(fmt::format("attention method '{}' cannot serve a causal language model: it does not support "
                                  "causal masking", method->name()));
  for (int64_t layer : layers)
    if (layer < 0 || layer >= config_.num_layers)
      throw ConfigError(fmt::format("attention layer {} does not exist: the model has layers 0..{}", layer,
                                    config_.num_layers - 1));
  std::vector<int64_t> chosen = layers;
  if (chosen.empty())
    for (int64_t l = 0; l < config_.num_layers; ++l) chosen.push_back(l);
  for (int64_t layer : chosen) {
    if (const int64_t r = method->capabilities().learned_features; r > 0) add_learned_sketch(static_cast<size_t>(layer), r);
    attention_[static_cast<size_t>(layer)] = method;
  }
}

const AttentionMethod& TransformerDecoderImpl::attention(int64_t layer) const {
  SMYRF_CHECK(layer >= 0 && layer < config_.num_layers, "attention: layer {} out of range", layer);
  return *attention_[static_cast<size_t>(layer)];
}

at::Tensor TransformerDecoderImpl::norm(const std::shared_ptr<torch::nn::Module>& m, const at::Tensor& x) const {
  const auto params = m->named_parameters(/*recurse=*/false);
  if (config_.architecture == DecoderArchitecture::kGpt2)
    return at::layer_norm(x, {config_.hidden_size}, params["weight"], params["bias"], config_.norm_eps);
  // Llama's RMSNorm, in float32 at least as transformers computes it
  const at::Tensor x32 = x.scalar_type() == at::kDouble ? x : x.to(at::kFloat);
  return params["weight"] * (x32 * at::rsqrt(x32.pow(2).mean(-1, true) + config_.norm_eps)).to(x.scalar_type());
}

at::Tensor TransformerDecoderImpl::attend(size_t l, const at::Tensor& h_BNC, const std::optional<at::Tensor>& keep_BN,
                                          at::Generator& generator, const EncoderForwardOptions& options) {
  const Layer& layer = *layers_[l];
  const int64_t B = h_BNC.size(0), N = h_BNC.size(1), H = config_.num_heads, G = config_.num_kv_heads;
  const int64_t D = config_.head_dim;
  auto heads = [&](const at::Tensor& t, int64_t n_heads) { return t.view({B, N, n_heads, D}).transpose(1, 2); };
  AttentionInputs in;
  if (config_.architecture == DecoderArchitecture::kGpt2) {
    const auto qkv = at::addmm(layer.q_b, h_BNC.reshape({B * N, -1}), layer.q).view({B, N, 3, H * D});
    in.q_BHND = heads(qkv.select(2, 0), H), in.k_BHMD = heads(qkv.select(2, 1), H), in.v_BHME = heads(qkv.select(2, 2), H);
  } else {
    // RoPE as transformers computes it: inverse frequencies and angles in float32, then x's dtype
    const at::Tensor inv_freq =
        1.0 / at::pow(config_.rope_theta, at::arange(0, D, 2, at::kLong).to(at::kFloat) / D) / config_.rope_linear_factor;
    const at::Tensor angles = at::outer(at::arange(N, at::kFloat), inv_freq);
    const at::Tensor emb = at::cat({angles, angles}, -1);
    const at::Tensor cos = emb.cos().to(h_BNC.scalar_type()), sin = emb.sin().to(h_BNC.scalar_type());
    auto rope = [&](const at::Tensor& x) { return x * cos + rotate_half(x) * sin; };
    in.q_BHND = rope(heads(at::linear(h_BNC, layer.q, layer.q_b), H));
    // grouped-query attention: each key/value head serves H / G query heads in turn
    in.k_BHMD = rope(heads(at::linear(h_BNC, layer.k, layer.k_b), G)).repeat_interleave(H / G, 1);
    in.v_BHME = heads(at::linear(h_BNC, layer.v, layer.v_b), G).repeat_interleave(H / G, 1);
  }
  if (keep_BN) in.key_keep_BM = *keep_BN, in.query_keep_BN = *keep_BN;
  if (attention_[l]->capabilities().learned_features > 0) {
    in.q_features_BHNF = sketch_features(*sketches_[l], in.q_BHND);
    in.k_features_BHMF = sketch_features(*sketches_[l], in.k_BHMD);
  }
  in.causal = true;
  in.scale = 1.0 / std::sqrt(static_cast<double>(D));
  in.training = is_training();
  const AttentionOutput out = attention_[l]->forward(in, generator);
  if (options.observer) options.observer(static_cast<int64_t>(l), in, out);
  const at::Tensor context_BNC = out.out_BHNE.transpose(1, 2).reshape({B, N, H * D});
  if (config_.architecture == DecoderArchitecture::kGpt2)
    return at::addmm(layer.o_b, context_BNC.reshape({B * N, -1}), layer.o).view({B, N, -1});
  return at::linear(context_BNC, layer.o, layer.o_b);
}

at::Tensor TransformerDecoderImpl::feed_forward(size_t l, const at::Tensor& h_BNC) {
  const Layer& layer = *layers_[l];
  if (config_.architecture == DecoderArchitecture::kGpt2) {
    const int64_t B = h_BNC.size(0), N = h_BNC.size(1);
    const at::Tensor inner = at::gelu(at::addmm(layer.up_b, h_BNC.reshape({B * N, -1}), layer.up), "tanh");
    return at::addmm(layer.down_b, inner, layer.down).view({B, N, -1});
  }
  const at::Tensor gated = at::silu(at::linear(h_BNC, layer.gate, layer.gate_b)) * at::linear(h_BNC, layer.up, layer.up_b);
  return at::linear(gated, layer.down, layer.down_b);
}

at::Tensor TransformerDecoderImpl::block(size_t l, const at::Tensor& x_BNC, const std::optional<at::Tensor>& keep_BN,
                                         at::Generator& generator, const EncoderForwardOptions& options) {
  const double p = is_training() ? config_.hidden_dropout : 0.0;
  const at::Tensor x = x_BNC + at::dropout(attend(l, norm(layers_[l]->norm1, x_BNC), keep_BN, generator, options), p, p > 0);
  return x + at::dropout(feed_forward(l, norm(layers_[l]->norm2, x)), p, p > 0);
}

DecoderOutput TransformerDecoderImpl::forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& keep_BN,
                                              at::Generator& generator, const EncoderForwardOptions& options) {
  TORCH_CHECK(ids_BN.dim() == 2 && ids_BN.scalar_type() == at::kLong, "decoder: ids_BN must be int64 [B, N], got ",
              ids_BN.sizes(), " ", ids_BN.scalar_type());
  const int64_t N = ids_BN.size(1);
  // GPT-2 has a table of max_positions learned positions; Llama's RoPE takes any length (as in
  // transformers, max_position_embeddings is what it was trained to, not a limit)
  TORCH_CHECK(N >= 1 && (config_.architecture == DecoderArchitecture::kLlama || N <= config_.max_positions),
              "decoder: ", N, " tokens, but this GPT-2 model has ", config_.max_positions,
              " learned positions (window the input)");
  TORCH_CHECK(ids_BN.min().item<int64_t>() >= 0 && ids_BN.max().item<int64_t>() < config_.vocab_size,
              "decoder: ids_BN holds ids outside the vocabulary [0, ", config_.vocab_size, ")");
  if (keep_BN)
    TORCH_CHECK(keep_BN->sizes() == ids_BN.sizes() && keep_BN->scalar_type() == at::kBool,
                "decoder: keep_BN must be bool ", ids_BN.sizes(), ", got ", keep_BN->sizes());
  DecoderOutput result;
  at::Tensor x = at::embedding(embed_, ids_BN);
  if (positions_.defined()) {
    const double p = is_training() ? config_.hidden_dropout : 0.0;
    x = at::dropout(x + at::embedding(positions_, at::arange(N, ids_BN.options())).unsqueeze(0), p, p > 0);
  }
  if (options.all_hidden_states) result.hidden_states.push_back(x);
  for (size_t l = 0; l < layers_.size(); ++l) {
    x = block(l, x, keep_BN, generator, options);
    if (options.all_hidden_states && l + 1 < layers_.size()) result.hidden_states.push_back(x);
  }
  x = norm(final_norm_, x);
  if (options.all_hidden_states) result.hidden_states.push_back(x);  // as transformers: after the final norm
  result.logits_BNV = at::linear(x, head_.defined() ? head_ : embed_);
  return result;
}

PretrainedDecoder load_pretrained_decoder(const std::string& model_dir) {
  namespace fs = std::filesystem;
  PretrainedDecoder out;
  out.config = DecoderConfig::load((fs::path(model_dir) / "config.json").string());
  const SafetensorsFile file = SafetensorsFile::open((fs::path(model_dir) / "model.safetensors").string());
  out.decoder = TransformerDecoder(out.config);
  // GPT-2 checkpoints saved from GPT2Model (the original "gpt2" upload) lack the "transformer." prefix
  const bool bare_gpt2 = out.config.architecture == DecoderArchitecture::kGpt2 && !file.contains("transformer.wte.weight") &&
                         file.contains("wte.weight");
  if (bare_gpt2) {
    out.report = load_module_weights(*out.decoder->named_children()["transformer"], file, "");
  } else {
    out.report = load_module_weights(*out.decoder, file, "");
  }
  report_unused_tensors(out.report, model_dir);
  return out;
}

}  // namespace smyrf
