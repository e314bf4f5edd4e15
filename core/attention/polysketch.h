// polysketch (PolySketchFormer, Kacham, Mirrokni, Zhong 2024) and `polynomial`, the exact
// function it approximates.
//
// polynomial attention of even degree p (logits = s q.k as everywhere in the harness; the paper's
// models put a LayerNorm on q and k instead of a temperature, which with s = 1 is the same form):
//   o_i = sum_j w_ij v_j / (1 + sum_j w_ij),  w_ij = (s q_i.k_j)^p,  j over unpadded (and j <= i)
// polysketch approximates p = 4 with a random degree-2 tensor sketch, squared for non-negativity:
//   phi(x) = (x' S1) o (x' S2) / sqrt(r),  x' = sqrt(s) x,  S1, S2 [D, r] standard Gaussian,
//   w_ij ~ <phi(q_i), phi(k_j)>^2 >= 0.
// Scale convention: E<phi(q), phi(k)> = <q', k'>^2 (the paper's Algorithm 1, unbiased for degree 2).
// The released code draws S/sqrt(r) and so has features sqrt(r) times smaller, which a trained
// LayerNorm absorbs but a drop-in comparison does not; we keep the unbiased one.
// sketch "exact" replaces phi by the exact self-tensor vec(x' x'^T) (r = D^2): then the output
// equals polynomial attention of degree 4 (the exactness test).
// sketch "learned" (the paper's learned sketches): phi(q) and phi(k) are AttentionInputs'
// q_features_BHNF / k_features_BHMF of size sketch_size, which the model computes with a small
// network per layer and trains with everything else (core/models/decoder.h); the method then
// serves only calls that supply them (capabilities().learned_features), and local_exact keeps the
// exact degree-4 weights of q' and k' in the diagonal blocks.
// The squared weights are never expanded per pair: sum_j <phi_i, phi_j>^2 [v_j, 1] =
// (phi_i (x) phi_i) . sum_j (phi_j (x) phi_j) [v_j, 1]^T, with summaries of r^2 x (E+1) built
// block by block (`block` positions at a time, so r^2 features exist for one block only).
// Causal: exact sketched weights inside each diagonal block, the exclusive prefix of the block
// summaries across blocks; the result does not depend on `block`. local_exact: the diagonal
// blocks use the exact degree-4 weights instead (the paper's "polysketch + local"; depends on
// block; needs N == M).
// Options: {"method": "polysketch", "sketch_size": 64, "block": 256, "local_exact": false,
//           "sketch": "gaussian"|"exact"|"learned", "target": "softmax"|"polynomial"}; target names the
// function the fidelity pipeline reports as rel_fro_error (it reports both).
// Training memory: autograd keeps every block's r^2 self-tensors (about 2 N r^2 entries per row,
// more than N^2 for N < 2 r^2); cost() counts the inference buffers. No lse. Shapes: as attention_method.h; features [R, N, r]. Tested by tests/attention/test_polysketch.cpp
// (exact-sketch limit, block independence), tests/attention/test_method_contract.cpp (causality,
// padding, gradients) and
// tests/python/test_polysketch_numpy.py (an independent NumPy implementation on our draws).
#pragma once

#include "core/attention/attention_method.h"

namespace smyrf {

class JsonReader;

struct PolynomialOptions {
  int64_t degree = 4;
  static PolynomialOptions from_json(JsonReader& reader);
};

// Exact polynomial attention (materialises N x M weights; the oracle of polysketch).
class PolynomialAttention : public AttentionMethod {
 public:
  explicit PolynomialAttention(PolynomialOptions options);
  std::string name() const override { return "polynomial"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  AttentionCost cost(const AttentionShape& shape) const override;

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  PolynomialOptions options_;
};

enum class PolysketchSketch { kGaussian, kExact, kLearned };
enum class PolysketchTarget { kSoftmax, kPolynomial };

struct PolysketchOptions {
  int64_t sketch_size = 64;
  int64_t block = 256;
  bool local_exact = false;
  PolysketchSketch sketch = PolysketchSketch::kGaussian;  // "gaussian" | "exact" | "learned"
  PolysketchTarget target = PolysketchTarget::kSoftmax;   // "softmax" | "polynomial"
  static PolysketchOptions from_json(JsonReader& reader);
};

class PolysketchAttention : public AttentionMethod {
 public:
  explicit PolysketchAttention(PolysketchOptions options);
  std::string name() const override { return "polysketch"; }
  Capabilities capabilities() const override;
  nlohmann::json options_json() const override;
  std::vector<std::string> reported_knobs() const override;
  BudgetKnob budget_knob(const AttentionShape& shape) const override;
  AttentionCost cost(const AttentionShape& shape) const override;
  std::vector<std::string> unsupported_reasons(const AttentionRequest& request) const override;
  std::unique_ptr<AttentionMethod> approximation_target() const override;
  bool reports_against_target() const override { return options_.target == PolysketchTarget::kPolynomial; }

 protected:
  AttentionOutput forward_impl(const AttentionInputs& inputs, at::Generator& generator) const override;

 private:
  int64_t feature_dim(int64_t head_dim) const;
  // phi of the (scaled, key-masked) queries and keys [R, N, F], [R, M, F] as options_.sketch says;
  // a Gaussian sketch's draws go to result.aux.
  std::pair<at::Tensor, at::Tensor> feature_maps(const AttentionInputs& in, const at::Tensor& q_RND,
                                                 const at::Tensor& k_RMD, at::Generator& generator,
                                                 AttentionOutput& result) const;
  PolysketchOptions options_;
};

}  // namespace smyrf
