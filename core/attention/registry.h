// Name -> factory for every attention method. The table lives in registry.cpp (explicit, no
// static-initialisation tricks, which static libraries and unity builds silently drop).
// Adding a method: implement AttentionMethod in core/attention/<name>.{h,cpp}, add one row to
// kRegistry, add its oracle tests. Tested by tests/attention/test_registry.cpp (unknown names, options).
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/attention/attention_method.h"

namespace smyrf {

std::vector<std::string> attention_method_names();

// The registry row's one-line summary of a method ("" for an unknown name).
std::string attention_method_summary(const std::string& name);

// Builds a method from its JSON object ({"method": "smyrf", "n_hashes": 2, ...}). `json_path` and
// `source` name the object and file in errors. Unknown method: ConfigError listing the valid names
// and the closest one; unknown option keys: ConfigError with a suggestion.
std::unique_ptr<AttentionMethod> make_attention(const nlohmann::json& options, const std::string& json_path = "attention",
                                                const std::string& source = "");

}  // namespace smyrf
