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

at::Tensor projection_hash_cpu(const at::Tensor& x_RLD, const at::Tensor& ext_RL,
                               const at::Tensor& dirs_HX, int64_t ext_col) {
  at::NoGradGuard no_grad;
  SMYRF_CHECK_SHAPE(x_RLD, "x_RLD", -1, -1, -1);
  const int64_t D = x_RLD.size(2);
  TORCH_CHECK(dirs_HX.dim() == 2 && dirs_HX.size(1) >= D, "dirs_HX has shape ",
              shape_string(dirs_HX.sizes()), ", expected [n_hashes, >= ", D, "]");
  const at::Tensor dirs = dirs_HX.to(x_RLD.options());
  at::Tensor hash_RLH = at::matmul(x_RLD.detach(), dirs.narrow(1, 0, D).t());
  if (ext_RL.defined()) {
    SMYRF_CHECK_SHAPE(ext_RL, "ext_RL", x_RLD.size(0), x_RLD.size(1));
    TORCH_CHECK(ext_col >= D && ext_col < dirs_HX.size(1), "ext_col ", ext_col, " outside [", D,
                ", ", dirs_HX.size(1), ")");
    hash_RLH += ext_RL.detach().unsqueeze(-1) * dirs.select(1, ext_col).view({1, 1, -1});
  }
  return hash_RLH;
}

at::Tensor projection_hash(const at::Tensor& x_RLD, const at::Tensor& ext_RL,
                           const at::Tensor& dirs_HX, int64_t ext_col) {
  if (x_RLD.is_cuda()) return projection_hash_cuda(x_RLD, ext_RL, dirs_HX, ext_col);
  return projection_hash_cpu(x_RLD, ext_RL, dirs_HX, ext_col);
}

}  // namespace smyrf
