// Fused CPU inference kernel of clustered attention (SMYRF, e2lsh): for every row r, hash h and
// cluster c, softmax(scale * Q_c K_c^T) V_c over the keys of the cluster, merged across hashes
// online in token order (a streaming softmax over the multiset union of keys a query saw).
//
// Shapes (R = B*H rows; N, M real tokens; Np = L*Cq, Mp = L*Ck padded cluster slots):
//   q_RND [R, N, D], k_RMD [R, M, D], v_RME [R, M, E]     contiguous, float32 or float64
//   key_keep_RM [R, M] bool or undefined (all keys real)
//   perm_q_RHN [R, #, Np], perm_k_RHM [R, #, Mp] int64    sorted slot -> token (>= N / >= M: dummy)
//   out_RNE [R, N, E], lse_RN [R, N]                       written (not accumulated into)
// Queries and keys are gathered straight from q/k/v by index into L1-sized buffers, so no sorted
// copy of q/k/v, no score matrix and no un-sort buffer is ever materialised; memory beyond the
// output is a few cluster-sized buffers per thread. Rows with no real key: out 0, lse -inf.
//
// Twin: attend_differentiable in smyrf.cpp computes the same thing with LibTorch ops (and
// autograd); tests/test_attention.cpp checks both against the float64 oracles, and every
// instruction-set variant of this kernel against the float64 brute force (Kernel.*).
#pragma once

#include <ATen/core/Tensor.h>

namespace smyrf {

// Instruction sets the kernel is built for. kBest: the widest this CPU supports (AVX-512, else
// AVX2+FMA, else the portable build), chosen at run time; the others exist so that tests can run
// every variant the CPU has against the same oracle.
enum class KernelIsa { kBest, kAvx512, kAvx2, kPortable };
bool kernel_isa_available(KernelIsa isa);
const char* kernel_isa_name(KernelIsa isa);
KernelIsa best_kernel_isa();

// Every token < N must appear exactly once among each hash's query slots (balanced_slots gives
// this): out/lse are written by the first hash and merged into by the others, never zeroed first.
void clustered_attention_forward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                     const at::Tensor& key_keep_RM, const at::Tensor& perm_q_RHN,
                                     const at::Tensor& perm_k_RHM, int64_t q_cluster_size, int64_t k_cluster_size,
                                     double scale, at::Tensor& out_RNE, at::Tensor& lse_RN,
                                     KernelIsa isa = KernelIsa::kBest);

// The kernel's float32 exp, exposed for its accuracy test: relative error below 1e-6 on
// [-87, 88]; arguments are clamped to [-87.3, 88] (masked keys never reach it: their probability
// is set to 0).
float fast_expf(float x);

}  // namespace smyrf
