// Host launchers for core/cuda/projection_hash.cu. Plain pointers only: no CUDA or torch types
// leak into the rest of the build. CPU twin: projection_hash_cpu in core/lsh/projection_hash.h.
#pragma once

#include <cstdint>
#include <string>

namespace smyrf::cuda {

// hash[r, i, h] = sum_d x[r, i, d] * dirs[h, d] + (ext ? ext[r, i] * dirs[h, ext_col] : 0)
// x: [R, L, D] contiguous, ext: [R, L] or nullptr, dirs: [H, X] contiguous, hash: [R, L, H].
// Runs on the legacy default stream. Returns "" on success, else the CUDA error string.
std::string launch_projection_hash_f32(const float* x, const float* ext, const float* dirs, float* hash,
                                       int64_t R, int64_t L, int64_t D, int64_t H, int64_t X,
                                       int64_t ext_col);
std::string launch_projection_hash_f64(const double* x, const double* ext, const double* dirs,
                                       double* hash, int64_t R, int64_t L, int64_t D, int64_t H,
                                       int64_t X, int64_t ext_col);

}  // namespace smyrf::cuda
