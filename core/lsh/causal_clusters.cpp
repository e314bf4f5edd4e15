// See causal_clusters.h.
#include "core/lsh/causal_clusters.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/lsh/balanced_clusters.h"
#include "core/util/check.h"

namespace smyrf {
namespace {

// One (row, hash) of the inputs, read through raw pointers.
struct RowHashes {
  const double *q_lin, *k_lin;  // stride U
  const double *q_norm2, *k_norm2;  // null: e2lsh
  const bool *q_keep, *k_keep;
  int64_t U;
  double q_coef, k_coef;
  double query_hash(int64_t i, double M2) const {
    const double lin = q_lin[i * U];
    return q_norm2 == nullptr ? lin : lin + q_coef * std::sqrt(std::max(M2 - q_norm2[i], 0.0));
  }
  double key_hash(int64_t j, double M2) const {
    const double lin = k_lin[j * U];
    return k_norm2 == nullptr ? lin : lin + k_coef * std::sqrt(std::max(M2 - k_norm2[j], 0.0));
  }
};

struct Cluster {
  std::vector<int64_t> queries, keys;
};

// The real keys of the blocks seen so far, sorted by (hash, token) under the current bound M2.
class SortedPast {
 public:
  // Adds the keys and query norms of positions [begin, end) and returns the new bound.
  void add_block(const RowHashes& h, int64_t begin, int64_t end) {
    std::vector<int64_t> fresh;
    for (int64_t t = begin; t < end; ++t) {
      if (h.k_keep[t]) {
        fresh.push_back(t);
        if (h.k_norm2 != nullptr) k_max2_ = std::max(k_max2_, h.k_norm2[t]);
      }
      if (h.q_keep[t] && h.q_norm2 != nullptr) q_max2_ = std::max(q_max2_, h.q_norm2[t]);
    }
    const double M2 = k_max2_ + q_max2_;
    if (M2 != M2_) {  // every past key's hash moved: hash and sort them all again
      M2_ = M2;
      fresh.insert(fresh.end(), tokens_.begin(), tokens_.end());
      tokens_.clear();
      keys_.clear();
    }
    std::vector<std::pair<double, int64_t>> added;
    for (int64_t t : fresh) added.emplace_back(h.key_hash(t, M2_), t);
    std::sort(added.begin(), added.end());
    std::vector<std::pair<double, int64_t>> merged;
    merged.reserve(keys_.size() + added.size());
    std::merge(keys_.begin(), keys_.end(), added.begin(), added.end(), std::back_inserter(merged));
    keys_.swap(merged);
    for (const auto& [unused, t] : added) tokens_.push_back(t);
  }
  double bound() const { return M2_; }
  const std::vector<std::pair<double, int64_t>>& keys() const { return keys_; }

 private:
  double k_max2_ = 0, q_max2_ = 0, M2_ = -1;
  std::vector<std::pair<double, int64_t>> keys_;
  std::vector<int64_t> tokens_;
};

// Routes the real queries of positions [begin, end) to runs of Ck past keys, Cq queries a cluster.
void route_block(const RowHashes& h, const SortedPast& past, int64_t begin, int64_t end, int64_t Cq, int64_t Ck,
                 std::vector<Cluster>& clusters, std::vector<int64_t>& keyless) {
  const auto& keys = past.keys();
  const int64_t P = static_cast<int64_t>(keys.size());
  std::vector<std::pair<int64_t, int64_t>> routed;  // (first rank of the run, query)
  for (int64_t i = begin; i < end; ++i) {
    if (!h.q_keep[i] || P == 0) {
      keyless.push_back(i);
      continue;
    }
    const double hash = h.query_hash(i, past.bound());
    // insertion rank among the past keys: keys with the same hash sort before the query
    const int64_t rank = std::lower_bound(keys.begin(), keys.end(), std::make_pair(hash, INT64_MAX)) - keys.begin();
    routed.emplace_back(std::min(rank / Ck * Ck, std::max<int64_t>(P - Ck, 0)), i);
  }
  std::stable_sort(routed.begin(), routed.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (size_t g = 0; g < routed.size();) {
    size_t g_end = g;
    while (g_end < routed.size() && routed[g_end].first == routed[g].first) ++g_end;
    std::vector<int64_t> run;
    for (int64_t s = routed[g].first; s < std::min(routed[g].first + Ck, P); ++s) run.push_back(keys[s].second);
    for (size_t c = g; c < g_end; c += static_cast<size_t>(Cq)) {
      Cluster cluster{{}, run};
      for (size_t i = c; i < std::min(g_end, c + static_cast<size_t>(Cq)); ++i) cluster.queries.push_back(routed[i].second);
      clusters.push_back(std::move(cluster));
    }
    g = g_end;
  }
}

std::vector<Cluster> clusters_of_row(const RowHashes& h, int64_t N, int64_t block, int64_t Cq, int64_t Ck) {
  std::vector<Cluster> clusters;
  std::vector<int64_t> keyless;
  SortedPast past;
  for (int64_t begin = 0; begin < N; begin += block) {
    const int64_t end = std::min(begin + block, N);
    if (begin > 0) past.add_block(h, begin - block, begin);
    route_block(h, past, begin, end, Cq, Ck, clusters, keyless);
  }
  for (size_t c = 0; c < keyless.size(); c += static_cast<size_t>(Cq))
    clusters.push_back({std::vector<int64_t>(keyless.begin() + c, keyless.begin() + std::min(keyless.size(), c + Cq)), {}});
  return clusters;
}

// Lays one (row, hash)'s clusters out in L slots-of-clusters: dummies fill query slots (N, N+1, ...)
// so that the query layout is a permutation of [0, L*Cq), and M fills empty key slots.
void lay_out(const std::vector<Cluster>& clusters, int64_t N, int64_t M, int64_t L, int64_t Cq, int64_t Ck, int64_t* pq,
             int64_t* pk) {
  int64_t next_dummy = N;
  for (int64_t c = 0; c < L; ++c) {
    const Cluster* cluster = c < static_cast<int64_t>(clusters.size()) ? &clusters[c] : nullptr;
    for (int64_t s = 0; s < Cq; ++s)
      pq[c * Cq + s] = cluster != nullptr && s < static_cast<int64_t>(cluster->queries.size()) ? cluster->queries[s]
                                                                                                : next_dummy++;
    for (int64_t s = 0; s < Ck; ++s)
      pk[c * Ck + s] = cluster != nullptr && s < static_cast<int64_t>(cluster->keys.size()) ? cluster->keys[s] : M;
  }
}

}  // namespace

CausalClusterLayout causal_clusters(const CausalHashes& hashes, const at::Tensor& q_keep_RN, const at::Tensor& k_keep_RN,
                                    int64_t block, int64_t Cq, int64_t Ck) {
  SMYRF_CHECK(block >= 1 && Cq >= 1 && Ck >= 1, "causal_clusters: block and cluster sizes must be >= 1");
  const at::Tensor q_lin = hashes.q_lin_RNU.to(at::kCPU, at::kDouble).contiguous();
  const at::Tensor k_lin = hashes.k_lin_RMU.to(at::kCPU, at::kDouble).contiguous();
  const int64_t R = q_lin.size(0), N = q_lin.size(1), U = q_lin.size(2), M = k_lin.size(1);
  SMYRF_CHECK(M == N, "causal_clusters: causal attention needs as many keys as queries, got N = {}, M = {}", N, M);
  const bool asymmetric = hashes.q_norm2_RN.defined();
  const at::Tensor q_n2 = asymmetric ? hashes.q_norm2_RN.to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  const at::Tensor k_n2 = asymmetric ? hashes.k_norm2_RM.to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  const at::Tensor q_coef = asymmetric ? hashes.q_coef_U.to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  const at::Tensor k_coef = asymmetric ? hashes.k_coef_U.to(at::kCPU, at::kDouble).contiguous() : at::Tensor();
  const at::Tensor q_keep = q_keep_RN.to(at::kCPU, at::kBool).narrow(1, 0, N).contiguous();
  const at::Tensor k_keep = k_keep_RN.to(at::kCPU, at::kBool).narrow(1, 0, M).contiguous();
  std::vector<std::vector<Cluster>> rows(static_cast<size_t>(R * U));
  at::parallel_for(0, R * U, 1, [&](int64_t begin, int64_t end) {
    for (int64_t rh = begin; rh < end; ++rh) {
      const int64_t r = rh / U, u = rh % U;
      const RowHashes h{q_lin.data_ptr<double>() + r * N * U + u,
                        k_lin.data_ptr<double>() + r * M * U + u,
                        asymmetric ? q_n2.data_ptr<double>() + r * N : nullptr,
                        asymmetric ? k_n2.data_ptr<double>() + r * M : nullptr,
                        q_keep.data_ptr<bool>() + r * N,
                        k_keep.data_ptr<bool>() + r * M,
                        U,
                        asymmetric ? q_coef.data_ptr<double>()[u] : 0.0,
                        asymmetric ? k_coef.data_ptr<double>()[u] : 0.0};
      rows[static_cast<size_t>(rh)] = clusters_of_row(h, N, block, Cq, Ck);
    }
  });
  CausalClusterLayout layout;
  for (const auto& row : rows) layout.n_clusters = std::max<int64_t>(layout.n_clusters, static_cast<int64_t>(row.size()));
  const int64_t L = layout.n_clusters;
  layout.perm_q_RUP = at::empty({R, U, L * Cq}, at::kLong);
  layout.perm_k_RUP = at::empty({R, U, L * Ck}, at::kLong);
  int64_t* pq = layout.perm_q_RUP.data_ptr<int64_t>();
  int64_t* pk = layout.perm_k_RUP.data_ptr<int64_t>();
  at::parallel_for(0, R * U, 1, [&](int64_t begin, int64_t end) {
    for (int64_t rh = begin; rh < end; ++rh) lay_out(rows[rh], N, M, L, Cq, Ck, pq + rh * L * Cq, pk + rh * L * Ck);
  });
  return layout;
}

int64_t causal_cluster_bound(int64_t N, int64_t block, int64_t Cq, int64_t Ck) {
  // routed queries of a block: at most one partly filled cluster per run they reach, plus full ones;
  // queries without keys (block 0, padding) fill ceil(count / Cq) clusters
  int64_t bound = ceil_div(N, Cq);
  for (int64_t begin = block; begin < N; begin += block) {
    const int64_t queries = std::min(block, N - begin), runs = ceil_div(begin, Ck);
    bound += std::min(queries, runs) + queries / Cq;
  }
  return bound;
}

}  // namespace smyrf
