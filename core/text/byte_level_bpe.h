// GPT-2 / RoBERTa byte-level BPE, as Hugging Face tokenizers runs it (ByteLevel pre-tokenizer,
// BPE model):
//   pre_tokenize:  optionally prefix a space (add_prefix_space: only when the text does not already
//                  start with ' '), split with the GPT-2 regex
//                    's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//                  (matched by hand: ordered alternation, first alternative that matches wins),
//                  then map every UTF-8 byte of a piece to one printable code point
//                  (bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 to
//                  U+0100..U+0143), so "Ġ" (U+0120) is the byte 0x20, a space.
//   BPE:           one symbol per code point of the mapped piece; repeatedly merge the adjacent pair
//                  with the lowest merge rank (leftmost on ties) until no pair has a rank — HF's
//                  priority-queue order. Supports HF's unk_token/fuse_unk, byte_fallback,
//                  continuing_subword_prefix, end_of_word_suffix and ignore_merges; not dropout.
// Example with merges [h e, l l, he ll, hell o]: "hello" -> h e l l o -> he l l o -> he ll o
//   -> hell o -> hello.
// Tested in tests/light/test_text.cpp (byte table bijection, regex splits, hand-checked merges) and
// tests/python/test_tokenizers.py (ids equal to the tokenizers library on real text).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/text/subword_model.h"

namespace smyrf::text {

// byte -> code point (GPT-2's bytes_to_unicode); a bijection onto 256 distinct code points.
const std::array<char32_t, 256>& bytes_to_unicode();

// The GPT-2 regex split; pieces cover the text exactly, in order.
std::vector<std::u32string> gpt2_split(std::u32string_view text);

// The UTF-8 bytes of `piece`, each mapped through bytes_to_unicode, as a UTF-8 string.
std::string byte_level_map(std::u32string_view piece);

struct ByteLevelOptions {
  bool add_prefix_space = false;  // RoBERTa's tokenizer.json says false
  bool use_regex = true;
};

// Prefix space (if asked) + regex split + byte mapping: the words the BPE model receives.
std::vector<std::string> byte_level_pre_tokenize(std::u32string_view text, const ByteLevelOptions& options);

struct BpeOptions {
  std::optional<std::string> unk_token;  // RoBERTa: none (every byte is in the vocabulary)
  std::string continuing_subword_prefix;
  std::string end_of_word_suffix;
  bool fuse_unk = false;
  bool byte_fallback = false;  // unknown symbols -> "<0xAB>" byte tokens when the vocabulary has them
  bool ignore_merges = false;  // a word that is itself in the vocabulary is one token
};

struct MergeRule {
  std::string left, right;
  std::size_t line = 0;  // 1-based line of merges.txt, or the index in tokenizer.json model.merges
};

class BpeModel : public SubwordModel {
 public:
  // Rank = position in `merges` (a repeated pair keeps its last rank). Throws IoError naming
  // `source` and "<merge_unit> <line>" when a merge uses a token missing from the vocabulary, and
  // ConfigError when unk_token is set but not in the vocabulary.
  BpeModel(Vocab vocab, const std::vector<MergeRule>& merges, BpeOptions options, const std::string& source,
           const std::string& merge_unit = "line");
  std::string kind() const override { return "bpe"; }
  void tokenize_word(std::string_view word, std::vector<int64_t>& ids,
                     std::vector<std::string>* tokens) const override;
  const Vocab& vocab() const override { return vocab_; }
  std::size_t n_merges() const { return merges_.size(); }

 private:
  Vocab vocab_;
  BpeOptions options_;
  std::optional<int64_t> unk_id_;
  // (left id << 32 | right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<uint32_t, int64_t>> merges_;
};

}  // namespace smyrf::text
