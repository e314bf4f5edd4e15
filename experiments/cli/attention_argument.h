// The `--attention JSON` argument of `smyrf attend`, `encode` and `biggan-forward`, parsed in one
// place: invalid JSON is a ConfigError naming the flag and showing the expected form. The method's
// own options are checked by make_attention (core/attention/registry.h).
// Tested by tests/test_experiments.cpp (CliAttend) and tests/test_pretrained.cpp (CliEncode).
#pragma once

#include <nlohmann/json.hpp>

#include <string>

namespace smyrf {

// `text` empty gives `when_absent`.
nlohmann::json parse_attention_argument(const std::string& text, const std::string& flag,
                                        const nlohmann::json& when_absent = nlohmann::json());

}  // namespace smyrf
