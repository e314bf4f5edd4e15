// XBOX+ extensions; see asymmetric_transform.h.
#include "core/lsh/asymmetric_transform.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace smyrf {

XboxPlusExtensions xbox_plus_extensions(const at::Tensor& q_RND, const at::Tensor& k_RMD) {
  at::NoGradGuard no_grad;
  const at::Tensor q_norm2_RN = q_RND.square().sum(-1);
  const at::Tensor k_norm2_RM = k_RMD.square().sum(-1);
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
