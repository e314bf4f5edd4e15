// The attention registry table; see registry.h.
#include "core/attention/registry.h"

#include <functional>

#include "core/attention/dense.h"
#include "core/attention/hyper.h"
#include "core/attention/local.h"
#include "core/attention/nystrom.h"
#include "core/attention/performer.h"
#include "core/attention/polysketch.h"
#include "core/attention/reformer.h"
#include "core/attention/sdpa.h"
#include "core/attention/smyrf.h"
#include "core/util/check.h"
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
      {"sdpa", "LibTorch's scaled_dot_product_attention (exact; the library baseline)",
       [](JsonReader&) { return std::make_unique<SdpaAttention>(); }},
      {"hyper", "HyperAttention: sign-LSH blocks plus uniformly sampled keys, causal by recursion",
       [](JsonReader& r) { return std::make_unique<HyperAttention>(HyperOptions::from_json(r)); }},
      {"polysketch", "PolySketchFormer: sketched degree-4 polynomial attention, causal by blocks",
       [](JsonReader& r) { return std::make_unique<PolysketchAttention>(PolysketchOptions::from_json(r)); }},
      {"polynomial", "exact polynomial attention (what polysketch approximates)",
       [](JsonReader& r) { return std::make_unique<PolynomialAttention>(PolynomialOptions::from_json(r)); }},
      {"reformer", "Reformer: angular-LSH buckets, chunks attend to themselves and the previous chunk",
       [](JsonReader& r) { return std::make_unique<ReformerAttention>(ReformerOptions::from_json(r)); }},
      {"performer", "Performer FAVOR+: positive orthogonal random features",
       [](JsonReader& r) { return std::make_unique<PerformerAttention>(PerformerOptions::from_json(r)); }},
      {"nystrom", "Nystromformer: segment-mean landmarks and an iterative pseudo-inverse",
       [](JsonReader& r) { return std::make_unique<NystromAttention>(NystromOptions::from_json(r)); }},
      {"local", "local attention: sliding window or blocks",
       [](JsonReader& r) { return std::make_unique<LocalAttention>(LocalOptions::from_json(r)); }},
  };
  return kRegistry;
}

}  // namespace

std::vector<std::string> attention_method_names() {
  std::vector<std::string> names;
  for (const auto& entry : registry()) names.emplace_back(entry.name);
  return names;
}

std::string attention_method_summary(const std::string& name) {
  for (const auto& entry : registry())
    if (name == entry.name) return entry.summary;
  return "";
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
