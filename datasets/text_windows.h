// Real text -> model-sized windows of token ids, for the pretrained pipelines (pretrained_dropin,
// capture). Each file is one document: tokenized whole (no special tokens), cut into consecutive
// windows of at most max_tokens ids including the model's special tokens ([CLS] … [SEP] or
// <s> … </s>); a document's last window is kept when it has at least min_tokens tokens (special
// tokens included), so windows of
// unequal length (and so padding) occur naturally. Windows are taken in file order until max_windows.
// Missing or unreadable file: IoError naming it; a corpus that yields no window: ConfigError saying
// which sizes to change. Tested by tests/test_pretrained.cpp.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "core/text/tokenizer.h"

namespace smyrf {

struct TextWindow {
  Encoding encoding;     // with special tokens
  std::string file;      // the document it came from
  size_t first_token = 0;  // offset of its first (non-special) token in that document
};

struct TextWindowOptions {
  std::vector<std::string> files;
  size_t max_tokens = 512;  // per window, special tokens included
  size_t min_tokens = 16;   // a document's short tail below this is dropped
  size_t max_windows = 16;  // 0 = all
};

std::vector<TextWindow> text_windows(const Tokenizer& tokenizer, const TextWindowOptions& options);

}  // namespace smyrf
