// XBOX+ extensions; see asymmetric_transform.h.
#include "core/lsh/asymmetric_transform.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>

namespace smyrf {

namespace {

// |x|^2 of every token in one pass without temporaries: LibTorch's square().sum(-1) writes a full
// copy of x and then reduces a 64-wide inner dim, which took ~40 ms at 8 x 16384 x 64 here.
// Each token's sum runs over d in order (the same rounding as a plain loop, so the hashes do not
// move); kNormTokens tokens are summed side by side so that the adds do not wait on each other
// (one chain of D dependent adds per token was ~15 ms of the 2-thread forward at N = 16384).
constexpr int64_t kNormTokens = 8;

at::Tensor squared_norms(const at::Tensor& x_RTD) {
  if (!x_RTD.is_cpu()) return x_RTD.square().sum(-1);
  const at::Tensor x = x_RTD.contiguous();
  const int64_t rows = x.size(0) * x.size(1), D = x.size(2);
  at::Tensor out = at::empty({x.size(0), x.size(1)}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "squared_norms", [&] {
    const scalar_t* src = x.data_ptr<scalar_t>();
    scalar_t* dst = out.data_ptr<scalar_t>();
    at::parallel_for(0, rows, 1024, [&](int64_t begin, int64_t end) {
      int64_t i = begin;
      for (; i + kNormTokens <= end; i += kNormTokens) {
        const scalar_t* row = src + i * D;
        scalar_t acc[kNormTokens] = {};
        for (int64_t d = 0; d < D; ++d)
          for (int64_t t = 0; t < kNormTokens; ++t) acc[t] += row[t * D + d] * row[t * D + d];
        for (int64_t t = 0; t < kNormTokens; ++t) dst[i + t] = acc[t];
      }
      for (; i < end; ++i) {
        const scalar_t* row = src + i * D;
        scalar_t acc = 0;
        for (int64_t d = 0; d < D; ++d) acc += row[d] * row[d];
        dst[i] = acc;
      }
    });
  });
  return out;
}

}  // namespace

XboxPlusExtensions xbox_plus_extensions(const at::Tensor& q_RND, const at::Tensor& k_RMD) {
  at::NoGradGuard no_grad;
  const at::Tensor q_norm2_RN = squared_norms(q_RND.detach());
  const at::Tensor k_norm2_RM = squared_norms(k_RMD.detach());
  const at::Tensor max2_R1 = q_norm2_RN.amax(-1, true) + k_norm2_RM.amax(-1, true);
  // clamp: rounding can make M^2 - |x|^2 slightly negative for the arg-max vector
  return {(max2_R1 - q_norm2_RN).clamp_min(0).sqrt(), (max2_R1 - k_norm2_RM).clamp_min(0).sqrt()};
}

at::Tensor xbox_plus_queries(const at::Tensor& q_RND, const at::Tensor& q_ext_RN) {
  return at::cat({q_RND, at::zeros_like(q_ext_RN).unsqueeze(-1), q_ext_RN.unsqueeze(-1)}, -1);
}

at::Tensor xbox_plus_keys(const at::Tensor& k_RMD, const at::Tensor& k_ext_RM) {
  return at::cat({k_RMD, k_ext_RM.unsqueeze(-1), at::zeros_like(k_ext_RM).unsqueeze(-1)}, -1);
}

}  // namespace smyrf
