// Analytic memory model of each attention method: the score entries it computes, every buffer it
// allocates (name, elements, bytes), and memory_fraction = score entries / (B*H*N*M), the paper's
// "memory %". Computed from shapes alone, before anything is allocated; the runner logs it beside
// the measured peak (peak_memory.h). Tested by tests/attention/test_smyrf.cpp (formula = #*Ck/M, and the
// entries each method really computes).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smyrf {

struct AttentionShape {
  int64_t batch, heads, n_queries, n_keys, head_dim, value_dim;
  int64_t element_bytes;  // 4 for float32, 8 for float64
  bool causal = false;    // methods whose work depends on the mask (hyper's recursion) read it
};

struct BufferBytes {
  std::string name;
  int64_t bytes;
};

struct AttentionCost {
  int64_t score_entries = 0;
  int64_t analytic_bytes = 0;  // sum of buffers
  double memory_fraction = 0.0;
  std::vector<BufferBytes> buffers;
};

// Dense softmax attention: logits and probabilities [B,H,N,M], output, lse.
AttentionCost dense_attention_cost(const AttentionShape& shape);

// SMYRF / e2lsh with L clusters of Cq queries and Ck keys per hash (padded sizes L*Cq, L*Ck).
// fused: the buffers of the fused CPU kernels, forward and backward alike (hashes, the query and key
// orders, out, lse, and one thread's cluster scratch: queries, keys twice, values, scores and their
// gradients; each further thread adds as much); otherwise those of the LibTorch twin (sorted copies
// of q/k/v, every cluster's scores and probabilities, per-hash outputs), which autograd keeps.
AttentionCost clustered_attention_cost(const AttentionShape& shape, int64_t n_hashes, int64_t n_clusters,
                                       int64_t q_cluster_size, int64_t k_cluster_size, bool fused);
// the fused CPU inference kernel keeps only the hashes, permutations, output and per-thread
// cluster-sized buffers, so for inference this is an upper bound (compare the measured peak).
AttentionCost clustered_attention_cost(const AttentionShape& shape, int64_t n_hashes, int64_t n_clusters,
                                       int64_t q_cluster_size, int64_t k_cluster_size);

}  // namespace smyrf
