// The attention registry (core/attention/registry.cpp): every registered name builds a method of
// that name; options reach the method; unknown methods and keys, and bad values, are ConfigErrors
// with the wording users see (suggestions, valid names, the JSON path). Every registered method is
// also run through the shared checks of test_method_contract.cpp.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "core/attention/registry.h"
#include "core/util/check.h"

namespace smyrf {
namespace {

TEST(Registry, BuildsEveryMethodAndRejectsUnknownNamesAndKeys) {
  for (const auto& name : attention_method_names()) EXPECT_EQ(make_attention({{"method", name}})->name(), name);
  const auto smyrf = make_attention({{"method", "smyrf"}, {"n_hashes", 4}, {"q_cluster_size", 64}});
  EXPECT_EQ(smyrf->options_json()["n_hashes"], 4);
  auto message_of = [](const nlohmann::json& j) {
    try {
      make_attention(j, "attention", "configs/x.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of({{"method", "smyrff"}}).find("did you mean 'smyrf'"), std::string::npos);
  EXPECT_NE(message_of({{"method", "smyrff"}}).find("dense, smyrf, e2lsh"), std::string::npos);
  EXPECT_NE(message_of({{"method", "smyrf"}, {"n_hash", 2}}).find("n_hashes"), std::string::npos);
  EXPECT_NE(message_of({{"method", "smyrf"}, {"n_hashes", 0}}).find("'attention.n_hashes' must be >= 1"),
            std::string::npos);
  EXPECT_NE(message_of({{"method", "smyrf"}, {"q_cluster_size", -3}}).find("q_cluster_size"), std::string::npos);
  EXPECT_NE(message_of({{"method", "smyrf"}, {"n_hashes", "two"}}).find("must be an integer"), std::string::npos);
  EXPECT_NE(message_of({{"method", "dense"}, {"n_hashes", 2}}).find("unknown key"), std::string::npos);
}

}  // namespace
}  // namespace smyrf
