// Small string helpers for user-facing messages: edit distance, "did you mean" suggestions, join.
//
// Used by the JSON options reader and the config loader so that every unknown key or bad enum
// value names the closest valid spelling. Tested in tests/light/test_json_options.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace smyrf {

// Levenshtein distance (insert, delete, substitute all cost 1), ASCII case-insensitive.
std::size_t edit_distance(std::string_view a, std::string_view b);

// The candidate closest to `word` when it is plausibly a misspelling of it: edit distance at most
// max(2, |word| / 3) and less than the longer length, or one is a prefix of the other (3+ chars).
// Ties go to the candidate closest in length, then to the earlier one. Returns "" when nothing is close.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

// " (did you mean 'n_hashes'?)" for the closest match, or "" when there is none.
std::string did_you_mean(std::string_view word, const std::vector<std::string>& candidates);

std::string join(const std::vector<std::string>& parts, std::string_view sep);
// Lines split on '\n' with a trailing '\r' removed; no final empty line after a trailing newline.
std::vector<std::string> split_lines(const std::string& content);
// Every piece between separators, empty ones included ("a,,b" -> a, "", b; "" -> one empty piece).
std::vector<std::string> split(const std::string& text, char separator);

// "4096", "512K", "512M", "4G", "1T" (binary multiples; "MiB", "MB" and "GiB" read the same) ->
// bytes. Anything else, zero or a size beyond 2^62 -> ConfigError naming `what` and the forms.
int64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace smyrf
