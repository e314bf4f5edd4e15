// Entry-point validation shared by every method, and the masked softmax / dropout numerics that
// dense and the clustered methods share. Tested through tests/attention/test_method_contract.cpp.
#include "core/attention/attention_method.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <mutex>

#include "core/util/check.h"
#include "core/util/strings.h"
#include "core/util/tensor_checks.h"

namespace smyrf {
namespace {

void check_finite_where_kept(const at::Tensor& x, const std::optional<at::Tensor>& keep_BT,
                             const char* name) {
  at::NoGradGuard no_grad;
  // One reduction decides the common case: a NaN or Inf anywhere makes the sum non-finite (a
  // finite overflow only costs the full check below).
  const at::Tensor x_kept = keep_BT ? at::where(keep_BT->view({x.size(0), 1, x.size(2), 1}), x, 0.0) : x;
  if (std::isfinite(x_kept.sum().item<double>())) return;
  at::Tensor finite = at::isfinite(x);  // [B, H, L, X]
  if (keep_BT) finite = at::logical_or(finite, keep_BT->logical_not().view({x.size(0), 1, x.size(2), 1}));
  if (finite.all().item<bool>()) return;
  const at::Tensor bad = at::nonzero(finite.logical_not()).select(0, 0);
  throw Error(fmt::format(
      "{} contains a non-finite value ({}) at [b={}, h={}, position={}, dim={}] of an unpadded "
      "position; fix the input (or mark the position as padding)",
      name, x.index({bad[0], bad[1], bad[2], bad[3]}).item<double>(), bad[0].item<int64_t>(),
      bad[1].item<int64_t>(), bad[2].item<int64_t>(), bad[3].item<int64_t>()));
}

at::Tensor zero_padded(const at::Tensor& x, const std::optional<at::Tensor>& keep_BT) {
  if (!keep_BT) return x;
  const at::Tensor keep = keep_BT->view({x.size(0), 1, x.size(2), 1});
  return at::where(keep, x, at::zeros({}, x.options()));
}

}  // namespace

AttentionShape shape_of(const AttentionInputs& in) {
  return {in.q_BHND.size(0), in.q_BHND.size(1), in.q_BHND.size(2), in.k_BHMD.size(2),
          in.q_BHND.size(3), in.v_BHME.size(3), static_cast<int64_t>(in.q_BHND.element_size()), in.causal};
}

double resolved_scale(const AttentionInputs& in) {
  return in.scale > 0 ? in.scale : 1.0 / std::sqrt(static_cast<double>(in.q_BHND.size(3)));
}

AttentionRequest request_of(const AttentionInputs& in) {
  return {shape_of(in), in.causal, in.key_keep_BM.has_value() || in.query_keep_BN.has_value(),
          in.q_features_BHNF ? in.q_features_BHNF->size(-1) : 0};
}

AttentionMethod::BudgetKnob AttentionMethod::budget_knob(const AttentionShape&) const { return {}; }

std::vector<std::string> AttentionMethod::unsupported_reasons(const AttentionRequest& request) const {
  std::vector<std::string> reasons;
  if (request.causal && !capabilities().causal)
    reasons.push_back(name() + " does not support causal masking");
  if (request.padded && !capabilities().padding)
    reasons.push_back(name() + " does not support padding masks");
  if (const int64_t f = capabilities().learned_features; f > 0 && request.learned_features != f)
    reasons.push_back(fmt::format("{} reads feature maps of size {} that a model learns (the decoder of lm_train "
                                  "builds them); this call supplies {}", name(), f,
                                  request.learned_features == 0 ? std::string("none")
                                                                : "size " + std::to_string(request.learned_features)));
  return reasons;
}

AttentionOutput AttentionMethod::forward(const AttentionInputs& in, at::Generator& generator) const {
  TORCH_CHECK(in.q_BHND.defined() && in.k_BHMD.defined() && in.v_BHME.defined(),
              name(), ": q_BHND, k_BHMD and v_BHME must all be given");
  SMYRF_CHECK_SHAPE(in.q_BHND, "q_BHND", -1, -1, -1, -1);
  const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1), N = in.q_BHND.size(2),
                D = in.q_BHND.size(3);
  SMYRF_CHECK_SHAPE(in.k_BHMD, "k_BHMD", B, H, -1, D);
  const int64_t M = in.k_BHMD.size(2);
  SMYRF_CHECK_SHAPE(in.v_BHME, "v_BHME", B, H, M, -1);
  TORCH_CHECK(B > 0 && H > 0 && N > 0 && M > 0 && D > 0 && in.v_BHME.size(3) > 0,
              name(), ": every size must be positive, got q_BHND ", shape_string(in.q_BHND.sizes()),
              " and v_BHME ", shape_string(in.v_BHME.sizes()));
  const auto dtype = in.q_BHND.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, name(),
              ": q_BHND must be float32 or float64, got ", dtype);
  TORCH_CHECK(in.k_BHMD.scalar_type() == dtype && in.v_BHME.scalar_type() == dtype, name(),
              ": q, k and v must share a dtype");
  TORCH_CHECK(in.k_BHMD.device() == in.q_BHND.device() && in.v_BHME.device() == in.q_BHND.device(),
              name(), ": q, k and v must be on one device");
  if (in.key_keep_BM) {
    SMYRF_CHECK_SHAPE(*in.key_keep_BM, "key_keep_BM", B, M);
    TORCH_CHECK(in.key_keep_BM->scalar_type() == at::kBool, "key_keep_BM must be bool");
    TORCH_CHECK(in.key_keep_BM->device() == in.q_BHND.device(), "key_keep_BM must be on q_BHND's device (",
                in.q_BHND.device(), ")");
  }
  if (in.query_keep_BN) {
    SMYRF_CHECK_SHAPE(*in.query_keep_BN, "query_keep_BN", B, N);
    TORCH_CHECK(in.query_keep_BN->scalar_type() == at::kBool, "query_keep_BN must be bool");
    TORCH_CHECK(in.query_keep_BN->device() == in.q_BHND.device(), "query_keep_BN must be on q_BHND's device (",
                in.q_BHND.device(), ")");
  }
  SMYRF_CHECK(in.q_features_BHNF.has_value() == in.k_features_BHMF.has_value(),
              "{}: give both q_features_BHNF and k_features_BHMF, or neither", name());
  if (in.q_features_BHNF) {
    SMYRF_CHECK_SHAPE(*in.q_features_BHNF, "q_features_BHNF", B, H, N, -1);
    SMYRF_CHECK_SHAPE(*in.k_features_BHMF, "k_features_BHMF", B, H, M, in.q_features_BHNF->size(3));
    TORCH_CHECK(in.q_features_BHNF->scalar_type() == dtype && in.k_features_BHMF->scalar_type() == dtype, name(),
                ": the learned features must have q's dtype");
  }
  SMYRF_CHECK(std::isfinite(in.scale) && in.scale >= 0,
              "{}: scale must be a finite number >= 0 (0 = 1/sqrt(D)), got {}", name(), in.scale);
  if (in.causal)
    SMYRF_CHECK(N == M, "{}: causal attention needs as many queries as keys, got N={} M={}", name(), N, M);
  const auto reasons = unsupported_reasons(request_of(in));
  SMYRF_CHECK(reasons.empty(), "{} cannot serve this input: {}", name(), join(reasons, "; "));

  check_finite_where_kept(in.q_BHND, in.query_keep_BN, "q_BHND");
  check_finite_where_kept(in.k_BHMD, in.key_keep_BM, "k_BHMD");
  check_finite_where_kept(in.v_BHME, in.key_keep_BM, "v_BHME");

  AttentionInputs clean = in;
  clean.q_BHND = zero_padded(in.q_BHND, in.query_keep_BN);
  clean.k_BHMD = zero_padded(in.k_BHMD, in.key_keep_BM);
  clean.v_BHME = zero_padded(in.v_BHME, in.key_keep_BM);
  clean.scale = resolved_scale(in);
  AttentionOutput result = forward_impl(clean, generator);
  // The inputs are finite (checked above), so a non-finite output is an overflow, most often of the
  // logits under a huge scale: an error, not a run that "completes" with NaN everywhere.
  SMYRF_CHECK(at::isfinite(result.out_BHNE).all().item<bool>(),
              "{}: the output is not finite although every input is: the logits overflow {} (scale {}); lower the "
              "scale or compute in float64",
              name(), c10::toString(dtype), clean.scale);
  if (in.query_keep_BN) {
    result.out_BHNE = zero_padded(result.out_BHNE, in.query_keep_BN);
    if (result.lse_BHN) {
      const at::Tensor keep = in.query_keep_BN->view({B, 1, N});
      result.lse_BHN = at::where(keep, *result.lse_BHN,
                                 at::full({}, -std::numeric_limits<double>::infinity(), result.lse_BHN->options()));
    }
  }
  return result;
}

MaskedSoftmax masked_softmax_with_lse(const at::Tensor& logits, const at::Tensor& keep) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  const at::Tensor keep_full = keep.expand_as(logits);
  // A row with nothing to attend to would give lse = -inf and NaN gradients through logsumexp;
  // give it finite dummy logits instead and zero its probabilities afterwards.
  const at::Tensor row_empty = keep_full.logical_not().all(-1, /*keepdim=*/true);
  at::Tensor masked = logits.masked_fill(keep_full.logical_not(), neg_inf).masked_fill(row_empty, 0.0);
  at::Tensor lse = at::logsumexp(masked, -1, /*keepdim=*/true);
  at::Tensor probs = at::exp(masked - lse).masked_fill(row_empty, 0.0);
  lse = lse.masked_fill(row_empty, neg_inf).squeeze(-1);
  return {probs, lse};
}

at::Tensor softmax_in_place_with_lse(at::Tensor& logits, const std::optional<at::Tensor>& keep) {
  const double neg_inf = -std::numeric_limits<double>::infinity();
  if (keep) logits.masked_fill_(keep->logical_not(), neg_inf);
  const at::Tensor row_max = logits.amax(-1, /*keepdim=*/true);
  const at::Tensor row_empty = at::isinf(row_max);  // every entry masked
  if (keep) logits.masked_fill_(row_empty, 0.0);
  // LibTorch's fused softmax, written over its input; the lse follows from the largest
  // probability: p_max = exp(max - lse), and p_max >= 1/width keeps the log well conditioned.
  at::_softmax_out(logits, logits, -1, /*half_to_float=*/false);
  at::Tensor lse = row_max - logits.amax(-1, /*keepdim=*/true).log();
  if (keep) {
    logits.masked_fill_(row_empty, 0.0);
    lse.masked_fill_(row_empty, neg_inf);
  }
  return lse.squeeze(-1);
}

PartialAttention attend_with_lse(at::Tensor logits, const at::Tensor& keep, const at::Tensor& v) {
  if (at::GradMode::is_enabled() && (logits.requires_grad() || v.requires_grad())) {
    const MaskedSoftmax softmax = masked_softmax_with_lse(logits, keep);
    return {at::matmul(softmax.probs, v), softmax.lse};
  }
  at::Tensor lse = softmax_in_place_with_lse(logits, keep.expand_as(logits));
  return {at::matmul(logits, v), lse};
}

PartialAttention merge_partial_attention(const PartialAttention& a, const PartialAttention& b) {
  const at::Tensor top = at::maximum(a.lse, b.lse);
  const at::Tensor top_finite = at::where(at::isfinite(top), top, at::zeros({}, top.options())).detach();
  const at::Tensor wa = at::exp(a.lse - top_finite), wb = at::exp(b.lse - top_finite);  // exp(-inf) = 0
  const at::Tensor total = wa + wb;
  const at::Tensor empty = total.eq(0);
  // the largest weight is exp(0) = 1 on every non-empty row, so total >= 1 there
  const at::Tensor safe_total = at::where(empty, at::ones({}, total.options()), total);
  PartialAttention merged;
  merged.out = (wa.unsqueeze(-1) * a.out + wb.unsqueeze(-1) * b.out) / safe_total.unsqueeze(-1);
  merged.lse = at::where(empty, at::full({}, -std::numeric_limits<double>::infinity(), total.options()),
                         top_finite + at::log(safe_total));
  return merged;
}

at::Tensor attention_dropout(const at::Tensor& probs, double p, bool training, at::Generator& generator) {
  if (!training || p <= 0.0) return probs;
  SMYRF_CHECK(p < 1.0, "attention dropout must be in [0, 1), got {}", p);
  if (generator.device().type() == probs.device().type()) {
    const at::Tensor keep = at::empty_like(probs).bernoulli_(1.0 - p, generator);
    return probs * keep / (1.0 - p);
  }
  // A CPU generator with CUDA probabilities: the mask is drawn on the tensor's device from that
  // device's default generator, seeded from ours, so the draws still follow the method's seed.
  const uint64_t seed = static_cast<uint64_t>(at::randint(INT64_MAX, {1}, generator, at::kLong).item<int64_t>());
  at::Generator device_generator = at::globalContext().defaultGenerator(probs.device());
  at::Tensor keep = at::empty_like(probs);
  {
    std::lock_guard<std::mutex> lock(device_generator.mutex());
    device_generator.set_current_seed(seed);
  }
  keep.bernoulli_(1.0 - p, device_generator);
  return probs * keep / (1.0 - p);
}

}  // namespace smyrf
