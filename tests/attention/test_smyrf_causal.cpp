// Causal smyrf and e2lsh (core/attention/smyrf.h, core/lsh/causal_clusters.h):
//   - the output equals a brute force written from the design alone: for each query, the exact
//     keys of its block up to it, plus per hash the run of Ck past keys its hash falls in, found by
//     sorting that query's past with the causal XBOX+ bound; hashes weighted 1/#; at N = 97 and
//     1013 with padding, for the fused kernels and the LibTorch twin;
//   - strict causality: changing q, k and v after position i (so every later token's hash, and
//     the XBOX+ bound of later blocks) leaves rows <= i unchanged, bit for bit;
//   - the fused backward equals the twin's gradients, and gives the same bits on 1 and 2 threads
//     (keys repeat across clusters, so the backward must not split a row's clusters over threads).
// Exactness limits (block >= N; Ck >= N) are in test_method_contract.cpp's table.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "core/lsh/projection_hash.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::make_generator;
using test::method_of;
using test::run;

struct CausalCase {
  int64_t n_hashes, q_cluster, k_cluster, block;
  bool asymmetric;
};

// The expected output of causal smyrf / e2lsh for real query rows (others 0), float64 loops.
at::Tensor brute_force(const AttentionInputs& in, const CausalCase& c, uint64_t seed) {
  const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1), N = in.q_BHND.size(2), D = in.q_BHND.size(3);
  const int64_t E = in.v_BHME.size(3), U = c.n_hashes, T = c.block, Ck = std::min(c.k_cluster, N);
  auto gen = make_generator(seed);
  const at::Tensor dirs = draw_directions(U, c.asymmetric ? D + 2 : D, gen).contiguous();
  const at::Tensor q = in.q_BHND.nan_to_num(0).contiguous(), k = in.k_BHMD.nan_to_num(0).contiguous();
  const at::Tensor v = in.v_BHME.nan_to_num(0).contiguous();
  const auto q_keep = in.query_keep_BN->to(at::kBool), k_keep = in.key_keep_BM->to(at::kBool);
  const double scale = in.scale;
  at::Tensor out = at::zeros({B, H, N, E}, at::kDouble);
  auto dot = [&](const at::Tensor& x, const double* a) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s += x[d].item<double>() * a[d];
    return s;
  };
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (!q_keep[b][i].item<bool>()) continue;
        const at::Tensor qi = q[b][h][i], ki = k[b][h], vi = v[b][h];
        const int64_t start = i / T * T;
        std::vector<double> weight(static_cast<size_t>(N), 0.0);
        for (int64_t j = start; j <= i; ++j)
          if (k_keep[b][j].item<bool>()) weight[j] += 1.0;
        double M2k = 0, M2q = 0;
        std::vector<int64_t> past;
        for (int64_t j = 0; j < start; ++j) {
          if (k_keep[b][j].item<bool>()) past.push_back(j), M2k = std::max(M2k, ki[j].pow(2).sum().item<double>());
          if (q_keep[b][j].item<bool>()) M2q = std::max(M2q, q[b][h][j].pow(2).sum().item<double>());
        }
        const double M2 = M2k + M2q;
        for (int64_t u = 0; u < U && !past.empty(); ++u) {
          const double* a = dirs.data_ptr<double>() + u * dirs.size(1);
          std::vector<std::pair<double, int64_t>> sorted;
          for (int64_t j : past) {
            const double ext = c.asymmetric ? a[D] * std::sqrt(std::max(M2 - ki[j].pow(2).sum().item<double>(), 0.0)) : 0;
            sorted.emplace_back(dot(ki[j], a) + ext, j);
          }
          std::sort(sorted.begin(), sorted.end());
          const double hq = dot(qi, a) + (c.asymmetric ? a[D + 1] * std::sqrt(std::max(M2 - qi.pow(2).sum().item<double>(), 0.0)) : 0);
          int64_t rank = 0;
          while (rank < static_cast<int64_t>(sorted.size()) && sorted[rank].first <= hq) ++rank;
          const int64_t P = static_cast<int64_t>(sorted.size());
          const int64_t first = std::min(rank / Ck * Ck, std::max<int64_t>(P - Ck, 0));
          for (int64_t s = first; s < std::min(first + Ck, P); ++s) weight[sorted[s].second] += 1.0 / U;
        }
        double total = 0, top = -INFINITY;
        for (int64_t j = 0; j < N; ++j)
          if (weight[j] > 0) top = std::max(top, scale * (qi * ki[j]).sum().item<double>());
        at::Tensor acc = at::zeros({E}, at::kDouble);
        for (int64_t j = 0; j < N; ++j) {
          if (weight[j] == 0) continue;
          const double w = weight[j] * std::exp(scale * (qi * ki[j]).sum().item<double>() - top);
          total += w;
          acc += w * vi[j];
        }
        out[b][h][i] = acc / total;
      }
  return out;
}

nlohmann::json options_of(const CausalCase& c, const char* kernel) {
  return {{"method", c.asymmetric ? "smyrf" : "e2lsh"}, {"n_hashes", c.n_hashes}, {"q_cluster_size", c.q_cluster},
          {"k_cluster_size", c.k_cluster}, {"block", c.block}, {"kernel", kernel}};
}

TEST(SmyrfCausal, EqualsABruteForceOfTheDesignAtHostileSizes) {
  const std::vector<std::pair<CausalCase, int64_t>> cases = {
      {{2, 4, 8, 10, true}, 97}, {{3, 5, 7, 16, false}, 97}, {{2, 16, 24, 100, true}, 1013}};
  for (const auto& [c, N] : cases) {
    AttentionInputs in = test::padded_inputs(N, N, /*causal=*/true, 21, 1.0, N > 500 ? 1 : 2);
    in.scale = 0.3;
    const at::Tensor expected = brute_force(in, c, 9);
    for (const char* kernel : {"fused", "reference"}) {
      const at::Tensor got = run(*method_of(options_of(c, kernel)), in, 9).out_BHNE;
      EXPECT_CLOSE(got, expected, 1e-12, 1e-10) << options_of(c, kernel).dump() << " N=" << N;
    }
  }
}

TEST(SmyrfCausal, LaterTokensNeverChangeEarlierRowsThroughTheClustering) {
  for (const bool asymmetric : {true, false})
    for (const char* kernel : {"fused", "reference"})
      for (const at::ScalarType dtype : {at::kFloat, at::kDouble}) {
        const CausalCase c{2, 8, 16, 32, asymmetric};
        const auto method = method_of(options_of(c, kernel));
        const int64_t N = 300;
        AttentionInputs in = test::random_inputs(1, 2, N, N, 8, 5, dtype, 31);
        in.causal = true;
        const at::Tensor before = run(*method, in, 4).out_BHNE;
        for (const int64_t cut : {0, 31, 137, 250}) {
          AttentionInputs changed = in;
          auto later = [&](const at::Tensor& x, uint64_t seed) {
            at::Tensor y = x.clone();
            y.narrow(2, cut + 1, N - cut - 1).mul_(3.0).add_(at::randn_like(y.narrow(2, cut + 1, N - cut - 1)));
            (void)seed;
            return y;
          };
          changed.q_BHND = later(in.q_BHND, 1), changed.k_BHMD = later(in.k_BHMD, 2), changed.v_BHME = later(in.v_BHME, 3);
          const at::Tensor after = run(*method, changed, 4).out_BHNE;
          EXPECT_TRUE(at::equal(after.narrow(2, 0, cut + 1), before.narrow(2, 0, cut + 1)))
              << options_of(c, kernel).dump() << " " << dtype << " cut " << cut;
          EXPECT_GT((after - before).abs().max().item<double>(), 1e-3) << "the change must matter later";
        }
      }
}

TEST(SmyrfCausal, FusedGradientsEqualTheTwinsAndDoNotDependOnThreads) {
  const CausalCase c{2, 4, 8, 12, true};
  AttentionInputs in = test::padded_inputs(97, 97, /*causal=*/true, 5, 1.0, 2);
  for (at::Tensor* x : {&in.q_BHND, &in.k_BHMD, &in.v_BHME}) *x = x->nan_to_num(0).requires_grad_(true);
  const at::Tensor dout = at::randn({2, 2, 97, 5}, make_generator(6), at::kDouble);
  auto gradients = [&](const char* kernel, int threads) {
    const int before = at::get_num_threads();
    at::set_num_threads(threads);
    for (at::Tensor* x : {&in.q_BHND, &in.k_BHMD, &in.v_BHME}) x->mutable_grad() = at::Tensor();
    const AttentionOutput o = run(*method_of(options_of(c, kernel)), in, 8);
    (o.out_BHNE * dout).sum().add(o.lse_BHN->nan_to_num(0, 0, 0).sum() * 0.3).backward();
    at::set_num_threads(before);
    return std::vector<at::Tensor>{in.q_BHND.grad().clone(), in.k_BHMD.grad().clone(), in.v_BHME.grad().clone()};
  };
  const auto twin = gradients("reference", 2), fused1 = gradients("fused", 1), fused2 = gradients("fused", 2);
  for (size_t p = 0; p < 3; ++p) {
    EXPECT_CLOSE(fused2[p], twin[p], 1e-12, 1e-9) << "input " << p;
    EXPECT_TRUE(at::equal(fused1[p], fused2[p])) << "input " << p << ": 1 and 2 threads differ";
  }
}

}  // namespace
}  // namespace smyrf
