// See json_parse.h.
#include "core/util/json_parse.h"

#include <fmt/format.h>

#include <fstream>
#include <sstream>

#include "core/util/check.h"

namespace smyrf {

std::optional<std::string> json_nesting_problem(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return fmt::format("it nests arrays and objects more than {} levels deep (at byte {})", kMaxJsonDepth, i);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::nullopt;
}

namespace {

[[noreturn]] void throw_for(const JsonSource& source, const std::string& problem) {
  const std::string message = fmt::format("{} is not valid JSON: {}; {}", source.name, problem, source.fix);
  if (source.user_input) throw ConfigError(message);
  throw IoError(message);
}

}  // namespace

template <typename Json>
Json parse_json_with(const std::string& text, const JsonSource& source, typename Json::parser_callback_t callback) {
  if (const auto problem = json_nesting_problem(text)) throw_for(source, *problem);
  try {
    return Json::parse(text, callback, /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const nlohmann::json::exception& e) {
    // what(): "[json.exception.parse_error.101] parse error at line L, column C: <reason>"
    const std::string what = e.what();
    const size_t bracket = what.find("] ");
    throw_for(source, bracket == std::string::npos ? what : what.substr(bracket + 2));
  }
}

template nlohmann::json parse_json_with<nlohmann::json>(const std::string&, const JsonSource&,
                                                        nlohmann::json::parser_callback_t);
template nlohmann::ordered_json parse_json_with<nlohmann::ordered_json>(const std::string&, const JsonSource&,
                                                                        nlohmann::ordered_json::parser_callback_t);

nlohmann::json parse_json(const std::string& text, const JsonSource& source) {
  return parse_json_with<nlohmann::json>(text, source, nullptr);
}

nlohmann::json read_json_file_or_discarded(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  if (!in || json_nesting_problem(text.str())) return nlohmann::json::value_t::discarded;
  return nlohmann::json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
}

}  // namespace smyrf
