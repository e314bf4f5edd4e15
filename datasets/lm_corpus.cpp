// Documents -> training and held-out token streams; see lm_corpus.h.
#include "datasets/lm_corpus.h"

#include <fmt/format.h>
#include <glob.h>

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "core/util/check.h"
#include "core/util/text_file.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

uint64_t fnv1a(const std::string& text) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : text) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

double unit_hash(const std::string& path) { return static_cast<double>(fnv1a(path) >> 11) * 0x1.0p-53; }

std::vector<std::string> glob_pattern(const std::string& pattern) {
  glob_t found{};
  const int rc = glob(pattern.c_str(), GLOB_ERR, nullptr, &found);
  std::vector<std::string> paths(found.gl_pathv, found.gl_pathv + (rc == 0 ? found.gl_pathc : 0));
  globfree(&found);
  return paths;
}

void append(LmStream& stream, const std::string& path, const std::string& text, const LmTokenizer& tokenizer) {
  const std::vector<int32_t> ids = tokenizer.encode(text);
  stream.ids.insert(stream.ids.end(), ids.begin(), ids.end());
  stream.bytes += static_cast<int64_t>(text.size());
  stream.documents.push_back(path);
}

}  // namespace

LmTokenizer LmTokenizer::from_spec(const std::string& spec) {
  LmTokenizer t;
  t.spec_ = spec;
  if (spec != "bytes") t.tokenizer_ = load_tokenizer(spec);
  return t;
}

std::vector<int32_t> LmTokenizer::encode(const std::string& text) const {
  if (tokenizer_ == nullptr) return std::vector<int32_t>(reinterpret_cast<const unsigned char*>(text.data()),
                                                          reinterpret_cast<const unsigned char*>(text.data()) + text.size());
  const std::vector<int64_t> ids = tokenizer_->ids_of(text);
  return std::vector<int32_t>(ids.begin(), ids.end());
}

int64_t LmTokenizer::vocab_size() const {
  return tokenizer_ == nullptr ? 256 : static_cast<int64_t>(tokenizer_->vocab_size());
}

double LmStream::bytes_per_token() const {
  return ids.empty() ? 0.0 : static_cast<double>(bytes) / static_cast<double>(ids.size());
}

std::vector<std::string> expand_text_files(const std::vector<std::string>& patterns, const std::string& what) {
  if (patterns.empty()) throw ConfigError(fmt::format("{} is empty: give text files or glob patterns", what));
  std::vector<std::string> files;
  for (const std::string& pattern : patterns) {
    const std::vector<std::string> matched = glob_pattern(pattern);
    if (matched.empty())
      throw IoError(fmt::format("{}: '{}' matches no file; give existing text files (e.g. "
                                "\"/usr/share/common-licenses/*\")", what, pattern));
    for (const std::string& path : matched) {
      std::error_code ec;
      const fs::path real = fs::canonical(path, ec);
      if (!ec && fs::is_regular_file(real)) files.push_back(real.string());
    }
  }
  std::sort(files.begin(), files.end());
  files.erase(std::unique(files.begin(), files.end()), files.end());
  if (files.empty()) throw IoError(fmt::format("{}: the patterns match only directories or broken links", what));
  return files;
}

bool held_out_document(const std::string& path, double held_out_fraction) {
  return unit_hash(path) < held_out_fraction;
}

LmCorpus load_lm_corpus(const LmCorpusOptions& options, const LmTokenizer& tokenizer, const std::string& what) {
  std::vector<std::string> files = expand_text_files(options.files, what);
  if (options.max_documents > 0 && static_cast<int64_t>(files.size()) > options.max_documents)
    files.resize(static_cast<size_t>(options.max_documents));
  LmCorpus corpus;
  std::unordered_map<std::string, size_t> seen;  // text -> index of its file
  std::vector<std::pair<std::string, std::string>> documents;  // path, text
  for (const std::string& path : files) {
    std::string text = read_text_file(path, "text file");
    if (text.empty()) {
      ++corpus.empty_documents;
    } else if (!seen.emplace(text, documents.size()).second) {
      ++corpus.duplicate_documents;
    } else {
      documents.emplace_back(path, std::move(text));
    }
  }
  if (documents.size() < 2)
    throw ConfigError(fmt::format("{}: {} distinct non-empty document(s); a training and a held-out part need at "
                                  "least 2: add files", what, documents.size()));
  std::vector<bool> held(documents.size());
  for (size_t i = 0; i < documents.size(); ++i) held[i] = held_out_document(documents[i].first, options.held_out_fraction);
  const auto by_hash = [&](size_t a, size_t b) { return unit_hash(documents[a].first) < unit_hash(documents[b].first); };
  std::vector<size_t> order(documents.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (std::none_of(held.begin(), held.end(), [](bool h) { return h; }))
    held[*std::min_element(order.begin(), order.end(), by_hash)] = true;
  if (std::all_of(held.begin(), held.end(), [](bool h) { return h; }))
    held[*std::max_element(order.begin(), order.end(), by_hash)] = false;
  for (size_t i = 0; i < documents.size(); ++i)
    append(held[i] ? corpus.held_out : corpus.train, documents[i].first, documents[i].second, tokenizer);
  return corpus;
}

}  // namespace smyrf
