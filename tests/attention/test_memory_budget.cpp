// memory_budget (core/attention/memory_budget.cpp): every method with a size knob gets the largest
// knob whose analytic memory_fraction (the method's own cost()) is within the budget, causal and
// not; smyrf's knob follows its formula # * C / M; misuse is a ConfigError with a clear message.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/util/check.h"

namespace smyrf {
namespace {

TEST(MemoryBudget, EveryMethodGetsTheLargestKnobWithinItsBudget) {
  for (bool causal : {false, true}) {
    const AttentionShape shape{1, 2, 4096, 4096, 64, 64, 4, causal};
    for (const char* name : {"smyrf", "e2lsh", "hyper", "local", "reformer", "performer", "polysketch", "nystrom"}) {
      nlohmann::json attention = {{"method", name}};
      if (std::string(name) == "hyper") attention["min_seq_len"] = 64;
      if (causal && !make_attention(attention)->capabilities().causal) continue;
      for (double budget : {1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0 / 2}) {
        attention["memory_budget"] = budget;
        const BudgetChoice choice = resolve_memory_budget(attention, shape);
        const std::string what = fmt::format("{} budget {} causal {}", name, budget, causal);
        EXPECT_FALSE(choice.attention.contains("memory_budget")) << what;
        EXPECT_LE(choice.memory_fraction, budget) << what;
        EXPECT_EQ(choice.attention.at(choice.knob), choice.value) << what;
        // one more would not fit, or give the same layout (or not be valid)
        nlohmann::json bigger = choice.attention;
        bigger[choice.knob] = choice.value + 1;
        if (std::string(name) == "hyper") bigger["sample_size"] = choice.value + 1;
        if (std::string(name) == "performer" || std::string(name) == "polysketch") bigger["block"] = choice.value + 1;
        const auto method = make_attention(bigger);
        AttentionRequest request{shape, causal, false};
        if (method->unsupported_reasons(request).empty()) {
          const double f = method->cost(shape).memory_fraction;
          EXPECT_TRUE(f > budget || f == choice.memory_fraction) << what << ": " << f;
        }
        // and the analytic fraction is the one the method reports when it runs
        EXPECT_DOUBLE_EQ(make_attention(choice.attention)->cost(shape).memory_fraction, choice.memory_fraction) << what;
      }
    }
  }
  // smyrf's formula: # * C / M
  const BudgetChoice smyrf = resolve_memory_budget({{"method", "smyrf"}, {"n_hashes", 2}, {"memory_budget", 1.0 / 16}},
                                                   AttentionShape{1, 1, 4096, 4096, 64, 64, 4});
  EXPECT_EQ(smyrf.value, 128);
  const auto error_of = [](const nlohmann::json& attention) {
    try {
      resolve_memory_budget(attention, AttentionShape{1, 1, 4096, 4096, 64, 64, 4}, "attention", "configs/x.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({{"method", "dense"}, {"memory_budget", 0.5}}).find("has no size knob"), std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"memory_budget", 1.5}}).find("must be a number in (0, 1]"), std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"q_cluster_size", 8}, {"memory_budget", 0.5}}).find("remove one"),
            std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"n_hashes", 8}, {"memory_budget", 1e-4}}).find("raise the budget"),
            std::string::npos);
}

}  // namespace
}  // namespace smyrf
