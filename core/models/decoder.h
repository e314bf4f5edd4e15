// TransformerDecoder: decoder-only causal language models with Hugging Face parameter names,
// Llama-style (RoPE, RMSNorm, SwiGLU, grouped-query attention) and GPT-2 (learned positions,
// LayerNorm, GELU, Conv1D weights stored [in, out]), with any causal attention method in any of
// its layers, and the loading of Hugging Face checkpoints (config.json + model.safetensors).
//
// Shape legend: B batch, N tokens, C hidden size, H query heads, G key/value heads (H = G·r), D head
// dim, F feed-forward size, V vocabulary.
//   ids_BN (int64), keep_BN (bool, true = real token); hidden_BNC, logits_BNV; inside a layer
//   q_BHND, k_BHND, v_BHND (key/value heads repeated r times, as transformers' repeat_kv) go to the
//   attention method with causal = true.
// Positions are 0..N-1 whatever the padding, as transformers' forward without position_ids; pad on
// the right (or pass no padding) to compare with it. The attention scale is 1/sqrt(D). Attention
// dropout is the method's own option; hidden dropout is GPT-2's resid_pdrop, also used where
// transformers applies embd_pdrop (both 0.1 by default; Llama has none), in training only.
// Parameter names: Llama model.embed_tokens.weight, model.layers.{i}.self_attn.{q,k,v,o}_proj.weight,
// model.layers.{i}.mlp.{gate,up,down}_proj.weight, model.layers.{i}.{input,post_attention}_layernorm.weight,
// model.norm.weight, lm_head.weight (absent when tied); GPT-2 transformer.{wte,wpe,ln_f}.*,
// transformer.h.{i}.{ln_1,ln_2,attn.c_attn,attn.c_proj,mlp.c_fc,mlp.c_proj}.*; its head is tied to wte.
// Tested by tests/test_decoder.cpp (causality of every causal method inside the model, shapes,
// config errors, set_attention) and tests/python/test_decoder_parity.py (tiny random Llama and
// GPT-2 saved by transformers: the same logits within 1e-4).
#pragma once

#include <torch/nn/module.h>

#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"
#include "core/models/encoder.h"

namespace smyrf {

enum class DecoderArchitecture { kLlama, kGpt2 };

struct DecoderConfig {
  DecoderArchitecture architecture = DecoderArchitecture::kLlama;
  int64_t vocab_size = 0, hidden_size = 0, num_layers = 0, num_heads = 0, num_kv_heads = 0;
  int64_t intermediate_size = 0, max_positions = 0, head_dim = 0;
  double norm_eps = 1e-6;        // rms_norm_eps (Llama), layer_norm_epsilon (GPT-2)
  double rope_theta = 10000.0;   // Llama
  double rope_linear_factor = 1.0;  // Llama: RoPE "linear" scaling (positions / factor), as long-context fine-tunes use
  bool tie_word_embeddings = false;
  bool attention_bias = false, mlp_bias = false;  // Llama
  double hidden_dropout = 0.0;   // GPT-2: resid_pdrop, applied after the embeddings too (embd_pdrop)
  double initializer_range = 0.02;

  // `source` names the file in errors (ConfigError: missing key, wrong type, unsupported value).
  static DecoderConfig from_hf_json(const nlohmann::json& j, const std::string& source);
  static DecoderConfig load(const std::string& config_json_path);
  // The config.json transformers reads back (LlamaForCausalLM / GPT2LMHeadModel).
  nlohmann::json to_hf_json() const;
};

struct DecoderOutput {
  at::Tensor logits_BNV;
  std::vector<at::Tensor> hidden_states;  // embeddings then every layer (the last after the final norm), when asked
};

class TransformerDecoderImpl : public torch::nn::Module {
 public:
  // Parameters start normal(0, initializer_range) (biases 0, norms 1), drawn from `init_seed`.
  explicit TransformerDecoderImpl(const DecoderConfig& config, uint64_t init_seed = 0);

  // Every layer dense (causal) until told otherwise; `layers` empty means all. The method must
  // support causal masking (ConfigError otherwise, with its reasons). A method that reads learned
  // feature maps (polysketch's sketch "learned": capabilities().learned_features = r) gets, in each
  // of its layers, a feature network registered as parameters (trained with the rest, saved with
  // the weights): the paper's sketch layer, shared by q and k and across heads, two branches of two
  // levels LayerNorm -> Linear(8r, no bias) -> GELU -> Linear(r, no bias), combined as
  // phi(x) = tanh(x1 o x2 / sqrt(r)) sqrt(r); names <layer>.self_attn.sketch.{branch}.{level}.*
  // (GPT-2: <layer>.attn.sketch.*), initialised from the init seed and the layer.
  void set_attention(std::shared_ptr<const AttentionMethod> method, const std::vector<int64_t>& layers = {});
  const AttentionMethod& attention(int64_t layer) const;

  DecoderOutput forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& keep_BN, at::Generator& generator,
                        const EncoderForwardOptions& options = {});
  const DecoderConfig& config() const { return config_; }

 private:
  struct Layer;
  at::Tensor block(size_t l, const at::Tensor& x_BNC, const std::optional<at::Tensor>& keep_BN,
                   at::Generator& generator, const EncoderForwardOptions& options);
  at::Tensor attend(size_t l, const at::Tensor& h_BNC, const std::optional<at::Tensor>& keep_BN,
                    at::Generator& generator, const EncoderForwardOptions& options);
  at::Tensor feed_forward(size_t l, const at::Tensor& h_BNC);
  at::Tensor norm(const std::shared_ptr<torch::nn::Module>& m, const at::Tensor& x) const;
  struct LearnedSketch;
  void add_learned_sketch(size_t l, int64_t features);
  static at::Tensor sketch_features(const LearnedSketch& sketch, const at::Tensor& x_BHND);

  DecoderConfig config_;
  uint64_t init_seed_ = 0;
  std::shared_ptr<torch::nn::Module> body_;  // "model" (Llama) or "transformer" (GPT-2)
  at::Tensor embed_, positions_, head_;       // head_ undefined when tied to embed_
  std::shared_ptr<torch::nn::Module> final_norm_;
  std::vector<std::shared_ptr<Layer>> layers_;
  std::vector<std::shared_ptr<const AttentionMethod>> attention_;
  std::vector<std::shared_ptr<LearnedSketch>> sketches_;  // per layer; null where none was needed
};
TORCH_MODULE(TransformerDecoder);

struct PretrainedDecoder {
  DecoderConfig config;
  TransformerDecoder decoder{nullptr};
  WeightLoadReport report;
};
// Reads `model_dir`/config.json and `model_dir`/model.safetensors (LlamaForCausalLM or
// GPT2LMHeadModel layout; a GPT-2 file without the "transformer." prefix loads too).
PretrainedDecoder load_pretrained_decoder(const std::string& model_dir);

}  // namespace smyrf
