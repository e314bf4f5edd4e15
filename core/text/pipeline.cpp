// The shared tokenizer pipeline; see pipeline.h. Tested in tests/light/test_text.cpp and
// tests/python/test_tokenizers.py.
#include "core/text/pipeline.h"

#include <utf8proc.h>

#include <algorithm>
#include <utility>

#include "core/text/unicode.h"
#include "core/util/check.h"

namespace smyrf::text {

namespace {

// Rust regex's \w (Alphabetic, marks, decimal digits, connector punctuation, joiners), used only
// for single_word added tokens. Approximation: letters and Nl stand in for Alphabetic (which also
// has a few circled-letter symbols).
bool is_word_char(char32_t c) {
  if (c == 0x200C || c == 0x200D) return true;
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT: case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN: case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
      return true;
    default:
      return false;
  }
}

struct Span {
  std::size_t begin, end;
  std::optional<std::size_t> token;  // index into the added tokens when this span is one
};

}  // namespace

PostProcessor PostProcessor::bert(int64_t cls, int64_t sep) {
  PostProcessor p;
  p.single = {{false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0}};
  p.pair = {{false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0}, {true, 1, {}, 1}, {false, 0, {sep}, 1}};
  return p;
}

PostProcessor PostProcessor::roberta(int64_t cls, int64_t sep) {
  // HF's RobertaProcessing sets every type id to 0, the second segment's too.
  PostProcessor p;
  p.single = {{false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0}};
  p.pair = {{false, 0, {cls}, 0}, {true, 0, {}, 0}, {false, 0, {sep}, 0},
            {false, 0, {sep}, 0}, {true, 1, {}, 0}, {false, 0, {sep}, 0}};
  return p;
}

std::size_t PostProcessor::added(bool is_pair) const {
  std::size_t n = 0;
  for (const TemplatePiece& piece : is_pair ? pair : single) n += piece.is_sequence ? 0 : piece.ids.size();
  return n;
}

PipelineTokenizer::PipelineTokenizer(PipelineParts parts) : parts_(std::move(parts)) {
  SMYRF_CHECK(parts_.model != nullptr, "PipelineTokenizer needs a model");
  for (const AddedToken& t : parts_.added_tokens) {
    const std::u32string content = utf8_decode(t.content, "an added token");
    patterns_.push_back(t.normalized ? normalize(content) : content);
  }
}

namespace {

std::u32string replace_all(const std::u32string& s, const std::u32string& pattern, const std::u32string& text) {
  if (pattern.empty()) return s;
  std::u32string out;
  std::size_t from = 0;
  for (std::size_t at; (at = s.find(pattern, from)) != std::u32string::npos; from = at + pattern.size())
    out.append(s, from, at - from).append(text);
  return out.append(s, from, std::u32string::npos);
}

// HF's Metaspace pre-tokenizer on one segment (see MetaspaceOptions).
std::vector<std::u32string> metaspace_words(std::u32string_view segment, bool at_start, const MetaspaceOptions& o) {
  std::u32string s = replace_all(std::u32string(segment), U" ", std::u32string(1, o.replacement));
  const bool prepend = o.prepend == MetaspaceOptions::Prepend::kAlways ||
                       (o.prepend == MetaspaceOptions::Prepend::kFirst && at_start);
  if (prepend && (s.empty() || s.front() != o.replacement)) s.insert(s.begin(), o.replacement);
  if (!o.split) return {s};
  std::vector<std::u32string> words;
  for (char32_t c : s) {
    if (c == o.replacement || words.empty()) words.emplace_back();
    words.back().push_back(c);
  }
  return words;
}

}  // namespace

std::u32string PipelineTokenizer::normalize(std::u32string_view text) const {
  std::u32string s(text);
  for (const NormalizerStep& step : parts_.normalizer) {
    switch (step.kind) {
      case NormalizerStep::Kind::kBert:
        s = bert_normalize(s, step.bert);
        break;
      case NormalizerStep::Kind::kLowercase: {
        std::u32string lowered;
        lowered.reserve(s.size());
        for (char32_t c : s) append_lowercase(lowered, c);
        s = std::move(lowered);
        break;
      }
      case NormalizerStep::Kind::kNfd:
        s = nfd(s);
        break;
      case NormalizerStep::Kind::kStripAccents:
        s.erase(std::remove_if(s.begin(), s.end(), is_mark_nonspacing_unicode9), s.end());
        break;
      case NormalizerStep::Kind::kPrepend:
        if (!s.empty()) s.insert(0, step.text);
        break;
      case NormalizerStep::Kind::kReplace:
        s = replace_all(s, step.pattern, step.text);
        break;
    }
  }
  return s;
}

namespace {

// HF's AddedVocabulary::find_matches over the added tokens with the given `normalized` flag: the
// leftmost-longest match, then the next search starts after it (even when single_word discards it).
std::vector<Span> find_added(std::u32string_view s, const std::vector<AddedToken>& tokens,
                             const std::vector<std::u32string>& patterns, bool normalized) {
  std::vector<Span> spans;
  std::size_t start_offset = 0, pos = 0;
  // Next occurrence of each pattern at or after pos (npos: none left); refreshed only when passed.
  constexpr std::size_t kUnsearched = std::u32string_view::npos - 1;
  std::vector<std::size_t> next(tokens.size(), kUnsearched);
  while (pos < s.size()) {
    std::size_t best_at = s.size(), best_len = 0, best = 0;
    for (std::size_t k = 0; k < tokens.size(); ++k) {
      const std::u32string& p = patterns[k];
      if (tokens[k].normalized != normalized || p.empty()) continue;
      if (next[k] == kUnsearched || (next[k] != std::u32string_view::npos && next[k] < pos)) next[k] = s.find(p, pos);
      const std::size_t at = next[k];
      if (at == std::u32string_view::npos) continue;
      if (at < best_at || (at == best_at && p.size() > best_len)) best_at = at, best_len = p.size(), best = k;
    }
    if (best_len == 0) break;
    std::size_t start = best_at, stop = best_at + best_len;
    pos = stop;
    const AddedToken& token = tokens[best];
    if (token.single_word) {
      const bool space_before = start == 0 || !is_word_char(s[start - 1]);
      const bool space_after = stop == s.size() || !is_word_char(s[stop]);
      if (!space_before || !space_after) continue;
    }
    if (token.lstrip) {
      std::size_t left = start;
      while (left > 0 && is_whitespace(s[left - 1])) --left;
      start = std::max(left, start_offset);  // spaces an earlier match took stay with it
    }
    if (token.rstrip) {
      while (stop < s.size() && is_whitespace(s[stop])) ++stop;
    }
    if (start_offset < start) spans.push_back({start_offset, start, std::nullopt});
    spans.push_back({start, stop, best});
    start_offset = stop;
  }
  if (start_offset < s.size()) spans.push_back({start_offset, s.size(), std::nullopt});
  return spans;
}

}  // namespace

void PipelineTokenizer::run(const std::string& text, std::vector<int64_t>& ids,
                            std::vector<std::string>* tokens) const {
  const auto emit_added = [&](std::size_t k) {
    ids.push_back(parts_.added_tokens[k].id);
    if (tokens != nullptr) tokens->push_back(parts_.added_tokens[k].content);
  };
  const std::u32string raw = utf8_decode(text);
  for (const Span& outer : find_added(raw, parts_.added_tokens, patterns_, false)) {
    if (outer.token) {
      emit_added(*outer.token);
      continue;
    }
    const std::u32string normalized = normalize(std::u32string_view(raw).substr(outer.begin, outer.end - outer.begin));
    for (const Span& inner : find_added(normalized, parts_.added_tokens, patterns_, true)) {
      if (inner.token) {
        emit_added(*inner.token);
      } else {
        model_segment(std::u32string_view(normalized).substr(inner.begin, inner.end - inner.begin),
                      outer.begin == 0 && inner.begin == 0, ids, tokens);
      }
    }
  }
}

void PipelineTokenizer::model_segment(std::u32string_view segment, bool at_start, std::vector<int64_t>& ids,
                                      std::vector<std::string>* tokens) const {
  if (segment.empty()) return;
  if (parts_.pre_tokenizer.digits) {
    // HF's Digits: numbers isolated (each digit alone when individual), the rest between them kept whole
    const bool individual = *parts_.pre_tokenizer.digits;
    std::size_t start = 0;
    for (std::size_t i = 1; i <= segment.size(); ++i) {
      const bool cut = i == segment.size() || is_number(segment[i]) != is_number(segment[i - 1]) ||
                       (individual && is_number(segment[i]));
      if (!cut) continue;
      model_piece(segment.substr(start, i - start), at_start && start == 0, ids, tokens);
      start = i;
    }
    return;
  }
  model_piece(segment, at_start, ids, tokens);
}

void PipelineTokenizer::model_piece(std::u32string_view segment, bool at_start, std::vector<int64_t>& ids,
                                    std::vector<std::string>* tokens) const {
  switch (parts_.pre_tokenizer.kind) {
    case PreTokenizer::Kind::kBert:
      for (const std::u32string& word : bert_pre_tokenize(segment)) parts_.model->tokenize_word(utf8_encode(word), ids, tokens);
      break;
    case PreTokenizer::Kind::kByteLevel:
      for (const std::string& word : byte_level_pre_tokenize(segment, parts_.pre_tokenizer.byte_level))
        parts_.model->tokenize_word(word, ids, tokens);
      break;
    case PreTokenizer::Kind::kMetaspace:
      for (const std::u32string& word : metaspace_words(segment, at_start, parts_.pre_tokenizer.metaspace))
        parts_.model->tokenize_word(utf8_encode(word), ids, tokens);
      break;
    case PreTokenizer::Kind::kNone:
      parts_.model->tokenize_word(utf8_encode(segment), ids, tokens);
      break;
  }
}

std::vector<std::string> PipelineTokenizer::tokenize(const std::string& text) const {
  std::vector<int64_t> ids;
  std::vector<std::string> tokens;
  run(text, ids, &tokens);
  return tokens;
}

std::vector<int64_t> PipelineTokenizer::ids_of(const std::string& text) const {
  std::vector<int64_t> ids;
  run(text, ids, nullptr);
  return ids;
}

Encoding PipelineTokenizer::encode(const std::string& text, size_t max_length) const {
  return post_process(ids_of(text), std::nullopt, max_length, true);
}

Encoding PipelineTokenizer::encode_pair(const std::string& a, const std::string& b, size_t max_length) const {
  return post_process(ids_of(a), ids_of(b), max_length, true);
}

Encoding PipelineTokenizer::with_special_tokens(std::vector<int64_t> ids_a,
                                                std::optional<std::vector<int64_t>> ids_b) const {
  return post_process(std::move(ids_a), std::move(ids_b), 0, true);
}

Encoding PipelineTokenizer::post_process(std::vector<int64_t> ids_a, std::optional<std::vector<int64_t>> ids_b,
                                         size_t max_length, bool add_special_tokens) const {
  const bool is_pair = ids_b.has_value();
  if (max_length > 0) {
    size_t budget = max_length;
    if (add_special_tokens) {
      const size_t n_special = special_tokens_added(is_pair);
      if (max_length < n_special) {
        throw ConfigError(fmt::format("max_length {} is smaller than the {} special tokens a {} gets from {}; "
                                      "use max_length >= {} (or 0 for no truncation)",
                                      max_length, n_special, is_pair ? "pair" : "sequence", parts_.source, n_special));
      }
      budget -= n_special;
    }
    if (is_pair) {
      truncate_longest_first(ids_a, *ids_b, budget);
    } else if (ids_a.size() > budget) {
      ids_a.resize(budget);
    }
  }
  Encoding out;
  for (const TemplatePiece& piece : is_pair ? parts_.post_processor.pair : parts_.post_processor.single) {
    const std::vector<int64_t>* ids = &piece.ids;
    if (piece.is_sequence) {
      ids = piece.sequence == 0 ? &ids_a : &*ids_b;
    } else if (!add_special_tokens) {
      continue;
    }
    out.ids.insert(out.ids.end(), ids->begin(), ids->end());
    out.type_ids.insert(out.type_ids.end(), ids->size(), piece.type_id);
  }
  return out;
}

int64_t PipelineTokenizer::pad_id() const {
  if (!parts_.pad_id) {
    throw ConfigError(fmt::format("{} defines no padding token (no padding.pad_id, pad_token, [PAD] or <pad>); "
                                  "add \"pad_token\" to tokenizer_config.json next to it",
                                  parts_.source));
  }
  return *parts_.pad_id;
}

size_t PipelineTokenizer::vocab_size() const {
  int64_t end = parts_.model->vocab().end_id();
  for (const AddedToken& t : parts_.added_tokens) end = std::max(end, t.id + 1);
  return static_cast<size_t>(end);
}

std::optional<int64_t> PipelineTokenizer::token_to_id(const std::string& token) const {
  for (const AddedToken& t : parts_.added_tokens) {
    if (t.content == token) return t.id;
  }
  return parts_.model->vocab().find(token);
}

std::optional<std::string> PipelineTokenizer::id_to_token(int64_t id) const {
  for (const AddedToken& t : parts_.added_tokens) {
    if (t.id == id) return t.content;
  }
  return parts_.model->vocab().token(id);
}

}  // namespace smyrf::text
