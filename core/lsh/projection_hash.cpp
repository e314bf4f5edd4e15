// CPU reference of the projection hash; see projection_hash.h.
#include "core/lsh/projection_hash.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/util/tensor_checks.h"

namespace smyrf {

at::Tensor draw_directions(int64_t n_hashes, int64_t dim, at::Generator& generator) {
  at::NoGradGuard no_grad;
  return at::normal(0.0, 1.0, {n_hashes, dim}, generator, at::TensorOptions().dtype(at::kDouble));
}

at::Tensor projection_hash_cpu(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                               const at::Tensor& dirs_UX, int64_t ext_col) {
  at::NoGradGuard no_grad;
  SMYRF_CHECK_SHAPE(x_RTD, "x_RTD", -1, -1, -1);
  const int64_t D = x_RTD.size(2);
  TORCH_CHECK(dirs_UX.dim() == 2 && dirs_UX.size(1) >= D, "dirs_UX has shape ",
              shape_string(dirs_UX.sizes()), ", expected [n_hashes, >= ", D, "]");
  const at::Tensor dirs = dirs_UX.to(x_RTD.options());
  at::Tensor hash_RTU = at::matmul(x_RTD.detach(), dirs.narrow(1, 0, D).t());
  if (ext_RT.defined()) {
    SMYRF_CHECK_SHAPE(ext_RT, "ext_RT", x_RTD.size(0), x_RTD.size(1));
    TORCH_CHECK(ext_col >= D && ext_col < dirs_UX.size(1), "ext_col ", ext_col, " outside [", D,
                ", ", dirs_UX.size(1), ")");
    hash_RTU += ext_RT.detach().unsqueeze(-1) * dirs.select(1, ext_col).view({1, 1, -1});
  }
  return hash_RTU;
}

at::Tensor projection_hash(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                           const at::Tensor& dirs_UX, int64_t ext_col) {
  if (x_RTD.is_cuda()) return projection_hash_cuda(x_RTD, ext_RT, dirs_UX, ext_col);
  return projection_hash_cpu(x_RTD, ext_RT, dirs_UX, ext_col);
}

}  // namespace smyrf
