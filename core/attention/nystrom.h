// nystrom (Nystromformer, Xiong et al. 2021): softmax attention through m landmarks,
//   out = softmax(s Q Kl^T) pinv(softmax(s Ql Kl^T)) softmax(s Ql K^T) V
// where the landmarks Ql [m, D], Kl [m, D] are segment means of the real queries and keys (segment
// c holds positions [floor(c*N/m), floor((c+1)*N/m)); padded tokens are left out of the means and
// a landmark whose segment holds no real token is masked out). pinv is the iterative cubic
// Newton-Schulz update Z <- Z/4 (13I - KZ (15I - KZ (7I - KZ))) from Z0 = K^T / (max col sum *
// max row sum), `pinv_iterations` times [6]; 0 uses LibTorch's exact pseudo-inverse.
// Options: {"method": "nystrom", "landmarks": 64, "pinv_iterations": 6}. Non-causal only (the
// landmarks mix every position). No lse: the three softmaxes do not give one.
// Exactness: landmarks = N = M with the exact pseudo-inverse equals dense (A A+ A = A).
// Shapes: as attention_method.h; score buffers [R, N, m], [R, m, m], [R, m, M].
// Tested by tests/attention/test_nystrom.cpp (iterative pinv converges) and
// tests/attention/test_method_contract.cpp (exactness, padding, gradients).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

struct NystromOptions {
  int64_t landmarks = 64;
  int64_t pinv_iterations = 6;
  static NystromOptions from_json(JsonReader& reader);
};

class NystromAttention : public AttentionMethod {
 public:
  explicit NystromAttention(NystromOptions options);
  std::string name() const override { return "nystrom"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  std::vector<std::string> unsupported_reasons(const AttentionRequest& request) const override;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  NystromOptions options_;
};

// The iterative pseudo-inverse of nystrom (exposed for tests). k_RLL: [R, m, m].
at::Tensor newton_schulz_pinv(const at::Tensor& k_RLL, int64_t iterations);

}  // namespace smyrf
