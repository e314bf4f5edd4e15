// The tokenizer pipeline both tokenizers share, in Hugging Face tokenizers' order:
//   1. split the raw text on added tokens whose `normalized` is false (special tokens: "[CLS]",
//      "<mask>"): leftmost-longest match, honouring single_word / lstrip / rstrip
//   2. normalize each remaining segment (normalizer steps in order)
//   3. split the normalized segments on added tokens whose `normalized` is true
//   4. pre-tokenize (BertPreTokenizer or ByteLevel) and run the sub-word model on each word
//   5. post_process: truncate, then lay out the template (special tokens and type ids)
// Built by load_tokenizer (tokenizer.cpp) from tokenizer.json or the classic files.
// Tested in tests/light/test_text.cpp and tests/python/test_tokenizers.py.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/text/byte_level_bpe.h"
#include "core/text/subword_model.h"
#include "core/text/tokenizer.h"
#include "core/text/wordpiece.h"

namespace smyrf::text {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool single_word = false;  // only match between non-word characters
  bool lstrip = false;       // also swallow the whitespace before it
  bool rstrip = false;       // ... and after it
  bool normalized = false;   // match in the normalized text instead of the raw text
  bool special = true;
};

struct NormalizerStep {
  // kPrepend: `text` before a non-empty input; kReplace: every `pattern` (a plain string) by `text`
  // (SentencePiece-style BPE, e.g. Llama 2: Prepend "▁", then Replace " " by "▁").
  enum class Kind { kBert, kLowercase, kNfd, kStripAccents, kPrepend, kReplace };
  Kind kind = Kind::kBert;
  BertNormalizerOptions bert;  // kBert only
  std::u32string pattern, text;
};

// HF's Metaspace: spaces become `replacement`, which is prepended (kAlways; kFirst: only to the
// text's first segment, the one at offset 0) unless the segment starts with it; with `split`, a word
// starts at every replacement character.
struct MetaspaceOptions {
  enum class Prepend { kAlways, kFirst, kNever };
  char32_t replacement = U'\u2581';
  Prepend prepend = Prepend::kAlways;
  bool split = true;
};

struct PreTokenizer {
  // kNone (pre_tokenizer null): each segment between added tokens is one word
  enum class Kind { kBert, kByteLevel, kMetaspace, kNone };
  Kind kind = Kind::kBert;
  ByteLevelOptions byte_level;  // kByteLevel only
  MetaspaceOptions metaspace;   // kMetaspace only
  // A Sequence that starts with HF's Digits: numbers (\p{N}) are first split from the rest, one
  // piece per digit when true (SmolLM's tokenizers) or per run of digits, then `kind` runs on each piece.
  std::optional<bool> digits;
};

// One piece of a post-processing template: a sequence (A = 0, B = 1) or special token ids.
struct TemplatePiece {
  bool is_sequence = false;
  int sequence = 0;
  std::vector<int64_t> ids;  // special tokens only
  int64_t type_id = 0;
};

struct PostProcessor {
  // Defaults = no special tokens: A with type id 0, then B with type id 1 (HF's default_process).
  std::vector<TemplatePiece> single{{true, 0, {}, 0}};
  std::vector<TemplatePiece> pair{{true, 0, {}, 0}, {true, 1, {}, 1}};
  static PostProcessor bert(int64_t cls, int64_t sep);     // [CLS] A [SEP] (B [SEP]); types 0 / 1
  static PostProcessor roberta(int64_t cls, int64_t sep);  // <s> A </s> (</s> B </s>); all type 0
  std::size_t added(bool is_pair) const;
};

struct PipelineParts {
  std::unique_ptr<SubwordModel> model;
  std::vector<NormalizerStep> normalizer;
  PreTokenizer pre_tokenizer;
  std::vector<AddedToken> added_tokens;
  PostProcessor post_processor;
  std::optional<int64_t> pad_id;
  std::string source;  // the file read, for messages
};

class PipelineTokenizer : public Tokenizer {
 public:
  explicit PipelineTokenizer(PipelineParts parts);

  std::string kind() const override { return parts_.model->kind(); }
  std::vector<std::string> tokenize(const std::string& text) const override;
  std::vector<int64_t> ids_of(const std::string& text) const override;
  Encoding encode(const std::string& text, size_t max_length) const override;
  Encoding encode_pair(const std::string& a, const std::string& b, size_t max_length) const override;
  Encoding with_special_tokens(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b) const override;
  size_t special_tokens_added(bool pair) const override { return parts_.post_processor.added(pair); }
  int64_t pad_id() const override;
  size_t vocab_size() const override;
  std::optional<int64_t> token_to_id(const std::string& token) const override;
  std::optional<std::string> id_to_token(int64_t id) const override;
  Encoding post_process(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b, size_t max_length,
                        bool add_special_tokens) const override;
  const std::string& source() const override { return parts_.source; }

  std::u32string normalize(std::u32string_view text) const;

 private:
  void run(const std::string& text, std::vector<int64_t>& ids, std::vector<std::string>* tokens) const;
  void model_segment(std::u32string_view normalized, bool at_start, std::vector<int64_t>& ids,
                     std::vector<std::string>* tokens) const;
  // One piece after the Digits split (or the whole segment): the pre-tokenizer, then the model.
  void model_piece(std::u32string_view piece, bool at_start, std::vector<int64_t>& ids,
                     std::vector<std::string>* tokens) const;

  PipelineParts parts_;
  std::vector<std::u32string> patterns_;  // per added token: what to match (normalized content if normalized)
};

}  // namespace smyrf::text
