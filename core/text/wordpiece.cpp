// BERT normalizer, pre-tokenizer and WordPiece model; see wordpiece.h. Tested in
// tests/light/test_text.cpp and tests/python/test_tokenizers.py.
#include "core/text/wordpiece.h"

#include <utility>

#include "core/text/unicode.h"
#include "core/util/check.h"

namespace smyrf::text {

std::u32string bert_normalize(std::u32string_view text, const BertNormalizerOptions& options) {
  std::u32string s;
  s.reserve(text.size() + text.size() / 4);
  for (char32_t c : text) {
    if (options.clean_text) {
      // \t \n \r are Cc but count as whitespace.
      const bool tab_or_newline = c == '\t' || c == '\n' || c == '\r';
      if (c == 0 || c == 0xFFFD || (!tab_or_newline && is_other_unicode9(c))) continue;
      if (is_whitespace(c)) c = ' ';
    }
    if (options.handle_chinese_chars && is_cjk_ideograph(c)) {
      s.push_back(' ');
      s.push_back(c);
      s.push_back(' ');
    } else {
      s.push_back(c);
    }
  }
  if (options.strip_accents.value_or(options.lowercase)) {
    std::u32string decomposed = nfd(s);
    s.clear();
    for (char32_t c : decomposed) {
      if (!is_mark_nonspacing_unicode9(c)) s.push_back(c);
    }
  }
  if (options.lowercase) {
    std::u32string lowered;
    lowered.reserve(s.size());
    for (char32_t c : s) append_lowercase(lowered, c);
    s = std::move(lowered);
  }
  return s;
}

std::vector<std::u32string> bert_pre_tokenize(std::u32string_view text) {
  std::vector<std::u32string> words;
  std::u32string current;
  const auto flush = [&] {
    if (!current.empty()) words.push_back(std::move(current));
    current.clear();
  };
  for (char32_t c : text) {
    if (is_whitespace(c)) {
      flush();
    } else if (is_bert_punctuation(c)) {
      flush();
      words.emplace_back(1, c);
    } else {
      current.push_back(c);
    }
  }
  flush();
  return words;
}

WordPieceModel::WordPieceModel(Vocab vocab, WordPieceOptions options, const std::string& source)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  const auto unk = vocab_.find(options_.unk_token);
  if (!unk) {
    throw ConfigError(fmt::format("{}: the WordPiece unk token '{}' is not in the vocabulary ({} tokens); "
                                  "set unk_token to a token the vocabulary has",
                                  source, options_.unk_token, vocab_.size()));
  }
  unk_id_ = *unk;
}

void WordPieceModel::tokenize_word(std::string_view word, std::vector<int64_t>& ids,
                                   std::vector<std::string>* tokens) const {
  // Byte offsets of the code point boundaries (UTF-8 lead bytes), plus the end.
  std::vector<std::size_t> bounds;
  bounds.reserve(word.size() + 1);
  for (std::size_t i = 0; i < word.size(); ++i) {
    if ((static_cast<unsigned char>(word[i]) & 0xC0) != 0x80) bounds.push_back(i);
  }
  bounds.push_back(word.size());
  const std::size_t n_chars = bounds.size() - 1;
  const auto emit_unk = [&] {
    ids.push_back(unk_id_);
    if (tokens != nullptr) tokens->push_back(options_.unk_token);
  };
  if (n_chars > options_.max_input_chars_per_word) return emit_unk();

  const std::size_t first_id = ids.size(), first_token = tokens != nullptr ? tokens->size() : 0;
  std::size_t start = 0;  // index into bounds
  std::string candidate;
  while (start < n_chars) {
    std::size_t end = n_chars;
    std::optional<int64_t> found;
    for (; end > start; --end) {
      candidate.clear();
      if (start > 0) candidate = options_.continuing_subword_prefix;
      candidate.append(word.substr(bounds[start], bounds[end] - bounds[start]));
      if ((found = vocab_.find(candidate))) break;
    }
    if (!found) {
      // Any piece missing: the whole word is unknown, pieces found so far are dropped.
      ids.resize(first_id);
      if (tokens != nullptr) tokens->resize(first_token);
      return emit_unk();
    }
    ids.push_back(*found);
    if (tokens != nullptr) tokens->push_back(candidate);
    start = end;
  }
}

}  // namespace smyrf::text
