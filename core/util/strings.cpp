// String helpers for messages; see strings.h. Tested in tests/light/test_json_options.cpp.
#include "core/util/strings.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "core/util/check.h"

namespace smyrf {

namespace {

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool is_prefix_ci(std::string_view prefix, std::string_view s) {
  if (prefix.size() > s.size()) return false;
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    if (lower(prefix[i]) != lower(s[i])) return false;
  }
  return true;
}

}  // namespace

std::size_t edit_distance(std::string_view a, std::string_view b) {
  // Two-row dynamic programme: row[j] = distance between a[0, i) and b[0, j).
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitute = prev[j - 1] + (lower(a[i - 1]) == lower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, substitute});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_match(std::string_view word, const std::vector<std::string>& candidates) {
  if (word.empty()) return "";
  const std::size_t budget = std::max<std::size_t>(2, word.size() / 3);
  const std::string* best = nullptr;
  std::size_t best_distance = 0;
  std::size_t best_gap = 0;
  for (const std::string& candidate : candidates) {
    const std::size_t d = edit_distance(word, candidate);
    const std::size_t shorter = std::min(word.size(), candidate.size());
    const bool prefix = shorter >= 3 && (is_prefix_ci(word, candidate) || is_prefix_ci(candidate, word));
    // A distance equal to the longer length means every character differs: not a typo.
    const bool close = d <= budget && d < std::max(word.size(), candidate.size());
    if (!(close || prefix)) continue;
    // On equal distance prefer the candidate closest in length: a swapped pair ("cdua") costs 2
    // like an unrelated substitution plus deletion ("cpu"), but keeps the length.
    const std::size_t length_gap = std::max(word.size(), candidate.size()) - shorter;
    if (best == nullptr || d < best_distance || (d == best_distance && length_gap < best_gap)) {
      best = &candidate;
      best_distance = d;
      best_gap = length_gap;
    }
  }
  return best == nullptr ? "" : *best;
}

std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates) {
  const std::string match = closest_match(word, candidates);
  return match.empty() ? "" : " (did you mean '" + match + "'?)";
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.append(sep);
    out += parts[i];
  }
  return out;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return parts;
    start = end + 1;
  }
}

std::vector<std::string> split_lines(const std::string& content) {
  std::vector<std::string> lines;
  std::size_t start = 0;
  while (start < content.size()) {
    std::size_t end = content.find('\n', start);
    if (end == std::string::npos) end = content.size();
    std::string line = content.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  return lines;
}

int64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits]))) ++digits;
  std::string unit = text.substr(digits);
  std::transform(unit.begin(), unit.end(), unit.begin(), lower);
  if (unit.size() == 3 && unit.compare(1, 2, "ib") == 0) unit.resize(1);  // "MiB" -> "m"
  if (unit.size() == 2 && unit[1] == 'b') unit.resize(1);                  // "MB" -> "m"
  const size_t power = unit.empty() ? 0 : std::string("kmgt").find(unit) + 1;  // npos + 1 == 0: no unit
  const bool ok = digits > 0 && digits <= 12 && (unit.empty() || (unit.size() == 1 && power > 0));
  const int64_t value = ok ? std::stoll(text.substr(0, digits)) : 0;
  if (!ok || value <= 0 || value > (int64_t{1} << (62 - 10 * power)))
    throw ConfigError(fmt::format("{}: '{}' is not a size; write bytes or a number with K, M, G or T (e.g. 512M, 4G)",
                                  what, text));
  return value << (10 * power);
}

}  // namespace smyrf
