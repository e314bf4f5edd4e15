// See attention_argument.h.
#include "experiments/cli/attention_argument.h"

#include <fmt/format.h>

#include "core/util/check.h"

namespace smyrf {

nlohmann::json parse_attention_argument(const std::string& text, const std::string& flag,
                                        const nlohmann::json& when_absent) {
  if (text.empty()) return when_absent;
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(fmt::format("{} is not valid JSON ({}); write it like '{{\"method\": \"smyrf\"}}'", flag, e.what()));
  }
}

}  // namespace smyrf
