// CUDA kernel of the SMYRF projection hash (continuous E2LSH on XBOX+-extended vectors).
// CPU twin: projection_hash_cpu (core/lsh/projection_hash.cpp); same math, same layout.
//   hash[r, i, h] = sum_d x[r, i, d] * dirs[h, d] + ext[r, i] * dirs[h, ext_col]
// One thread per (row, token); the n_hashes directions are staged in shared memory because every
// thread of the block reads all of them. Tested by tests/test_cuda.cpp (skips without a GPU).
#include <cuda_runtime.h>

#include "core/cuda/projection_hash_kernels.h"

namespace smyrf::cuda {
namespace {

template <typename T>
__global__ void projection_hash_kernel(const T* __restrict__ x, const T* __restrict__ ext,
                                       const T* __restrict__ dirs, T* __restrict__ hash,
                                       int64_t tokens, int64_t D, int64_t H, int64_t X, int64_t ext_col) {
  extern __shared__ unsigned char shared_raw[];
  T* dirs_shared = reinterpret_cast<T*>(shared_raw);
  for (int64_t j = threadIdx.x; j < H * X; j += blockDim.x) dirs_shared[j] = dirs[j];
  __syncthreads();

  const int64_t token = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (token >= tokens) return;
  const T* x_row = x + token * D;
  for (int64_t h = 0; h < H; ++h) {
    const T* dir = dirs_shared + h * X;
    T acc = ext ? ext[token] * dir[ext_col] : T(0);
    for (int64_t d = 0; d < D; ++d) acc += x_row[d] * dir[d];
    hash[token * H + h] = acc;
  }
}

template <typename T>
std::string launch(const T* x, const T* ext, const T* dirs, T* hash, int64_t R, int64_t L, int64_t D,
                   int64_t H, int64_t X, int64_t ext_col) {
  const int64_t tokens = R * L;
  if (tokens == 0) return "";
  constexpr int kThreads = 128;
  const int64_t blocks = (tokens + kThreads - 1) / kThreads;
  const size_t shared_bytes = static_cast<size_t>(H * X) * sizeof(T);
  projection_hash_kernel<T><<<static_cast<unsigned>(blocks), kThreads, shared_bytes>>>(
      x, ext, dirs, hash, tokens, D, H, X, ext_col);
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? "" : cudaGetErrorString(err);
}

}  // namespace

std::string launch_projection_hash_f32(const float* x, const float* ext, const float* dirs, float* hash,
                                       int64_t R, int64_t L, int64_t D, int64_t H, int64_t X,
                                       int64_t ext_col) {
  return launch(x, ext, dirs, hash, R, L, D, H, X, ext_col);
}

std::string launch_projection_hash_f64(const double* x, const double* ext, const double* dirs,
                                       double* hash, int64_t R, int64_t L, int64_t D, int64_t H,
                                       int64_t X, int64_t ext_col) {
  return launch(x, ext, dirs, hash, R, L, D, H, X, ext_col);
}

}  // namespace smyrf::cuda
