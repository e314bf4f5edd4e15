// sdpa: LibTorch's at::scaled_dot_product_attention (its fused CPU/CUDA kernels) behind the
// harness interface, so every pipeline can put the library baseline beside dense and the others.
// Exact; padding via a boolean mask, causal via the mask as well when padded (is_causal alone
// otherwise). Rows with no key to attend to come out as zeros (some library versions give NaN).
// No lse (the public op does not return it). Options: {"method": "sdpa"}.
// Tested by tests/attention/test_dense.cpp and tests/attention/test_method_contract.cpp (equals the float64 loop oracle with padding and causal masks).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class SdpaAttention : public AttentionMethod {
 public:
  std::string name() const override { return "sdpa"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override { return {{"method", name()}}; }
  AttentionCost cost(const AttentionShape& shape) const override;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;
};

}  // namespace smyrf
