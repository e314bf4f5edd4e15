// memory_budget: equal-memory comparisons. An attention object may carry "memory_budget": f
// (0 < f <= 1) instead of a method's size knob; the knob is then chosen as the largest value whose
// analytic memory_fraction (core/memory) at the run's shape is <= f. Each method names its knob in
// AttentionMethod::budget_knob() (smyrf and e2lsh: q_cluster_size with n_hashes as given; hyper:
// block_size = sample_size; performer and polysketch: features/sketch_size = block; ...), so this
// file knows no method by name. The knob a config sets explicitly may not be combined with
// memory_budget. Methods without a knob (dense, sdpa, polynomial) reject it. Tested by
// tests/attention/test_memory_budget.cpp (every method lands at or under its budget with the largest such knob) and
// tests/test_experiments.cpp (the sweep logs it).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "core/memory/analytic_cost.h"

namespace smyrf {

struct BudgetChoice {
  nlohmann::json attention;   // the attention object with the knob set and memory_budget removed
  std::string knob;           // e.g. "q_cluster_size" ("" when no budget was asked for)
  int64_t value = 0;
  double budget = 0.0;
  double memory_fraction = 0.0;  // what the chosen knob gives
};

// `attention` is the config's attention object; json_path and source name it in errors.
BudgetChoice resolve_memory_budget(const nlohmann::json& attention, const AttentionShape& shape,
                                   const std::string& json_path = "attention", const std::string& source = "");

}  // namespace smyrf
