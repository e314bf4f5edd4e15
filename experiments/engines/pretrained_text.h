// The parts of a config shared by the pipelines that run a pretrained encoder over real text
// (pretrained_dropin, capture): the "model" and "data" sections, and the padded token batches.
//
//   "model": {"path": "models/all-MiniLM-L6-v2",   a Hugging Face directory: config.json,
//                                                   model.safetensors, tokenizer files
//             "attention_layers": [3, 4, 5]}        layers that use config.attention (default all;
//                                                   the others stay dense)
//   "data":  {"files": ["/usr/share/common-licenses/GPL-3", ...],   real text, one document each
//             "max_tokens": 0,    per window incl. special tokens; 0 = the model's limit
//             "min_tokens": 16,   a document's shorter tail (counting special tokens) is dropped
//             "max_windows": 16,  0 = every window
//             "batch": 8}         windows per forward pass (padded to the longest)
// Tested by tests/test_pretrained.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "core/models/encoder.h"
#include "core/text/tokenizer.h"
#include "datasets/text_windows.h"

namespace smyrf {

struct PretrainedModelSection {
  std::string path;
  std::vector<int64_t> attention_layers;  // empty = all
  static PretrainedModelSection from_json(const nlohmann::json& config, const std::string& source);
};

struct TextDataSection {
  TextWindowOptions windows;  // max_tokens 0 until resolved against the model
  int64_t batch = 8;
  static TextDataSection from_json(const nlohmann::json& config, const std::string& source);
};

struct TokenBatch {
  at::Tensor ids_BN, type_ids_BN, keep_BN;  // int64, int64, bool
  int64_t real_tokens() const;
};
// The tensors of a padded batch (core/text/tokenizer.h), on the CPU.
TokenBatch token_batch(const PaddedBatch& padded);

struct PretrainedText {
  PretrainedEncoder model;
  std::vector<TextWindow> windows;
  std::vector<TokenBatch> batches;
  int64_t window_tokens = 0;  // the resolved max_tokens
};
// Loads the model and its tokenizer, cuts the text into windows and pads them into batches.
// A max_tokens above the model's limit is a ConfigError naming data.max_tokens.
PretrainedText load_pretrained_text(const PretrainedModelSection& model, const TextDataSection& data,
                                    const std::string& source);

// Copies the tokenizer files of a Hugging Face directory (tokenizer.json, tokenizer_config.json,
// special_tokens_map.json, vocab.txt, vocab.json, merges.txt: those present) into another.
void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir);

// Checks without loading weights: the model directory exists with config.json, the files exist.
void validate_pretrained_text(const PretrainedModelSection& model, const TextDataSection& data, const std::string& source);

}  // namespace smyrf
