// Byte-level pre-tokenizer and BPE model; see byte_level_bpe.h. Tested in tests/light/test_text.cpp
// and tests/python/test_tokenizers.py.
#include "core/text/byte_level_bpe.h"

#include <queue>

#include "core/text/unicode.h"
#include "core/util/check.h"

namespace smyrf::text {

const std::array<char32_t, 256>& bytes_to_unicode() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> t{};
    const auto printable = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE); };
    char32_t next = 256;
    for (int b = 0; b < 256; ++b) t[static_cast<std::size_t>(b)] = printable(b) ? static_cast<char32_t>(b) : next++;
    return t;
  }();
  return table;
}

std::vector<std::u32string> gpt2_split(std::u32string_view s) {
  std::vector<std::u32string> pieces;
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    std::size_t end = i;
    // 's|'t|'re|'ve|'m|'ll|'d
    if (s[i] == '\'' && i + 1 < n) {
      const char32_t a = s[i + 1], b = i + 2 < n ? s[i + 2] : 0;
      if (a == 's' || a == 't' || a == 'm' || a == 'd') {
        end = i + 2;
      } else if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) {
        end = i + 3;
      }
    }
    // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+': an optional literal space, then a run of one class.
    if (end == i) {
      const std::size_t j = s[i] == ' ' ? i + 1 : i;
      if (j < n) {
        bool (*cls)(char32_t) = nullptr;
        if (is_letter(s[j])) {
          cls = [](char32_t c) { return is_letter(c); };
        } else if (is_number(s[j])) {
          cls = [](char32_t c) { return is_number(c); };
        } else if (!is_whitespace(s[j])) {
          cls = [](char32_t c) { return !is_whitespace(c) && !is_letter(c) && !is_number(c); };
        }
        if (cls != nullptr) {
          end = j;
          while (end < n && cls(s[end])) ++end;
        }
      }
    }
    // '\s+(?!\S)' then '\s+': a whitespace run; when a non-space follows, its last space is left
    // to prefix the next word (unless the run is a single character).
    if (end == i) {
      std::size_t k = i;
      while (k < n && is_whitespace(s[k])) ++k;
      SMYRF_CHECK(k > i, "gpt2_split: no alternative matched at code point {}", i);
      end = (k < n && k - i >= 2) ? k - 1 : k;
    }
    pieces.emplace_back(s.substr(i, end - i));
    i = end;
  }
  return pieces;
}

std::string byte_level_map(std::u32string_view piece) {
  const auto& table = bytes_to_unicode();
  const std::string bytes = utf8_encode(piece);
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) utf8_append(out, table[b]);
  return out;
}

std::vector<std::string> byte_level_pre_tokenize(std::u32string_view text, const ByteLevelOptions& options) {
  std::u32string prefixed;
  if (options.add_prefix_space && !text.empty() && text.front() != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  std::vector<std::string> words;
  if (!options.use_regex) {
    if (!text.empty()) words.push_back(byte_level_map(text));
    return words;
  }
  for (const std::u32string& piece : gpt2_split(text)) words.push_back(byte_level_map(piece));
  return words;
}

BpeModel::BpeModel(Vocab vocab, const std::vector<MergeRule>& merges, BpeOptions options, const std::string& source,
                   const std::string& merge_unit)
    : vocab_(std::move(vocab)), options_(std::move(options)) {
  if (options_.unk_token) {
    unk_id_ = vocab_.find(*options_.unk_token);
    if (!unk_id_) {
      throw ConfigError(fmt::format("{}: the BPE unk token '{}' is not in the vocabulary ({} tokens); set "
                                    "unk_token to a vocabulary token or to null",
                                    source, *options_.unk_token, vocab_.size()));
    }
  }
  const std::size_t prefix_len = options_.continuing_subword_prefix.size();
  merges_.reserve(merges.size());
  for (std::size_t rank = 0; rank < merges.size(); ++rank) {
    const MergeRule& m = merges[rank];
    const auto missing = [&](const std::string& token) {
      return IoError(fmt::format("{}: {} {}: the merge '{} {}' uses the token '{}', which is not in the "
                                 "vocabulary; the vocabulary and merges do not belong together (re-save both from "
                                 "one tokenizer)",
                                 source, merge_unit, m.line, m.left, m.right, token));
    };
    const auto left = vocab_.find(m.left);
    if (!left) throw missing(m.left);
    const auto right = vocab_.find(m.right);
    if (!right) throw missing(m.right);
    // HF drops the continuing-subword prefix of the right part: "a" + "##b" -> "ab".
    const std::string merged =
        m.left + (m.right.size() >= prefix_len ? m.right.substr(prefix_len) : std::string());
    const auto merged_id = vocab_.find(merged);
    if (!merged_id) throw missing(merged);
    merges_[(static_cast<uint64_t>(*left) << 32) | static_cast<uint64_t>(*right)] = {static_cast<uint32_t>(rank),
                                                                                      *merged_id};
  }
}

void BpeModel::tokenize_word(std::string_view word, std::vector<int64_t>& ids,
                             std::vector<std::string>* tokens) const {
  if (word.empty()) return;
  const auto emit = [&](int64_t id) {
    ids.push_back(id);
    if (tokens != nullptr) tokens->push_back(vocab_.token(id).value_or(""));
  };
  if (options_.ignore_merges) {
    if (const auto id = vocab_.find(std::string(word))) return emit(*id);
  }

  // Initial symbols, one per code point (HF's merge_word).
  struct Symbol {
    int64_t id;
    long prev, next;
    bool alive;
  };
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  const auto push = [&](int64_t id) {
    symbols.push_back({id, static_cast<long>(symbols.size()) - 1, static_cast<long>(symbols.size()) + 1, true});
  };
  std::optional<int64_t> pending_unk;
  std::string s;
  for (std::size_t i = 0; i < word.size();) {
    std::size_t j = i + 1;
    while (j < word.size() && (static_cast<unsigned char>(word[j]) & 0xC0) == 0x80) ++j;
    s.clear();
    if (i > 0) s = options_.continuing_subword_prefix;
    s.append(word.substr(i, j - i));
    if (j == word.size()) s += options_.end_of_word_suffix;
    i = j;
    if (const auto id = vocab_.find(s)) {
      if (pending_unk) push(*pending_unk), pending_unk.reset();
      push(*id);
      continue;
    }
    if (options_.byte_fallback) {
      std::vector<int64_t> bytes;
      for (unsigned char b : s) {
        const auto id = vocab_.find(fmt::format("<0x{:02X}>", static_cast<unsigned>(b)));
        if (!id) break;
        bytes.push_back(*id);
      }
      if (bytes.size() == s.size()) {
        for (int64_t id : bytes) push(id);
        continue;
      }
    }
    if (unk_id_) {
      // Without fuse_unk each unknown symbol is its own unk; with it, a run of them is one.
      if (pending_unk && !options_.fuse_unk) push(*pending_unk);
      pending_unk = unk_id_;
    }
    // No unk token: HF drops the symbol.
  }
  if (pending_unk) push(*pending_unk);
  if (symbols.empty()) return;
  symbols.back().next = -1;

  // Merge by (rank, position), lowest first; stale queue entries are skipped (HF's merge_all).
  struct Candidate {
    uint32_t rank;
    long pos;
    int64_t new_id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  const auto lookup = [&](int64_t a, int64_t b) -> const std::pair<uint32_t, int64_t>* {
    const auto it = merges_.find((static_cast<uint64_t>(a) << 32) | static_cast<uint64_t>(b));
    return it == merges_.end() ? nullptr : &it->second;
  };
  for (std::size_t k = 0; k + 1 < symbols.size(); ++k) {
    if (const auto* m = lookup(symbols[k].id, symbols[k + 1].id)) queue.push({m->first, static_cast<long>(k), m->second});
  }
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[static_cast<std::size_t>(top.pos)];
    if (!left.alive || left.next < 0) continue;
    const long next_pos = left.next;
    Symbol& right = symbols[static_cast<std::size_t>(next_pos)];
    const auto* current = lookup(left.id, right.id);
    if (current == nullptr || current->second != top.new_id) continue;  // expired entry
    left.id = top.new_id;
    left.next = right.next;
    right.alive = false;
    if (right.next >= 0) symbols[static_cast<std::size_t>(right.next)].prev = top.pos;
    if (left.prev >= 0) {
      if (const auto* m = lookup(symbols[static_cast<std::size_t>(left.prev)].id, left.id))
        queue.push({m->first, left.prev, m->second});
    }
    if (left.next >= 0) {
      if (const auto* m = lookup(left.id, symbols[static_cast<std::size_t>(left.next)].id))
        queue.push({m->first, top.pos, m->second});
    }
  }
  for (const Symbol& sym : symbols) {
    if (sym.alive) emit(sym.id);
  }
}

}  // namespace smyrf::text
