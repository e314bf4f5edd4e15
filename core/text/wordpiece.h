// BERT's tokenisation steps, as Hugging Face tokenizers runs them (BertNormalizer, BertPreTokenizer,
// WordPiece model):
//   normalize:     clean text (drop U+0000, U+FFFD and control/format/private-use characters; every
//                  whitespace character -> ' '), put spaces around CJK ideographs, NFD + drop Mn
//                  when strip_accents (default: follows lowercase), lower-case. In that order:
//                  accents are stripped before lower-casing, as HF does.
//   pre_tokenize:  split on whitespace (dropped), then isolate every punctuation character.
//   WordPiece:     greedy longest-match-first over code points; pieces after the first carry the
//                  "##" prefix; a word longer than max_input_chars_per_word, or with any piece
//                  missing from the vocabulary, becomes the single unk token.
// Example: "Héllo, 世界!" -> hello , 世 界 ! ; "unaffable" -> un ##aff ##able (given that vocab).
// Tested in tests/light/test_text.cpp (hand-checked cases) and tests/python/test_tokenizers.py
// (ids equal to the tokenizers library on real text and on every code point).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/text/subword_model.h"

namespace smyrf::text {

struct BertNormalizerOptions {
  bool clean_text = true;
  bool handle_chinese_chars = true;
  std::optional<bool> strip_accents;  // unset: strip when lowercase
  bool lowercase = true;
};

std::u32string bert_normalize(std::u32string_view text, const BertNormalizerOptions& options);
// Words in order; whitespace removed, each punctuation character its own word.
std::vector<std::u32string> bert_pre_tokenize(std::u32string_view text);

struct WordPieceOptions {
  std::string unk_token = "[UNK]";
  std::string continuing_subword_prefix = "##";
  std::size_t max_input_chars_per_word = 100;
};

class WordPieceModel : public SubwordModel {
 public:
  // Throws ConfigError (naming `source`) when the unk token is not in the vocabulary.
  WordPieceModel(Vocab vocab, WordPieceOptions options, const std::string& source);
  std::string kind() const override { return "wordpiece"; }
  void tokenize_word(std::string_view word, std::vector<int64_t>& ids,
                     std::vector<std::string>* tokens) const override;
  const Vocab& vocab() const override { return vocab_; }

 private:
  Vocab vocab_;
  WordPieceOptions options_;
  int64_t unk_id_;
};

}  // namespace smyrf::text
