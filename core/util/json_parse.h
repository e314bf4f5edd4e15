// Every JSON text the harness reads goes through here: configs, model and tokenizer files, results
// attributes, state files, command-line arguments. Limits keep a hostile text from crashing or
// stalling a reader:
//   - nesting deeper than kMaxJsonDepth levels is refused before nlohmann parses it: its dump,
//     copy and comparison recurse once per level, so a deep enough text overflows the stack;
//   - every nlohmann error (syntax, a number too large for a double, invalid UTF-8) becomes the
//     harness's error naming the source and its fix, never an escaping json::exception.
// Tested by tests/light/test_json_parse.cpp and the fuzz targets in tests/fuzz/.
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace smyrf {

// Real configs and model files nest fewer than 10 levels.
constexpr int kMaxJsonDepth = 100;

// Why `text` cannot be parsed safely (too deep, with the byte where it got so), or nothing. Brackets
// inside strings do not count.
std::optional<std::string> json_nesting_problem(std::string_view text);

struct JsonSource {
  std::string name;         // in messages: "config file 'a.json'", "--attention", "tokenizer file 'x'"
  std::string fix;          // what to do about a bad text: "re-download it", "write it like ..."
  bool user_input = false;  // true: ConfigError (a config or argument); false: IoError (a file we read)
};

// Parses `text`; any problem throws ConfigError or IoError (per source.user_input) naming the source.
nlohmann::json parse_json(const std::string& text, const JsonSource& source);

// Parses `text` with a parser callback (for checks made while parsing: repeated keys), under the
// same limits; Json is nlohmann::json or nlohmann::ordered_json.
template <typename Json>
Json parse_json_with(const std::string& text, const JsonSource& source, typename Json::parser_callback_t callback);

// The file parsed, or a discarded value when it is missing, unreadable, too deep or not JSON: for
// the harness's own state files, where such a file means "start over".
nlohmann::json read_json_file_or_discarded(const std::string& path);

}  // namespace smyrf
