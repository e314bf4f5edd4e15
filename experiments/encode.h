// `smyrf encode`: runs a Hugging Face BERT/RoBERTa directory on text or token ids and writes what
// it computes to HDF5, for users (sentence embeddings, classifier logits) and for the parity tests
// against transformers (tests/python/test_bert_parity.py).
//
// Input: text lines (tokenized by the model directory's tokenizer, truncated to max_length) or a
// JSONL file of {"ids": [...], "type_ids": [...]} per line (what `smyrf tokenize` writes).
// Output (shape legend: B sequences, N longest sequence, C hidden, L layers, K labels):
//   /ids [B,N], /keep [B,N] (1 = real token), /type_ids [B,N]
//   /hidden_states [L+1,B,N,C]  embeddings then every layer (float32, or float64 with --float64)
//   /embedding [B,C]             mean over real tokens of the last layer (sentence-transformers pooling)
//   /pooled [B,C]                BERT pooler output, when the checkpoint has a pooler
//   /logits [B,K]                when the checkpoint has a sequence-classification head
// Root attributes: model_path, attention_json, attention_layers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smyrf {

struct EncodeRequest {
  std::string model_dir;
  std::string text_path;   // one sequence per line; or
  std::string ids_path;    // JSONL ids
  std::string output_path;
  std::string attention_json = R"({"method": "dense"})";
  std::vector<int64_t> attention_layers;  // empty = all
  int64_t max_length = 0;                 // 0 = the model's limit
  uint64_t seed = 0;
  bool float64 = false;
};

// Returns the number of sequences written. Errors throw (IoError for files, ConfigError for values).
int64_t encode_to_hdf5(const EncodeRequest& request);

}  // namespace smyrf
