// dense: exact softmax attention with padding and causal masks, returning lse. Its float64 path is
// the oracle of every test in the project. Options (JSON "attention" object): {"method": "dense",
// "dropout": 0.0}. Shapes as in attention_method.h. Tested by tests/attention/test_dense.cpp against a
// naive float64 loop.
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

struct DenseOptions {
  double dropout = 0.0;
  static DenseOptions from_json(JsonReader& reader);
};

class DenseAttention : public AttentionMethod {
 public:
  explicit DenseAttention(DenseOptions options = {}) : options_(options) {}
  std::string name() const override { return "dense"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  AttentionCost cost(const AttentionShape& shape) const override;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  DenseOptions options_;
};

}  // namespace smyrf
