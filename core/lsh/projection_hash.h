// The SMYRF hash: one continuous projection per hash onto a Gaussian direction, no quantisation
// (only the sort order is used, so E2LSH's offset and bucket width have no effect and are dropped).
//
//   hash_RTU[r, i, h] = sum_d x_RTD[r, i, d] * dirs_UX[h, d]  +  ext_RT[r, i] * dirs_UX[h, ext_col]
//
// x is a query or key block; ext is its XBOX+ extension and ext_col its coordinate (D+1 for
// queries, D for keys); with an undefined ext (the e2lsh ablation) the second term is absent.
// dirs_UX is (n_hashes, X) with X >= D (+ ext_col + 1). Directions come from draw_directions(), so
// randomness flows only from the caller's generator (drawn in float64 on the CPU: the same seed
// gives the same directions on every device and dtype).
//
// projection_hash_cpu is the reference; projection_hash_cuda (core/cuda/projection_hash.cu) is its
// twin with the same signature; tests/test_cuda.cpp compares them where a GPU exists.
#pragma once

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace smyrf {

at::Tensor draw_directions(int64_t n_hashes, int64_t dim, at::Generator& generator);

at::Tensor projection_hash_cpu(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                               const at::Tensor& dirs_UX, int64_t ext_col);
at::Tensor projection_hash_cuda(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                                const at::Tensor& dirs_UX, int64_t ext_col);
// Dispatches on x's device.
at::Tensor projection_hash(const at::Tensor& x_RTD, const at::Tensor& ext_RT,
                           const at::Tensor& dirs_UX, int64_t ext_col);

bool cuda_kernels_built();

}  // namespace smyrf
