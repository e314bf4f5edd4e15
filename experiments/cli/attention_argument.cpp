// See attention_argument.h.
#include "experiments/cli/attention_argument.h"

#include <fmt/format.h>

#include "core/util/check.h"
#include "core/util/json_parse.h"

namespace smyrf {

nlohmann::json parse_attention_argument(const std::string& text, const std::string& flag,
                                        const nlohmann::json& when_absent) {
  if (text.empty()) return when_absent;
  return parse_json(text, {flag, R"(write it like '{"method": "smyrf"}')", true});
}

}  // namespace smyrf
