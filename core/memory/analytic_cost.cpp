// Formulas of analytic_cost.h.
#include "core/memory/analytic_cost.h"

namespace smyrf {
namespace {

AttentionCost finish(const AttentionShape& s, int64_t score_entries, std::vector<BufferBytes> buffers) {
  AttentionCost cost;
  cost.score_entries = score_entries;
  cost.buffers = std::move(buffers);
  for (const auto& b : cost.buffers) cost.analytic_bytes += b.bytes;
  cost.memory_fraction = static_cast<double>(score_entries) /
                         static_cast<double>(s.batch * s.heads * s.n_queries * s.n_keys);
  return cost;
}

}  // namespace

AttentionCost dense_attention_cost(const AttentionShape& s) {
  const int64_t R = s.batch * s.heads, e = s.element_bytes;
  const int64_t entries = R * s.n_queries * s.n_keys;
  return finish(s, entries,
                {{"logits", entries * e},
                 {"probs", entries * e},
                 {"out", R * s.n_queries * s.value_dim * e},
                 {"lse", R * s.n_queries * e}});
}

AttentionCost clustered_attention_cost(const AttentionShape& s, int64_t n_hashes, int64_t L, int64_t Cq,
                                       int64_t Ck, bool fused) {
  const int64_t R = s.batch * s.heads, H = n_hashes, e = s.element_bytes;
  const int64_t Np = L * Cq, Mp = L * Ck;
  const int64_t entries = R * H * L * Cq * Ck;
  const int64_t D = s.head_dim, E = s.value_dim;
  if (fused) {
    return finish(s, entries,
                  {{"hashes", R * H * (Np + Mp) * e},
                   {"permutations", R * H * (Np + Mp) * 8},  // query and key orders
                   {"cluster_scratch_per_thread", (Cq * (2 * D + 2 * E) + Ck * (3 * D + 2 * E) + 2 * Cq * Ck) * e},
                   {"out", R * s.n_queries * E * e},
                   {"lse", R * s.n_queries * e}});
  }
  return finish(s, entries,
                {{"hashes", R * H * (Np + Mp) * e},
                 {"permutations", R * H * (2 * Np + Mp) * 8},  // query and key orders, query inverse
                 {"q_sorted", R * H * Np * D * e},
                 {"k_sorted", R * H * Mp * D * e},
                 {"v_sorted", R * H * Mp * E * e},
                 {"logits", entries * e},
                 {"probs", entries * e},
                 {"out_per_hash", R * H * Np * E * e},
                 {"lse_per_hash", R * H * Np * e},
                 {"out", R * s.n_queries * E * e},
                 {"lse", R * s.n_queries * e}});
}

}  // namespace smyrf
