// Text for causal language models (the lm_train and lm_dropin pipelines): real documents read from
// files, one document per file, split into a training and a held-out part by document, each part
// tokenized into one stream of ids (its documents in path order, back to back).
//
//   files              paths or glob patterns (*, ?, [..]), e.g. "/usr/share/common-licenses/*";
//                      expanded, symlinks resolved, sorted; a pattern that matches nothing, or a
//                      file that cannot be read, is an IoError naming it
//   held_out_fraction  a document is held out when a hash of its path (FNV-1a, so the split does
//                      not change when files are added elsewhere) falls below this fraction; both
//                      parts get at least one document
//   max_documents      0 = all; else the first k in path order (before the split)
// Documents with the same bytes as an earlier one are dropped (the duplicate_documents count), so
// that the same text cannot sit on both sides of the split; empty documents are dropped too.
//
// Tokenizers: "bytes" (the UTF-8 bytes themselves: 256 ids, lossless) or a Hugging Face tokenizer
// directory (core/text/tokenizer.h; no special tokens are added). bytes_per_token() of a stream is
// its documents' bytes over its ids, which turns a loss per token into bits per byte, comparable
// across tokenizers.
// Tested by tests/test_lm.cpp.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/text/tokenizer.h"

namespace smyrf {

class LmTokenizer {
 public:
  // "bytes" or a tokenizer directory (IoError/ConfigError from load_tokenizer when it has none).
  static LmTokenizer from_spec(const std::string& spec);
  std::vector<int32_t> encode(const std::string& text) const;
  int64_t vocab_size() const;
  const std::string& spec() const { return spec_; }
  bool is_bytes() const { return tokenizer_ == nullptr; }

 private:
  std::shared_ptr<const Tokenizer> tokenizer_;  // null: bytes
  std::string spec_;
};

struct LmCorpusOptions {
  std::vector<std::string> files;
  double held_out_fraction = 0.1;
  int64_t max_documents = 0;
};

struct LmStream {
  std::vector<int32_t> ids;
  int64_t bytes = 0;
  std::vector<std::string> documents;  // paths, in stream order
  double bytes_per_token() const;
};

struct LmCorpus {
  LmStream train, held_out;
  int64_t duplicate_documents = 0, empty_documents = 0;
};

// The files the patterns name (checked to exist; nothing is read). `what` names the key in errors.
std::vector<std::string> expand_text_files(const std::vector<std::string>& patterns, const std::string& what);

// True when `path` goes to the held-out part at this fraction (before the at-least-one rule).
bool held_out_document(const std::string& path, double held_out_fraction);

LmCorpus load_lm_corpus(const LmCorpusOptions& options, const LmTokenizer& tokenizer, const std::string& what);

}  // namespace smyrf
