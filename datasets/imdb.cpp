// aclImdb v1 loader (see imdb.h for the tree, labels, "<br />" handling and errors).
//
// Only SPLIT/neg/ and SPLIT/pos/ are read: the split folder's other entries (train/unsup/ with its
// rating-0 reviews, labeledBow.feat, urls_*.txt) are not labelled reviews. Inside neg/ and pos/
// every entry must be <id>_<rating>.txt with its rating on the folder's side (neg <= 4, pos >= 7),
// so that a misplaced or stray file is an error instead of a silently wrong label.
// Tested by tests/light/test_text_datasets.cpp.
#include "datasets/imdb.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string_view>
#include <tuple>
#include <vector>

#include "core/text/unicode.h"
#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

namespace {

namespace fs = std::filesystem;

constexpr int kMaxNegRating = 4;  // aclImdb README: negative reviews have a score <= 4 out of 10
constexpr int kMinPosRating = 7;  // ... and positive reviews a score >= 7

struct ReviewFile {
  std::uint64_t id = 0;
  int rating = 0;
  fs::path path;
};

bool all_digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Parses "<id>_<rating>.txt"; false when the name has another form.
bool parse_review_name(std::string_view name, std::uint64_t& id, int& rating) {
  constexpr std::string_view kExt = ".txt";
  if (name.size() <= kExt.size() || name.substr(name.size() - kExt.size()) != kExt) return false;
  const std::string_view stem = name.substr(0, name.size() - kExt.size());
  const std::size_t underscore = stem.find('_');
  if (underscore == std::string_view::npos) return false;
  const std::string_view id_text = stem.substr(0, underscore), rating_text = stem.substr(underscore + 1);
  if (!all_digits(id_text) || !all_digits(rating_text) || id_text.size() > 18 || rating_text.size() > 2) return false;
  id = std::stoull(std::string(id_text));
  rating = std::stoi(std::string(rating_text));
  return true;
}

// The folder's review files, checked and in numeric id order.
std::vector<ReviewFile> list_reviews(const fs::path& folder, bool positive) {
  std::vector<ReviewFile> files;
  for (const fs::directory_entry& entry : fs::directory_iterator(folder)) {
    const std::string name = entry.path().filename().string();
    ReviewFile file;
    file.path = entry.path();
    if (!entry.is_regular_file() || !parse_review_name(name, file.id, file.rating)) {
      throw IoError(
          fmt::format("{}: not an aclImdb review file; every entry of {}/ must be a file named "
                      "<id>_<rating>.txt (remove it, or re-fetch with scripts/fetch_imdb.sh)",
                      entry.path().string(), folder.string()));
    }
    if (file.rating < 1 || file.rating > 10) {
      throw IoError(fmt::format("{}: rating {} is outside 1..10", file.path.string(), file.rating));
    }
    const bool agrees = positive ? file.rating >= kMinPosRating : file.rating <= kMaxNegRating;
    if (!agrees) {
      throw IoError(
          fmt::format("{}: rating {} contradicts its folder {}/ (neg/ holds ratings <= {}, pos/ ratings "
                      ">= {}); the file is in the wrong folder",
                      file.path.string(), file.rating, positive ? "pos" : "neg", kMaxNegRating, kMinPosRating));
    }
    files.push_back(std::move(file));
  }
  std::sort(files.begin(), files.end(), [](const ReviewFile& a, const ReviewFile& b) {
    return std::tie(a.id, a.rating, a.path) < std::tie(b.id, b.rating, b.path);
  });
  return files;
}

// Each "<br />", "<br/>" and "<br>" becomes one space.
std::string replace_line_breaks(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  std::size_t i = 0;
  while (i < text.size()) {
    const std::size_t at = text.find("<br", i);
    if (at == std::string::npos) break;
    out.append(text, i, at - i);
    std::size_t length = 0;
    for (std::string_view tag : {std::string_view("<br />"), std::string_view("<br/>"), std::string_view("<br>")}) {
      if (text.compare(at, tag.size(), tag) == 0) {
        length = tag.size();
        break;
      }
    }
    if (length == 0) {  // "<bright", "<br class=...>": not a line break
      out.append("<br");
      i = at + 3;
    } else {
      out.push_back(' ');
      i = at + length;
    }
  }
  out.append(text, i, std::string::npos);
  return out;
}

std::string read_review(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(fmt::format("cannot open IMDB review '{}' for reading", path.string()));
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw IoError(fmt::format("read error in IMDB review '{}'", path.string()));
  return text;
}

bool is_blank(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); });
}

}  // namespace

const EnumNames<ImdbLineBreaks> kImdbBreakNames = {{"space", ImdbLineBreaks::kSpace}, {"keep", ImdbLineBreaks::kKeep}};

TextSplit load_imdb_split(const std::string& aclimdb_dir, const std::string& split, const ImdbLoadOptions& options) {
  const std::vector<std::string> kSplits = {"train", "test"};
  if (std::find(kSplits.begin(), kSplits.end(), split) == kSplits.end()) {
    throw ConfigError(fmt::format("unknown IMDB split '{}'{}; valid splits: train, test (train/unsup/ is unlabelled)",
                                  split, did_you_mean(split, kSplits)));
  }
  if (aclimdb_dir.empty() || !fs::is_directory(aclimdb_dir)) {
    throw IoError(
        fmt::format("aclImdb directory '{}' not found: run scripts/fetch_imdb.sh DEST (it creates "
                    "DEST/aclImdb) or set data.dir",
                    aclimdb_dir));
  }
  const fs::path split_dir = fs::path(aclimdb_dir) / split;

  TextSplit out;
  out.label_names = {"neg", "pos"};
  out.source = split_dir.string();
  for (const bool positive : {false, true}) {
    const fs::path folder = split_dir / (positive ? "pos" : "neg");
    if (!fs::is_directory(folder)) {
      throw IoError(
          fmt::format("aclImdb folder '{}' not found: data.dir must be the aclImdb folder holding "
                      "train/ and test/ (run scripts/fetch_imdb.sh DEST or set data.dir)",
                      folder.string()));
    }
    for (const ReviewFile& file : list_reviews(folder, positive)) {
      TextExample example;
      example.origin = file.path.string();
      example.text_a = read_review(file.path);
      try {
        text::utf8_decode(example.text_a, "the review");
      } catch (const Error& e) {
        throw IoError(
            fmt::format("{}: not UTF-8 ({}); re-fetch the data with scripts/fetch_imdb.sh", example.origin, e.what()));
      }
      if (options.br == ImdbLineBreaks::kSpace) example.text_a = replace_line_breaks(example.text_a);
      if (is_blank(example.text_a)) {
        throw IoError(fmt::format("{}: empty review (no text{}); remove the file or re-fetch the data", example.origin,
                                  options.br == ImdbLineBreaks::kSpace ? " besides <br /> line breaks" : ""));
      }
      example.label = positive ? 1 : 0;
      out.examples.push_back(std::move(example));
    }
  }
  return out;
}

}  // namespace smyrf
