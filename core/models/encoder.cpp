// TransformerEncoder (BERT / RoBERTa) and Hugging Face checkpoint loading; see encoder.h.
#include "core/models/encoder.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <torch/nn/init.h>
#include <torch/utils.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include "core/attention/registry.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "core/util/text_file.h"

namespace smyrf {
namespace {

int64_t required_positive(const nlohmann::json& j, const char* key, const std::string& source) {
  if (!j.contains(key))
    throw ConfigError(fmt::format("model config '{}' has no '{}': it is not a BERT/RoBERTa config.json", source, key));
  const auto& v = j[key];
  if (!v.is_number_integer() || v.get<int64_t>() <= 0)
    throw ConfigError(fmt::format("model config '{}': '{}' must be a positive integer, got {}", source, key, v.dump()));
  return v.get<int64_t>();
}

template <class T>
void optional_value(const nlohmann::json& j, const char* key, T& out, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return;
  try {
    out = j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    throw ConfigError(fmt::format("model config '{}': '{}' has the wrong type ({})", source, key, j[key].dump()));
  }
}

// One parameter group of a Hugging Face module path, built from plain Modules so that
// named_parameters() spells the names exactly as transformers does.
std::shared_ptr<torch::nn::Module> child_module(torch::nn::Module& parent, const std::string& name) {
  return parent.register_module(name, std::make_shared<torch::nn::Module>());
}

std::string shape_text(at::IntArrayRef sizes) { return fmt::format("[{}]", fmt::join(sizes, ", ")); }

}  // namespace

int64_t EncoderConfig::max_tokens() const {
  return model_type == "roberta" ? max_position_embeddings - pad_token_id - 1 : max_position_embeddings;
}

EncoderConfig EncoderConfig::from_hf_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object()) throw ConfigError(fmt::format("model config '{}' must be a JSON object", source));
  EncoderConfig c;
  optional_value(j, "model_type", c.model_type, source);
  if (c.model_type != "bert" && c.model_type != "roberta")
    throw ConfigError(fmt::format("model config '{}': model_type '{}' is not supported (bert or roberta)", source,
                                  c.model_type));
  if (c.model_type == "roberta") c.pad_token_id = 1;  // RobertaConfig's only default that differs from BERT's
  c.vocab_size = required_positive(j, "vocab_size", source);
  c.hidden_size = required_positive(j, "hidden_size", source);
  c.num_hidden_layers = required_positive(j, "num_hidden_layers", source);
  c.num_attention_heads = required_positive(j, "num_attention_heads", source);
  c.intermediate_size = required_positive(j, "intermediate_size", source);
  optional_value(j, "hidden_act", c.hidden_act, source);
  optional_value(j, "max_position_embeddings", c.max_position_embeddings, source);
  optional_value(j, "type_vocab_size", c.type_vocab_size, source);
  optional_value(j, "pad_token_id", c.pad_token_id, source);
  optional_value(j, "layer_norm_eps", c.layer_norm_eps, source);
  optional_value(j, "hidden_dropout_prob", c.hidden_dropout_prob, source);
  optional_value(j, "attention_probs_dropout_prob", c.attention_probs_dropout_prob, source);
  if (j.contains("classifier_dropout") && !j["classifier_dropout"].is_null()) {
    double p = 0;
    optional_value(j, "classifier_dropout", p, source);
    c.classifier_dropout = p;
  }
  for (const auto& [key, p] : {std::pair<const char*, double>{"hidden_dropout_prob", c.hidden_dropout_prob},
                               {"attention_probs_dropout_prob", c.attention_probs_dropout_prob},
                               {"classifier_dropout", c.classifier_dropout.value_or(0.0)}})
    if (!(p >= 0.0 && p < 1.0))
      throw ConfigError(fmt::format("model config '{}': '{}' must lie in [0, 1), got {}", source, key, p));
  std::string problem_type;
  optional_value(j, "problem_type", problem_type, source);
  if (problem_type == "multi_label_classification")
    throw ConfigError(fmt::format("model config '{}': problem_type multi_label_classification is not supported "
                                  "(single-label classification and regression are)", source));
  optional_value(j, "initializer_range", c.initializer_range, source);
  if (c.hidden_size % c.num_attention_heads != 0)
    throw ConfigError(fmt::format("model config '{}': hidden_size {} is not a multiple of num_attention_heads {}",
                                  source, c.hidden_size, c.num_attention_heads));
  if (c.hidden_act != "gelu" && c.hidden_act != "gelu_new" && c.hidden_act != "gelu_pytorch_tanh" && c.hidden_act != "relu")
    throw ConfigError(fmt::format("model config '{}': hidden_act '{}' is not supported (gelu, gelu_new, "
                                  "gelu_pytorch_tanh, relu)", source, c.hidden_act));
  std::string position_embedding_type = "absolute";
  optional_value(j, "position_embedding_type", position_embedding_type, source);
  if (position_embedding_type != "absolute")
    throw ConfigError(fmt::format("model config '{}': position_embedding_type '{}' is not supported (absolute)",
                                  source, position_embedding_type));
  bool is_decoder = false;
  optional_value(j, "is_decoder", is_decoder, source);
  if (is_decoder) throw ConfigError(fmt::format("model config '{}': decoders are not supported (is_decoder)", source));
  if (c.pad_token_id < 0 || c.pad_token_id >= c.vocab_size)
    throw ConfigError(fmt::format("model config '{}': pad_token_id {} is outside the vocabulary", source, c.pad_token_id));
  if (c.max_tokens() <= 0)
    throw ConfigError(fmt::format("model config '{}': max_position_embeddings {} leaves no room for tokens", source,
                                  c.max_position_embeddings));
  return c;
}

EncoderConfig EncoderConfig::load(const std::string& config_json_path) {
  if (!std::filesystem::is_regular_file(config_json_path))
    throw IoError(fmt::format("model config '{}' cannot be opened: a Hugging Face model directory holds config.json "
                              "beside model.safetensors", config_json_path));
  const nlohmann::json j = parse_json(read_text_file(config_json_path, "model config"),
                                      {fmt::format("model config '{}'", config_json_path),
                                       "re-save the model or download it again", true});
  return from_hf_json(j, config_json_path);
}

TransformerEncoderImpl::TransformerEncoderImpl(const EncoderConfig& config, bool with_pooler, uint64_t init_seed)
    : config_(config) {
  const int64_t C = config.hidden_size;
  auto norm_options = torch::nn::LayerNormOptions({C}).eps(config.layer_norm_eps);
  auto embeddings = child_module(*this, "embeddings");
  word_embeddings_ = embeddings->register_module("word_embeddings", torch::nn::Embedding(config.vocab_size, C));
  position_embeddings_ =
      embeddings->register_module("position_embeddings", torch::nn::Embedding(config.max_position_embeddings, C));
  token_type_embeddings_ =
      embeddings->register_module("token_type_embeddings", torch::nn::Embedding(config.type_vocab_size, C));
  embedding_norm_ = embeddings->register_module("LayerNorm", torch::nn::LayerNorm(norm_options));
  dropout_ = register_module("dropout", torch::nn::Dropout(config.hidden_dropout_prob));

  auto encoder = child_module(*this, "encoder");
  auto layer_list = child_module(*encoder, "layer");
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    auto block = child_module(*layer_list, std::to_string(i));
    auto attention = child_module(*block, "attention");
    auto self = child_module(*attention, "self");
    auto attention_out = child_module(*attention, "output");
    auto intermediate = child_module(*block, "intermediate");
    auto output = child_module(*block, "output");
    Layer layer;
    layer.query = self->register_module("query", torch::nn::Linear(C, C));
    layer.key = self->register_module("key", torch::nn::Linear(C, C));
    layer.value = self->register_module("value", torch::nn::Linear(C, C));
    layer.attention_output = attention_out->register_module("dense", torch::nn::Linear(C, C));
    layer.attention_norm = attention_out->register_module("LayerNorm", torch::nn::LayerNorm(norm_options));
    layer.intermediate = intermediate->register_module("dense", torch::nn::Linear(C, config.intermediate_size));
    layer.output = output->register_module("dense", torch::nn::Linear(config.intermediate_size, C));
    layer.output_norm = output->register_module("LayerNorm", torch::nn::LayerNorm(norm_options));
    layers_.push_back(layer);
  }
  if (with_pooler) pooler_dense_ = child_module(*this, "pooler")->register_module("dense", torch::nn::Linear(C, C));

  // Hugging Face's _init_weights, from our own seeded generator so two runs start from the same bits.
  at::Generator generator = at::detail::createCPUGenerator(init_seed);
  torch::NoGradGuard no_grad;
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& parameter = item.value();
    const bool is_norm = name.find("LayerNorm") != std::string::npos;
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    if (is_norm)
      parameter.fill_(is_bias ? 0.0 : 1.0);
    else if (is_bias)
      parameter.zero_();
    else
      parameter.normal_(0.0, config.initializer_range, generator);
  }
  word_embeddings_->weight[config.pad_token_id].zero_();

  auto dense = std::shared_ptr<const AttentionMethod>(
      make_attention({{"method", "dense"}, {"dropout", config.attention_probs_dropout_prob}}));
  attention_.assign(static_cast<size_t>(config.num_hidden_layers), dense);
}

void TransformerEncoderImpl::set_attention(std::shared_ptr<const AttentionMethod> method,
                                           const std::vector<int64_t>& layers) {
  SMYRF_CHECK(method != nullptr, "set_attention: method is null");
  if (layers.empty()) {
    for (auto& slot : attention_) slot = method;
    return;
  }
  for (int64_t layer : layers)
    if (layer < 0 || layer >= config_.num_hidden_layers)
      throw ConfigError(fmt::format("attention layer {} does not exist: the model has layers 0..{}", layer,
                                    config_.num_hidden_layers - 1));
  for (int64_t layer : layers) attention_[static_cast<size_t>(layer)] = method;
}

const AttentionMethod& TransformerEncoderImpl::attention(int64_t layer) const {
  SMYRF_CHECK(layer >= 0 && layer < config_.num_hidden_layers, "attention: layer {} out of range", layer);
  return *attention_[static_cast<size_t>(layer)];
}

at::Tensor TransformerEncoderImpl::embed(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN) {
  const int64_t N = ids_BN.size(1);
  at::Tensor positions_BN;
  if (config_.model_type == "roberta") {
    // RoBERTa numbers real tokens from pad_token_id + 1 and gives pads the pad position, as
    // transformers' create_position_ids_from_input_ids does (from the ids, not the attention mask).
    at::Tensor real_BN = ids_BN.ne(config_.pad_token_id).to(at::kLong);
    positions_BN = real_BN.cumsum(1) * real_BN + config_.pad_token_id;
  } else {
    positions_BN = at::arange(N, ids_BN.options()).unsqueeze(0).expand_as(ids_BN);
  }
  at::Tensor types_BN = type_ids_BN ? *type_ids_BN : at::zeros_like(ids_BN);
  at::Tensor x = word_embeddings_->forward(ids_BN) + position_embeddings_->forward(positions_BN) +
                 token_type_embeddings_->forward(types_BN);
  return dropout_->forward(embedding_norm_->forward(x));
}

at::Tensor TransformerEncoderImpl::activation(const at::Tensor& x) const {
  if (config_.hidden_act == "relu") return at::relu(x);
  if (config_.hidden_act == "gelu") return at::gelu(x);
  return at::gelu(x, "tanh");
}

EncoderOutput TransformerEncoderImpl::forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN,
                                              const std::optional<at::Tensor>& keep_BN, at::Generator& generator,
                                              const EncoderForwardOptions& options) {
  TORCH_CHECK(ids_BN.dim() == 2 && ids_BN.scalar_type() == at::kLong, "encoder: ids_BN must be int64 [B, N], got ",
              ids_BN.sizes(), " ", ids_BN.scalar_type());
  const int64_t B = ids_BN.size(0), N = ids_BN.size(1);
  TORCH_CHECK(N >= 1 && N <= config_.max_tokens(), "encoder: ", N, " tokens, but this model takes 1..",
              config_.max_tokens(), " (truncate or window the input)");
  TORCH_CHECK(ids_BN.numel() == 0 || (ids_BN.min().item<int64_t>() >= 0 && ids_BN.max().item<int64_t>() < config_.vocab_size),
              "encoder: ids_BN holds ids outside the vocabulary [0, ", config_.vocab_size, ")");
  if (type_ids_BN) {
    TORCH_CHECK(type_ids_BN->sizes() == ids_BN.sizes() && type_ids_BN->scalar_type() == at::kLong,
                "encoder: type_ids_BN must be int64 ", ids_BN.sizes(), ", got ", type_ids_BN->sizes());
    TORCH_CHECK(type_ids_BN->min().item<int64_t>() >= 0 && type_ids_BN->max().item<int64_t>() < config_.type_vocab_size,
                "encoder: type_ids_BN must lie in [0, ", config_.type_vocab_size, ")");
  }
  if (keep_BN)
    TORCH_CHECK(keep_BN->sizes() == ids_BN.sizes() && keep_BN->scalar_type() == at::kBool,
                "encoder: keep_BN must be bool ", ids_BN.sizes(), ", got ", keep_BN->sizes(), " ", keep_BN->scalar_type());

  const int64_t H = config_.num_attention_heads, D = config_.head_dim(), C = config_.hidden_size;
  EncoderOutput result;
  at::Tensor x = embed(ids_BN, type_ids_BN);
  if (options.all_hidden_states) result.hidden_states.push_back(x);
  auto heads = [&](const at::Tensor& t_BNC) { return t_BNC.view({B, N, H, D}).transpose(1, 2); };
  for (int64_t l = 0; l < config_.num_hidden_layers; ++l) {
    Layer& layer = layers_[static_cast<size_t>(l)];
    AttentionInputs inputs;
    inputs.q_BHND = heads(layer.query->forward(x));
    inputs.k_BHMD = heads(layer.key->forward(x));
    inputs.v_BHME = heads(layer.value->forward(x));
    if (keep_BN) {
      inputs.key_keep_BM = *keep_BN;
      inputs.query_keep_BN = *keep_BN;
    }
    inputs.scale = 1.0 / std::sqrt(static_cast<double>(D));
    inputs.training = is_training();
    AttentionOutput attended = attention_[static_cast<size_t>(l)]->forward(inputs, generator);
    if (options.observer) options.observer(l, inputs, attended);
    at::Tensor context_BNC = attended.out_BHNE.transpose(1, 2).reshape({B, N, C});
    x = layer.attention_norm->forward(dropout_->forward(layer.attention_output->forward(context_BNC)) + x);
    at::Tensor inner = activation(layer.intermediate->forward(x));
    x = layer.output_norm->forward(dropout_->forward(layer.output->forward(inner)) + x);
    if (options.all_hidden_states) result.hidden_states.push_back(x);
  }
  result.hidden_BNC = x;
  if (pooler_dense_) result.pooled_BC = at::tanh(pooler_dense_->forward(x.select(1, 0)));
  return result;
}

WeightLoadReport load_module_weights(torch::nn::Module& module, const SafetensorsFile& file, const std::string& prefix,
                                     const std::vector<std::string>& optional_prefixes) {
  WeightLoadReport report;
  std::set<std::string> used;
  std::vector<std::string> missing;
  torch::NoGradGuard no_grad;
  auto is_optional = [&](const std::string& name) {
    for (const auto& p : optional_prefixes)
      if (name.rfind(p, 0) == 0) return true;
    return false;
  };
  for (auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    at::Tensor& parameter = item.value();
    std::string stored = prefix + name;
    if (!file.contains(stored)) {
      // Checkpoints converted from TensorFlow BERT keep LayerNorm.gamma / LayerNorm.beta.
      const auto dot = stored.rfind('.');
      const std::string leaf = stored.substr(dot + 1);
      const std::string old_leaf = leaf == "weight" ? "gamma" : leaf == "bias" ? "beta" : "";
      const std::string old_name = stored.substr(0, dot + 1) + old_leaf;
      if (stored.find("LayerNorm") != std::string::npos && !old_leaf.empty() && file.contains(old_name)) stored = old_name;
    }
    if (!file.contains(stored)) {
      (is_optional(name) ? report.not_loaded : missing).push_back(stored);
      continue;
    }
    // Checked on the header before any bytes are copied.
    const SafetensorsEntry& entry = file.entries().at(stored);
    if (at::IntArrayRef(entry.shape) != parameter.sizes())
      throw IoError(fmt::format("weights '{}': tensor '{}' has shape {} but the model (config.json) expects {}: the "
                                "weights and config.json are from different models",
                                file.path(), stored, shape_text(entry.shape), shape_text(parameter.sizes())));
    if (entry.dtype != "F32" && entry.dtype != "F64" && entry.dtype != "F16" && entry.dtype != "BF16")
      throw IoError(fmt::format("weights '{}': tensor '{}' is stored as {}, not a floating-point type", file.path(),
                                stored, entry.dtype));
    parameter.copy_(file.tensor(stored).to(parameter.scalar_type()));
    used.insert(stored);
  }
  if (!missing.empty()) {
    const size_t shown = std::min<size_t>(missing.size(), 5);
    throw IoError(fmt::format("weights '{}' lack {} tensor(s) the model needs, e.g. {}{}: the file is not a checkpoint "
                              "of this architecture, or config.json does not match it",
                              file.path(), missing.size(),
                              join(std::vector<std::string>(missing.begin(), missing.begin() + static_cast<long>(shown)), ", "),
                              missing.size() > shown ? ", ..." : ""));
  }
  for (const auto& [name, entry] : file.entries())
    if (!used.count(name)) report.unused.push_back(name);
  return report;
}

std::string encoder_prefix_in(const SafetensorsFile& file, const EncoderConfig& config) {
  for (const std::string prefix : {std::string(), config.model_type + ".", std::string("bert."), std::string("roberta.")})
    if (file.contains(prefix + "embeddings.word_embeddings.weight")) return prefix;
  throw IoError(fmt::format("weights '{}' hold no BERT/RoBERTa encoder (no embeddings.word_embeddings.weight, "
                            "with or without a bert./roberta. prefix)", file.path()));
}

CheckpointFiles open_checkpoint(const std::string& model_dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(model_dir))
    throw IoError(fmt::format("model directory '{}' does not exist: give a Hugging Face model directory (config.json, "
                              "model.safetensors, tokenizer files); scripts/fetch_models.sh downloads some", model_dir));
  return {EncoderConfig::load((fs::path(model_dir) / "config.json").string()),
          SafetensorsFile::open((fs::path(model_dir) / "model.safetensors").string())};
}

namespace {
bool has_suffix(const std::string& name, const std::string& suffix) {
  return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

void report_unused_tensors(const WeightLoadReport& report, const std::string& model_dir) {
  static std::mutex mutex;
  static std::set<std::string> reported;
  const std::lock_guard<std::mutex> lock(mutex);
  std::vector<std::string> unused;  // transformers' index buffers (position_ids, token_type_ids) are no weights
  for (const auto& name : report.unused)
    if (!has_suffix(name, ".position_ids") && !has_suffix(name, ".token_type_ids")) unused.push_back(name);
  if (unused.empty() || !reported.insert(model_dir).second) return;
  std::vector<std::string> shown(unused.begin(), unused.begin() + std::min<size_t>(unused.size(), 5));
  fmt::print(stderr, "model '{}': {} tensor(s) of model.safetensors are not used by this model: {}{}\n", model_dir,
             unused.size(), join(shown, ", "), unused.size() > shown.size() ? ", ..." : "");
}

PretrainedEncoder load_pretrained_encoder(const std::string& model_dir) {
  const CheckpointFiles checkpoint = open_checkpoint(model_dir);
  const SafetensorsFile& file = checkpoint.weights;
  PretrainedEncoder result;
  result.config = checkpoint.config;
  const std::string prefix = encoder_prefix_in(file, result.config);
  const bool with_pooler = file.contains(prefix + "pooler.dense.weight");
  result.encoder = TransformerEncoder(result.config, with_pooler);
  result.report = load_module_weights(*result.encoder, file, prefix);
  report_unused_tensors(result.report, model_dir);
  result.encoder->eval();
  return result;
}

}  // namespace smyrf
