// The piece shared by the two sub-word models (WordPiece, byte-level BPE): a vocabulary (token
// string <-> id) and the interface a model offers the tokenizer pipeline (core/text/pipeline.h).
// A model sees one pre-tokenized word at a time (UTF-8; for byte-level BPE already mapped through
// the byte-to-unicode table) and appends its ids. Tested through tests/light/test_text.cpp.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace smyrf::text {

class Vocab {
 public:
  // A token seen twice keeps its last id (as a JSON object or Python dict would); ids may have gaps,
  // so the reverse map is a hash map: a file with one id near 2^31 must not allocate 2^31 slots.
  void add(std::string token, int64_t id) {
    by_id_[id] = token;
    end_id_ = std::max(end_id_, id + 1);
    ids_[std::move(token)] = id;
  }
  std::optional<int64_t> find(const std::string& token) const {
    const auto it = ids_.find(token);
    if (it == ids_.end()) return std::nullopt;
    return it->second;
  }
  bool contains(const std::string& token) const { return ids_.count(token) != 0; }
  std::optional<std::string> token(int64_t id) const {
    const auto slot = by_id_.find(id);
    if (slot == by_id_.end()) return std::nullopt;
    const std::string& t = slot->second;
    // A token given two ids keeps the last; only report tokens that map back to this id.
    const auto it = ids_.find(t);
    if (it == ids_.end() || it->second != id) return std::nullopt;
    return t;
  }
  std::size_t size() const { return ids_.size(); }
  int64_t end_id() const { return end_id_; }  // max id + 1

 private:
  std::unordered_map<std::string, int64_t> ids_;
  std::unordered_map<int64_t, std::string> by_id_;
  int64_t end_id_ = 0;
};

class SubwordModel {
 public:
  virtual ~SubwordModel() = default;
  virtual std::string kind() const = 0;  // "wordpiece" | "bpe"
  // Appends the ids of one pre-tokenized word (and, when tokens != nullptr, their strings).
  virtual void tokenize_word(std::string_view word, std::vector<int64_t>& ids,
                             std::vector<std::string>* tokens) const = 0;
  virtual const Vocab& vocab() const = 0;
};

}  // namespace smyrf::text
