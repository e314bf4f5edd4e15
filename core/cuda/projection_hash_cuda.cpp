// Tensor-level wrapper of the CUDA projection hash (same signature as projection_hash_cpu).
// Without SMYRF_WITH_CUDA it throws a clear error instead.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/lsh/projection_hash.h"
#include "core/util/check.h"
#include "core/util/tensor_checks.h"
#ifdef SMYRF_WITH_CUDA
#include "core/cuda/projection_hash_kernels.h"
#endif

namespace smyrf {

bool cuda_kernels_built() {
#ifdef SMYRF_WITH_CUDA
  return true;
#else
  return false;
#endif
}

at::Tensor projection_hash_cuda(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                                const at::Tensor& dirs_UX, int64_t ext_col) {
#ifndef SMYRF_WITH_CUDA
  (void)x_RTD, (void)ext_RT, (void)dirs_UX, (void)ext_col;
  throw Error("projection_hash_cuda: this build has no CUDA kernels; reconfigure with "
              "-DSMYRF_WITH_CUDA=ON on a machine with nvcc and a CUDA-enabled LibTorch");
#else
  at::NoGradGuard no_grad;
  SMYRF_CHECK_SHAPE(x_RTD, "x_RTD", -1, -1, -1);
  TORCH_CHECK(x_RTD.is_cuda(), "projection_hash_cuda: x_RTD must be a CUDA tensor");
  const int64_t R = x_RTD.size(0), L = x_RTD.size(1), D = x_RTD.size(2);
  TORCH_CHECK(dirs_UX.dim() == 2 && dirs_UX.size(1) >= D, "dirs_UX has shape ",
              shape_string(dirs_UX.sizes()), ", expected [n_hashes, >= ", D, "]");
  const int64_t H = dirs_UX.size(0), X = dirs_UX.size(1);
  const at::Tensor x = x_RTD.detach().contiguous();
  const at::Tensor dirs = dirs_UX.to(x.options()).contiguous();
  at::Tensor ext;
  if (ext_RT.defined()) {
    SMYRF_CHECK_SHAPE(ext_RT, "ext_RT", R, L);
    TORCH_CHECK(ext_col >= D && ext_col < X, "ext_col ", ext_col, " outside [", D, ", ", X, ")");
    ext = ext_RT.detach().to(x.options()).contiguous();
  }
  at::Tensor hash_RTU = at::empty({R, L, H}, x.options());
  std::string err;
  if (x.scalar_type() == at::kFloat) {
    err = cuda::launch_projection_hash_f32(x.data_ptr<float>(), ext.defined() ? ext.data_ptr<float>() : nullptr,
                                           dirs.data_ptr<float>(), hash_RTU.data_ptr<float>(), R, L, D, H,
                                           X, ext_col);
  } else {
    TORCH_CHECK(x.scalar_type() == at::kDouble, "projection_hash_cuda: float32 or float64 only");
    err = cuda::launch_projection_hash_f64(x.data_ptr<double>(), ext.defined() ? ext.data_ptr<double>() : nullptr,
                                           dirs.data_ptr<double>(), hash_RTU.data_ptr<double>(), R, L, D, H,
                                           X, ext_col);
  }
  SMYRF_CHECK(err.empty(), "projection_hash_cuda: kernel launch failed: {}", err);
  return hash_RTU;
#endif
}

}  // namespace smyrf
