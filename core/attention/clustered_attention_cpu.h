// Fused CPU kernels of clustered attention (SMYRF, e2lsh), forward and backward: for every row r,
// hash h and cluster c, softmax(scale * Q_c K_c^T) V_c over the keys of the cluster (with attention
// dropout), merged across hashes online in token order (a streaming softmax over the multiset union
// of keys a query saw); the backward recomputes the scores instead of storing them.
//
// Shapes (R = B*H rows; N, M real tokens; Np = L*Cq, Mp = L*Ck padded cluster slots):
//   q_RND [R, N, D], k_RMD [R, M, D], v_RME [R, M, E]     float32 or float64; also [B, H, L, X]
//                                                          (R = B*H) with any strides but the last
//   key_keep_RM [R, M] bool or undefined (all keys real)
//   perm_q_RUN [R, U, Np], perm_k_RUM [R, U, Mp] int64    sorted slot -> token (>= N / >= M: dummy)
//   out_RNE [R, N, E], lse_RN [R, N]                       written (not accumulated into)
//   dout_RNE [R, N, E] (any strides), dlse_RN              the backward's gradients in
//   dq_RND, dk_RMD, dv_RME                                 contiguous, shaped like q, k, v
// Queries and keys are gathered straight from q/k/v by index into L1-sized buffers, so no sorted
// copy of q/k/v, no score matrix and no un-sort buffer is ever materialised; memory beyond the
// output is a few cluster-sized buffers per thread. Rows with no real key: out 0, lse -inf.
//
// Memory: the forward keeps nothing but out and lse; the backward needs q, k, v, out, lse and the
// permutations, and a few cluster-sized buffers per thread.
// Twin: attend_differentiable in smyrf.cpp computes the same thing with LibTorch ops (and
// autograd, the same dropout draws); tests/attention/test_smyrf.cpp checks both forwards against the
// float64 oracles and every instruction-set variant of the forward against the float64 brute force
// (Kernel.*); tests/test_smyrf_backward.cpp checks every variant of the backward and the dropout
// draws against the twin.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace smyrf {

// Instruction sets the kernel is built for. kBest: the widest this CPU supports (AVX-512, else
// AVX2+FMA, else the portable build), chosen at run time; the others exist so that tests can run
// every variant the CPU has against the same oracle.
enum class KernelIsa { kBest, kAvx512, kAvx2, kPortable };
bool kernel_isa_available(KernelIsa isa);
const char* kernel_isa_name(KernelIsa isa);
KernelIsa best_kernel_isa();

// The clusters one call attends over (SmyrfAttention::cluster) and its numerics.
struct ClusteredCall {
  at::Tensor key_keep_RM;  // [R, M] bool, or undefined: every key real
  at::Tensor perm_q_RUN, perm_k_RUM;
  int64_t q_cluster_size = 0, k_cluster_size = 0;
  double scale = 1.0;
  double dropout = 0.0;        // attention dropout probability (0: none)
  uint64_t dropout_seed = 0;   // keys the counter-based draws (clustered_kernel_parts.h)
  KernelIsa isa = KernelIsa::kBest;
  // A key may sit in several clusters of one hash (causal routing, core/lsh/causal_clusters.h): the
  // backward then gives each thread whole rows, so that no two threads add into the same key's dk/dv.
  bool shared_keys = false;
};

// Every token < N must appear exactly once among each hash's query slots (balanced_slots gives
// this): out/lse are written by the first hash and merged into by the others, never zeroed first.
// lse is that of the undropped scores: dropout scales the kept probabilities by 1/(1-p).
void clustered_attention_forward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                     const ClusteredCall& call, at::Tensor& out_RNE, at::Tensor& lse_RN);

// The backward of the forward above, by recomputation (FlashAttention's identity over the merged
// softmax): per cluster S = scale Q K^T again, P = exp(S - lse_RN) with the merged lse of the
// forward, the same dropout factors Z (1/(1-p) or 0), and
//   dV += (P.Z)^T dO,  dS = P.(Z.(dO V^T) - delta + dlse),  dQ += scale dS K,  dK += scale dS^T Q
// where delta = rowsum(dO . out) (computed in the kernel from out_RNE) and dlse_RN is the gradient
// of the returned lse (undefined: 0).
// dq_RND, dk_RMD, dv_RME are accumulated into (pass zeros). Rows with lse = -inf get no gradient.
// Parallel like the forward: a thread owns whole rows, or the disjoint tokens of one hash's
// clusters, so no two threads add into the same row of dq/dk/dv.
void clustered_attention_backward_cpu(const at::Tensor& q_RND, const at::Tensor& k_RMD, const at::Tensor& v_RME,
                                      const ClusteredCall& call, const at::Tensor& out_RNE, const at::Tensor& lse_RN,
                                      const at::Tensor& dout_RNE, const at::Tensor& dlse_RN, at::Tensor& dq_RND,
                                      at::Tensor& dk_RMD, at::Tensor& dv_RME);

// The dropout factors the kernels apply (1/(1-p) where a key is kept, 0 where dropped) for every
// (query slot, key slot) of every cluster, [R * U, L, Cq, Ck] of `dtype`, so that the LibTorch
// twin can apply the same mask; slots of dummy tokens get 1.
at::Tensor clustered_dropout_factors(const ClusteredCall& call, int64_t n_queries, int64_t n_keys,
                                     at::ScalarType dtype);

// The kernel's float32 exp, exposed for its accuracy test: relative error below 1e-6 on
// [-87, 88]; arguments are clamped to [-87.3, 88] (masked keys never reach it: their probability
// is set to 0).
float fast_expf(float x);

}  // namespace smyrf
