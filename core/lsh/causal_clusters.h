// Causal routing of queries to clusters of past keys: the clustering of causal smyrf / e2lsh
// (core/attention/smyrf.h says why it is built this way and what the method adds to it).
//
// Positions are cut into blocks of `block`. For a query in block b >= 1 the candidate keys are the
// real keys of the earlier blocks, positions [0, b * block): its past, and nothing else. They are
// sorted by hash and cut into consecutive runs of Ck keys (the last run is the last Ck keys, so
// every run is full once the past holds Ck keys). The query goes to the run that holds its own
// hash's insertion rank. Queries are never clustered among themselves: the keys a query sees are
// decided by its own hash and its past alone, so no token at or after the end of its block can
// change them. Queries routed to the same run share it and are laid out Cq at a time; queries with
// no past key (block 0, padding) go to clusters without keys.
//
// Hashes: lin = x . a_h[:D] for each hash direction a_h; with the asymmetric transform (smyrf) the
// XBOX+ extension is added with the bound M^2 = max |k|^2 + max |q|^2 over the tokens of the earlier
// blocks only, so the bound is causal too: key hash lin + a_h[D] sqrt(M^2 - |k|^2), query hash
// lin + a_h[D+1] sqrt(max(M^2 - |q|^2, 0)) (a query longer than every earlier token is clamped).
// Each block re-sorts its past when M grew, and merges the newest block's keys in otherwise.
//
// Shapes (R rows = B*H, U hashes, N = M tokens, L' clusters of the call):
//   q_lin_RNU, k_lin_RMU float64; q_norm2_RN, k_norm2_RM float64 (asymmetric only); keep bool [R, N]
//   perm_q_RUP [R, U, L'*Cq]: a permutation of [0, L'*Cq) whose values >= N are dummies
//   perm_k_RUP [R, U, L'*Ck]: key tokens, M for an empty slot; a key may sit in many clusters
// Tested by tests/attention/test_smyrf_causal.cpp (routing against a brute force, strict causality).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace smyrf {

struct CausalHashes {
  at::Tensor q_lin_RNU, k_lin_RMU;
  at::Tensor q_norm2_RN, k_norm2_RM;  // undefined: no asymmetric transform (e2lsh)
  at::Tensor q_coef_U, k_coef_U;      // a_h[D+1] and a_h[D], float64; undefined for e2lsh
};

struct CausalClusterLayout {
  at::Tensor perm_q_RUP, perm_k_RUP;
  int64_t n_clusters = 0;  // L'
};

CausalClusterLayout causal_clusters(const CausalHashes& hashes, const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RN,
                                    int64_t block, int64_t q_cluster_size, int64_t k_cluster_size);

// The most clusters causal_clusters can make for one (row, hash) of N tokens: every query alone
// in its run, bounded by the runs its block can reach; the memory model uses it.
int64_t causal_cluster_bound(int64_t N, int64_t block, int64_t q_cluster_size, int64_t k_cluster_size);

}  // namespace smyrf
