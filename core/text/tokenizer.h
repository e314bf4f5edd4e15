// Text -> token ids for the encoders in core/models: BERT WordPiece and RoBERTa byte-level BPE,
// producing the same ids as the Hugging Face `tokenizers` library.
//
//   auto tok = smyrf::load_tokenizer("path/to/model_dir");
//   smyrf::Encoding e = tok->encode_pair("A question?", "Some context.", /*max_length=*/128);
//   smyrf::PaddedBatch b = smyrf::pad_batch({e, ...}, tok->pad_id());   // ids_BN, type_ids_BN, mask_BN
//
// Special tokens (ids are read from the files, never assumed):
//   BERT     single [CLS] a [SEP]          pair [CLS] a [SEP] b [SEP]      type ids 0..0 / 0..0 1..1
//   RoBERTa  single <s> a </s>             pair <s> a </s></s> b </s>      type ids all 0
// Truncation (max_length > 0 counts the special tokens) is HF's: a single sequence keeps its first
// max_length - specials tokens; a pair is cut "longest_first" (the shorter keeps its length when
// that leaves room for the longer, else each gets half, the odd token to the longer).
// Added/special tokens written literally in the text ("[MASK]", "<mask>") become their ids, as in HF.
// Loading: see load_tokenizer. The files' own truncation/padding settings are ignored: callers
// choose max_length, and pad_batch pads to the longest member.
// Layout: unicode.h (code-point rules), wordpiece.h, byte_level_bpe.h (models), pipeline.h (added
// tokens, normalizers, post-processing). Tests: tests/light/test_text.cpp (hand-checked cases,
// every loading error), tests/python/test_tokenizers.py (ids equal to `tokenizers` on real text,
// through `smyrf tokenize`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace smyrf {

struct Encoding {  // one sequence with special tokens, ready for a model
  std::vector<int64_t> ids;
  std::vector<int64_t> type_ids;  // token_type_ids: segment of each token
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  virtual std::string kind() const = 0;  // "wordpiece" | "bpe"
  // Sub-word strings (byte-level BPE: in the byte-to-unicode alphabet, "Ġ" = space), no special tokens.
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  virtual std::vector<int64_t> ids_of(const std::string& text) const = 0;  // ids, no special tokens
  // [CLS] a [SEP] (BERT) or <s> a </s> (RoBERTa); pairs: [CLS] a [SEP] b [SEP] / <s> a </s></s> b </s>.
  // max_length counts special tokens; 0 means no truncation. Pair truncation = HF "longest_first".
  // A max_length below special_tokens_added() throws ConfigError.
  virtual Encoding encode(const std::string& text, size_t max_length = 0) const = 0;
  virtual Encoding encode_pair(const std::string& a, const std::string& b, size_t max_length = 0) const = 0;
  virtual Encoding with_special_tokens(std::vector<int64_t> ids_a,
                                       std::optional<std::vector<int64_t>> ids_b = std::nullopt) const = 0;
  virtual size_t special_tokens_added(bool pair) const = 0;  // 2/3 for BERT, 2/4 for RoBERTa
  // The padding id (tokenizer.json padding.pad_id, else the pad token of the config files, else
  // "[PAD]"/"<pad>"); throws ConfigError when the tokenizer has none.
  virtual int64_t pad_id() const = 0;
  // Size of an embedding table these ids index: max id + 1 over the vocabulary and added tokens.
  virtual size_t vocab_size() const = 0;
  virtual std::optional<int64_t> token_to_id(const std::string& token) const = 0;

  // Beyond the minimum:
  virtual std::optional<std::string> id_to_token(int64_t id) const = 0;
  // HF's Tokenizer::post_process: truncate (max_length as above; without special tokens it bounds
  // the ids alone), then add special tokens or not; type ids follow the template either way.
  virtual Encoding post_process(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b,
                                size_t max_length, bool add_special_tokens) const = 0;
  // The file the tokenizer was read from (tokenizer.json, vocab.txt or vocab.json), for messages.
  virtual const std::string& source() const = 0;
};

// Reads `dir/tokenizer.json` when present (HF tokenizers format: model WordPiece or BPE (with
// byte_fallback, as SentencePiece-style Llama tokenizers); normalizer BertNormalizer, Lowercase, NFD,
// StripAccents, Prepend, Replace (plain strings) or a Sequence of them; pre_tokenizer
// BertPreTokenizer, ByteLevel, Metaspace, null, or a Sequence of Digits and one of those; post_processor TemplateProcessing, BertProcessing,
// RobertaProcessing, ByteLevel or none; added_tokens), else the classic files:
//   vocab.txt                 WordPiece; tokenizer_config.json (do_lower_case, strip_accents,
//                             tokenize_chinese_chars, *_token) and special_tokens_map.json if present
//   vocab.json + merges.txt   byte-level BPE with RoBERTa's special tokens; tokenizer_config.json
//                             (add_prefix_space, *_token) if present
// Missing files -> IoError naming the directory and what it must contain; corrupt files (bad JSON,
// a malformed merges line) -> IoError naming the file (and line); unsupported settings (e.g. model
// type Unigram) -> ConfigError naming the file and what is supported.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// Pads a batch to its longest member (right padding with pad_id); attention mask 1 = real token.
// Shapes: all three are row-major [batch, length]; padded type ids are 0.
struct PaddedBatch {
  std::vector<int64_t> ids_BN, type_ids_BN, mask_BN;
  size_t batch = 0, length = 0;
};
// min_length: pad to at least this many positions even when every member is shorter (a method
// that cannot serve short sequences, e.g. SMYRF with a cluster longer than the batch).
PaddedBatch pad_batch(const std::vector<Encoding>& encodings, int64_t pad_id, size_t min_length = 0);

// HF's "longest_first" truncation of a pair to at most max_length ids in total (no special tokens
// involved; callers subtract them first).
void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>& b, size_t max_length);

}  // namespace smyrf
