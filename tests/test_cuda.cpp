// core/cuda kernels against their CPU twins (odd sizes, float32 and float64). The comparison skips,
// saying why, when the build has no CUDA kernels or the machine has no GPU, and runs where a GPU is
// lent; the entry point's refusals are checked in every build.
#include <gtest/gtest.h>
#include <torch/cuda.h>

#include "core/lsh/projection_hash.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

TEST(Cuda, ProjectionHashMatchesCpuTwin) {
  if (!cuda_kernels_built()) GTEST_SKIP() << "built without CUDA kernels (SMYRF_WITH_CUDA off)";
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device on this machine";
  for (auto dtype : {at::kFloat, at::kDouble}) {
    auto gen = test::make_generator(1);
    const at::Tensor x = at::normal(0, 1, {3, 1013, 59}, gen, at::TensorOptions().dtype(dtype));
    const at::Tensor ext = at::rand({3, 1013}, gen, at::TensorOptions().dtype(dtype));
    const at::Tensor dirs = draw_directions(5, 61, gen);
    const at::Tensor cpu = projection_hash_cpu(x, ext, dirs, 60);
    const at::Tensor gpu = projection_hash_cuda(x.cuda(), ext.cuda(), dirs.cuda(), 60).cpu();
    const double tol = dtype == at::kFloat ? 1e-4 : 1e-12;
    EXPECT_CLOSE(gpu, cpu, tol, tol);
    EXPECT_CLOSE(projection_hash_cuda(x.cuda(), at::Tensor(), dirs.cuda(), 0).cpu(),
                 projection_hash_cpu(x, at::Tensor(), dirs, 0), tol, tol);
  }
}

TEST(Cuda, EntryPointRefusesWhatItCannotRunWithAReason) {
  // Runs in every build: without kernels the CUDA entry point says how to get them; with kernels
  // it refuses CPU tensors by name instead of launching on host memory.
  const std::string expected = cuda_kernels_built() ? "x_RTD must be a CUDA tensor" : "this build has no CUDA kernels";
  try {
    projection_hash_cuda(at::zeros({1, 2, 3}), at::Tensor(), at::zeros({1, 3}), 0);
    FAIL() << "expected an error";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace()).find(expected), std::string::npos) << e.what_without_backtrace();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find(expected), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace smyrf
