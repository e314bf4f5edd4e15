// memory_budget resolution; see memory_budget.h.
#include "core/attention/memory_budget.h"

#include <fmt/format.h>

#include <functional>
#include <vector>

#include "core/attention/registry.h"
#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

// Every registered method that has a size knob, for the message when one is missing.
std::vector<std::string> methods_with_knobs(const AttentionShape& shape) {
  std::vector<std::string> names;
  for (const std::string& name : attention_method_names())
    if (!make_attention({{"method", name}})->budget_knob(shape).keys.empty()) names.push_back(name);
  return names;
}

}  // namespace

BudgetChoice resolve_memory_budget(const nlohmann::json& attention, const AttentionShape& shape,
                                   const std::string& json_path, const std::string& source) {
  BudgetChoice choice;
  choice.attention = attention;
  if (!attention.is_object() || !attention.contains("memory_budget") || attention.at("memory_budget").is_null()) {
    if (attention.is_object()) choice.attention.erase("memory_budget");
    return choice;
  }
  const std::string where = source.empty() ? std::string("config") : fmt::format("config '{}'", source);
  const nlohmann::json& budget_json = attention.at("memory_budget");
  if (!budget_json.is_number() || !(budget_json.get<double>() > 0.0 && budget_json.get<double>() <= 1.0))
    throw ConfigError(fmt::format("{}: '{}.memory_budget' must be a number in (0, 1] (a fraction of dense attention's "
                                  "score memory), got {}", where, json_path, budget_json.dump()));
  choice.budget = budget_json.get<double>();
  choice.attention.erase("memory_budget");
  const std::string method = attention.value("method", std::string());
  const AttentionMethod::BudgetKnob knob = make_attention(choice.attention, json_path, source)->budget_knob(shape);
  if (knob.keys.empty())
    throw ConfigError(fmt::format("{}: '{}.memory_budget' is set but '{}' has no size knob to meet it; remove "
                                  "memory_budget for it (methods with one: {})",
                                  where, json_path, method, join(methods_with_knobs(shape), ", ")));
  for (const std::string& key : knob.keys)
    if (attention.contains(key) && !attention.at(key).is_null())
      throw ConfigError(fmt::format("{}: '{}.{}' is set together with '{}.memory_budget', which chooses it; remove one",
                                    where, json_path, key, json_path));
  const auto fraction_at = [&](int64_t value) -> std::optional<double> {
    nlohmann::json options = choice.attention;
    for (const std::string& key : knob.keys) options[key] = value;
    const auto m = make_attention(options, json_path, source);
    AttentionRequest request;
    request.shape = shape;
    request.causal = shape.causal;
    if (!m->unsupported_reasons(request).empty()) return std::nullopt;
    return m->cost(shape).memory_fraction;
  };
  // fractions grow with the knob up to rounding of cluster counts: binary search for the boundary,
  // then look a little further for a larger value that still fits
  int64_t lo = 1, hi = knob.largest;
  const auto fits = [&](int64_t v) {
    const auto f = fraction_at(v);
    return f && *f <= choice.budget;
  };
  if (!fits(lo)) {
    const auto f = fraction_at(lo);
    throw ConfigError(fmt::format("{}: '{}.memory_budget' {} is below what {} can reach at N={} M={} ({} = 1 gives "
                                  "memory fraction {}); raise the budget",
                                  where, json_path, choice.budget, method, shape.n_queries, shape.n_keys,
                                  knob.keys.front(), f ? fmt::format("{:.4g}", *f) : std::string("an invalid size")));
  }
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid)) lo = mid; else hi = mid - 1;
  }
  for (int64_t v = lo + 1; v <= std::min(knob.largest, lo + 64); ++v)
    if (fits(v)) lo = v;
  // several knob values can give the same layout (smyrf: C = 128..136 all make 32 clusters of 128
  // at N = 4096); log the smallest of them, the one a person would write
  const double best = *fraction_at(lo);
  while (lo > 1) {
    const auto f = fraction_at(lo - 1);
    if (!f || *f != best) break;
    --lo;
  }
  choice.knob = knob.keys.front();
  choice.value = lo;
  for (const std::string& key : knob.keys) choice.attention[key] = lo;
  choice.memory_fraction = *fraction_at(lo);
  return choice;
}

}  // namespace smyrf
