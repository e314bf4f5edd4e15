// TransformerEncoder: the BERT / RoBERTa encoder (post-LayerNorm), with any registered attention
// method in any of its layers, and the loading of Hugging Face checkpoints into it.
//
// Shape legend: B batch, N tokens, C hidden size, H heads, D head dim (C = H·D), I intermediate size.
//   ids_BN (int64), type_ids_BN (int64, optional: zeros), keep_BN (bool, true = real token)
//   hidden_BNC, pooled_BC; inside a layer q_BHND, k_BHND, v_BHND go to the attention method.
// Parameter names are Hugging Face's (embeddings.word_embeddings.weight, encoder.layer.3.attention.
// self.query.weight, ..., pooler.dense.weight), so a checkpoint loads by name with every shape checked.
// Differences from transformers, on purpose: padded query rows get attention output 0 (the methods'
// query mask: padding must not take part in clustering), so hidden states at padded positions differ
// from transformers'; hidden states at real tokens match (tests/python/test_bert_parity.py, 1e-4).
// The attention scale is 1/sqrt(D). Attention dropout is the attention method's own `dropout` option:
// the default dense attention gets config.json's attention_probs_dropout_prob; a method given with
// set_attention() brings its own (0 unless its options say otherwise).
// Tested by tests/test_models.cpp (shapes, masks, per-layer methods, loading errors) and
// tests/python/test_bert_parity.py (every layer's hidden states vs transformers on real weights).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"
#include "core/models/safetensors.h"

namespace smyrf {

// The fields of a Hugging Face config.json that define the encoder (defaults: transformers'
// BertConfig / RobertaConfig). Keys about other architectures or tasks are ignored; values this
// encoder cannot reproduce (relative positions, decoders, unknown activations, multi-label
// problem_type) are refused.
struct EncoderConfig {
  std::string model_type = "bert";  // "bert" | "roberta" (position ids and pad handling differ)
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  std::string hidden_act = "gelu";  // gelu (erf), gelu_new / gelu_pytorch_tanh (tanh form), relu
  int64_t max_position_embeddings = 512;
  int64_t type_vocab_size = 2;
  int64_t pad_token_id = 0;
  double layer_norm_eps = 1e-12;
  double hidden_dropout_prob = 0.1;
  double attention_probs_dropout_prob = 0.1;    // the default dense attention's dropout (training only)
  std::optional<double> classifier_dropout;     // heads: this, else hidden_dropout_prob (as transformers)
  double initializer_range = 0.02;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }
  // Longest input in tokens: RoBERTa spends pad_token_id + 1 position rows on its offset.
  int64_t max_tokens() const;
  // `source` names the file in errors (ConfigError: missing key, wrong type, unsupported value).
  static EncoderConfig from_hf_json(const nlohmann::json& j, const std::string& source);
  static EncoderConfig load(const std::string& config_json_path);
};

// Called once per layer in forward order with the inputs the attention method saw and its output.
using AttentionObserver = std::function<void(int64_t layer, const AttentionInputs&, const AttentionOutput&)>;

struct EncoderOutput {
  at::Tensor hidden_BNC;                  // last layer
  std::vector<at::Tensor> hidden_states;  // embeddings then every layer (when asked for)
  at::Tensor pooled_BC;                   // tanh(dense(hidden[:, 0])); undefined without a pooler
};

struct EncoderForwardOptions {
  bool all_hidden_states = false;
  AttentionObserver observer;  // may be empty
};

class TransformerEncoderImpl : public torch::nn::Module {
 public:
  // Parameters start as Hugging Face initialises them (normal(0, initializer_range), zero biases,
  // unit LayerNorm), drawn from `init_seed`; load_encoder_weights() overwrites them.
  TransformerEncoderImpl(const EncoderConfig& config, bool with_pooler, uint64_t init_seed = 0);

  // Every layer dense until told otherwise. `layers` empty means all layers; indices are checked.
  void set_attention(std::shared_ptr<const AttentionMethod> method, const std::vector<int64_t>& layers = {});
  const AttentionMethod& attention(int64_t layer) const;

  EncoderOutput forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN,
                        const std::optional<at::Tensor>& keep_BN, at::Generator& generator,
                        const EncoderForwardOptions& options = {});

  const EncoderConfig& config() const { return config_; }
  bool has_pooler() const { return static_cast<bool>(pooler_dense_); }

 private:
  struct Layer {
    torch::nn::Linear query{nullptr}, key{nullptr}, value{nullptr}, attention_output{nullptr};
    torch::nn::LayerNorm attention_norm{nullptr};
    torch::nn::Linear intermediate{nullptr}, output{nullptr};
    torch::nn::LayerNorm output_norm{nullptr};
  };
  at::Tensor embed(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN);
  at::Tensor activation(const at::Tensor& x) const;

  EncoderConfig config_;
  torch::nn::Embedding word_embeddings_{nullptr}, position_embeddings_{nullptr}, token_type_embeddings_{nullptr};
  torch::nn::LayerNorm embedding_norm_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  std::vector<Layer> layers_;
  torch::nn::Linear pooler_dense_{nullptr};
  std::vector<std::shared_ptr<const AttentionMethod>> attention_;
};
TORCH_MODULE(TransformerEncoder);

// Copies `module`'s parameters from `file`, each named `prefix + name` (LayerNorm's old gamma/beta
// names are accepted too). Missing tensors or shape mismatches: IoError naming the file, the tensor
// and the shapes. `optional_prefixes` (e.g. "pooler.") may be absent: their names are returned as
// not loaded. Returns {names not loaded, file tensors not used}.
struct WeightLoadReport {
  std::vector<std::string> not_loaded;  // optional parameters the file lacks (left as initialised)
  std::vector<std::string> unused;      // tensors in the file that no parameter took
};
WeightLoadReport load_module_weights(torch::nn::Module& module, const SafetensorsFile& file, const std::string& prefix,
                                     const std::vector<std::string>& optional_prefixes = {});

// Says on stderr which tensors of `model_dir`'s weights no parameter took (a masked-LM head, a
// checkpoint of another architecture), once per model folder and process; nothing when all were used.
void report_unused_tensors(const WeightLoadReport& report, const std::string& model_dir);

// The name prefix under which a checkpoint holds the encoder: "" (BertModel), "bert." or "roberta."
// (…ForSequenceClassification / …ForMaskedLM). IoError when no encoder is found.
std::string encoder_prefix_in(const SafetensorsFile& file, const EncoderConfig& config);

// A Hugging Face model directory's config.json and model.safetensors, both checked. IoError when the
// directory or a file is missing or lies; ConfigError for a config this encoder cannot reproduce.
struct CheckpointFiles {
  EncoderConfig config;
  SafetensorsFile weights;
};
CheckpointFiles open_checkpoint(const std::string& model_dir);

struct PretrainedEncoder {
  EncoderConfig config;
  TransformerEncoder encoder{nullptr};
  WeightLoadReport report;
};
// Reads `model_dir`/config.json and `model_dir`/model.safetensors (the Hugging Face layout).
PretrainedEncoder load_pretrained_encoder(const std::string& model_dir);

}  // namespace smyrf
