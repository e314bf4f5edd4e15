// text_windows: documents -> windows of token ids; see text_windows.h.
#include "datasets/text_windows.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/util/check.h"
#include "core/util/text_file.h"

namespace smyrf {

std::vector<TextWindow> text_windows(const Tokenizer& tokenizer, const TextWindowOptions& options) {
  const size_t specials = tokenizer.special_tokens_added(false);
  if (options.max_tokens <= specials)
    throw ConfigError(fmt::format("text windows of {} tokens leave no room beside the {} special tokens: raise "
                                  "max_tokens", options.max_tokens, specials));
  if (options.files.empty()) throw ConfigError("text windows: no input files given");
  const size_t body = options.max_tokens - specials;
  std::vector<TextWindow> windows;
  for (const std::string& path : options.files) {
    const std::vector<int64_t> ids = tokenizer.ids_of(read_text_file(path, "text file"));
    for (size_t start = 0; start < ids.size(); start += body) {
      const size_t length = std::min(body, ids.size() - start);
      if (length + specials < options.min_tokens) break;
      TextWindow window;
      window.encoding = tokenizer.with_special_tokens(
          std::vector<int64_t>(ids.begin() + static_cast<long>(start), ids.begin() + static_cast<long>(start + length)));
      window.file = path;
      window.first_token = start;
      windows.push_back(std::move(window));
      if (options.max_windows > 0 && windows.size() == options.max_windows) return windows;
    }
  }
  if (windows.empty())
    throw ConfigError(fmt::format("the {} text file(s) yield no window of at least {} tokens: add text or lower "
                                  "min_tokens", options.files.size(), options.min_tokens));
  return windows;
}

}  // namespace smyrf
