// The attention registry table; see registry.h.
#include "core/attention/registry.h"

#include <functional>

#include "core/attention/dense.h"
#include "core/attention/smyrf.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

using Factory = std::function<std::unique_ptr<AttentionMethod>(JsonReader&)>;

struct RegistryEntry {
  const char* name;
  const char* summary;
  Factory make;
};

const std::vector<RegistryEntry>& registry() {
  static const std::vector<RegistryEntry> kRegistry = {
      {"dense", "exact softmax attention (the oracle)",
       [](JsonReader& r) { return std::make_unique<DenseAttention>(DenseOptions::from_json(r)); }},
      {"smyrf", "balanced LSH clusters with the XBOX+ asymmetric transform",
       [](JsonReader& r) { return std::make_unique<SmyrfAttention>(SmyrfOptions::from_json(r, true)); }},
      {"e2lsh", "ablation: SMYRF clustering without the asymmetric transform",
       [](JsonReader& r) { return std::make_unique<SmyrfAttention>(SmyrfOptions::from_json(r, false)); }},
  };
  return kRegistry;
}

}  // namespace

std::vector<std::string> attention_method_names() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.emplace_back(entry.name);
  return names;
}

std::unique_ptr<AttentionMethod> make_attention(const nlohmann::json& options, const std::string& json_path,
                                                const std::string& source) {
  const std::string where = source.empty() ? std::string("config") : fmt::format("config '{}'", source);
  if (!options.is_object())
    throw ConfigError(fmt::format("{}: '{}' must be an object like {{\"method\": \"smyrf\", ...}}, got {}", where,
                                  json_path, options.dump()));
  JsonReader reader(options, json_path, source);
  std::string method;
  reader.require("method", method);
  for (const auto& entry : registry()) {
    if (method != entry.name) continue;
    auto attention = entry.make(reader);
    reader.finish();
    return attention;
  }
  throw ConfigError(fmt::format("{}: '{}.method' is '{}', which is not a registered attention method{}; valid: {}",
                                where, json_path, method, did_you_mean(method, attention_method_names()),
                                join(attention_method_names(), ", ")));
}

}  // namespace smyrf
