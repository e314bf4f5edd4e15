// smyrf and e2lsh (core/attention/smyrf.cpp) and the fused CPU kernel that runs them
// (clustered_attention_cpu.h): at the exactness limit (one cluster == dense for any number of
// hashes); against an independent brute-force construction of the multiset of keys each query
// shares a cluster with, over the same clusters, at N = 97, 1013 and M != N (forward() and every
// instruction set of the kernel, float64 and float32); the balanced cluster layout; padding (zero
// weight, NaN never leaks, the as_released mask order); determinism and dropout; the autograd path
// against the inference path; finite-difference gradients; the memory formula; bad input. The
// float64 dense method is the oracle where one is needed (itself checked in test_dense.cpp).
#include <ATen/ATen.h>
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/attention/clustered_attention_cpu.h"
#include "core/attention/dense.h"
#include "core/attention/smyrf.h"
#include "core/util/check.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::check_gradients_by_finite_differences;
using test::keep_mask;
using test::make_generator;
using test::naive_attention_f64;
using test::nan_padded;
using test::random_inputs;
using test::run;

std::unique_ptr<SmyrfAttention> make_smyrf(int64_t n_hashes, int64_t q_cluster, std::optional<int64_t> k_cluster = {},
                                           bool asymmetric = true, MaskOrder mask_order = MaskOrder::kCorrect) {
  SmyrfOptions o;
  o.n_hashes = n_hashes;
  o.q_cluster_size = q_cluster;
  o.k_cluster_size = k_cluster;
  o.asymmetric_transform = asymmetric;
  o.mask_order = mask_order;
  return std::make_unique<SmyrfAttention>(o);
}

// ---- smyrf: exactness limit and brute force ------------------------------------------------------

TEST(Smyrf, SingleClusterEqualsDenseForAnyHashCount) {
  for (int64_t n_hashes : {1, 2, 4}) {
    for (auto [N, M] : std::vector<std::pair<int64_t, int64_t>>{{97, 97}, {64, 41}}) {
      AttentionInputs in = random_inputs(2, 2, N, M, 8, 5, at::kDouble, 10 + n_hashes);
      const auto exact = run(DenseAttention(), in, 0);
      const auto approx = run(*make_smyrf(n_hashes, N), in, 7);
      EXPECT_CLOSE(approx.out_BHNE, exact.out_BHNE, 1e-12, 1e-11) << "n_hashes " << n_hashes << " N " << N;
      // the multiset union repeats every key n_hashes times: lse grows by log(#)
      EXPECT_CLOSE(*approx.lse_BHN, *exact.lse_BHN + std::log(static_cast<double>(n_hashes)), 1e-11, 1e-11);
      EXPECT_DOUBLE_EQ(approx.cost.memory_fraction, static_cast<double>(n_hashes));
    }
  }
}

// Independent construction: take the clusters (permutations) and build, per query, the multiset of
// keys it shares a cluster with across hashes; softmax over that multiset in a plain loop. lse_out
// (optional): log-sum-exp of the scaled logits over the multiset, -inf where it is empty.
at::Tensor brute_force_multiset(const AttentionInputs& in, const SmyrfClusters& c, at::Tensor* lse_out = nullptr) {
  const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1), N = in.q_BHND.size(2), D = in.q_BHND.size(3);
  const int64_t M = in.k_BHMD.size(2), E = in.v_BHME.size(3);
  const int64_t Cq = c.geometry.q_cluster_size, Ck = c.geometry.k_cluster_size;
  const int64_t n_hashes = c.perm_q_RUN.size(1);
  const double scale = 1.0 / std::sqrt(static_cast<double>(D));
  const auto pq = c.perm_q_RUN.accessor<int64_t, 3>(), pk = c.perm_k_RUM.accessor<int64_t, 3>();
  const at::Tensor q = in.q_BHND.contiguous(), k = in.k_BHMD.contiguous(), v = in.v_BHME.contiguous();
  const auto qa = q.accessor<double, 4>(), ka = k.accessor<double, 4>(), va = v.accessor<double, 4>();
  at::Tensor out = at::zeros({B, H, N, E}, at::kDouble);
  at::Tensor lse = at::full({B, H, N}, -std::numeric_limits<double>::infinity(), at::kDouble);
  auto oa = out.accessor<double, 4>();
  auto la = lse.accessor<double, 3>();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t r = b * H + h;
      std::vector<std::vector<int64_t>> seen(N);  // multiset of keys per query
      for (int64_t t = 0; t < n_hashes; ++t)
        for (int64_t pos = 0; pos < pq.size(2); ++pos) {
          const int64_t i = pq[r][t][pos];
          if (i >= N) continue;
          const int64_t cluster = pos / Cq;
          for (int64_t s = cluster * Ck; s < (cluster + 1) * Ck; ++s) {
            const int64_t j = pk[r][t][s];
            if (j >= M || (in.key_keep_BM && !(*in.key_keep_BM)[b][j].item<bool>())) continue;
            seen[i].push_back(j);
          }
        }
      for (int64_t i = 0; i < N; ++i) {
        if (seen[i].empty()) continue;
        std::vector<double> logit;
        double mx = -1e300;
        for (int64_t j : seen[i]) {
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qa[b][h][i][d] * ka[b][h][j][d];
          logit.push_back(dot * scale);
          mx = std::max(mx, logit.back());
        }
        double z = 0;
        for (double l : logit) z += std::exp(l - mx);
        la[b][h][i] = mx + std::log(z);
        for (size_t u = 0; u < seen[i].size(); ++u)
          for (int64_t e = 0; e < E; ++e) oa[b][h][i][e] += std::exp(logit[u] - mx) / z * va[b][h][seen[i][u]][e];
      }
    }
  if (lse_out != nullptr) *lse_out = lse;
  return out;
}

struct BruteCase {
  int64_t N, M, q_cluster, n_hashes;
  bool padded;
  bool asymmetric;
};

TEST(Smyrf, EqualsBruteForceMultisetConstructionAtHostileSizes) {
  const std::vector<BruteCase> cases = {{97, 97, 16, 2, false, true},  {97, 97, 16, 3, true, true},
                                        {1013, 1013, 64, 2, false, true}, {200, 77, 25, 2, true, true},
                                        {61, 150, 8, 4, false, true},  {97, 97, 16, 2, true, false}};
  for (const auto& tc : cases) {
    AttentionInputs in = random_inputs(2, 2, tc.N, tc.M, 12, 6, at::kDouble, 100 + tc.N);
    if (tc.padded) {
      in.key_keep_BM = keep_mask({tc.M, tc.M * 2 / 3}, tc.M);
      // cluster() takes inputs as forward() hands them on: padded rows zeroed
      in.k_BHMD = in.k_BHMD * in.key_keep_BM->view({2, 1, tc.M, 1});
      in.v_BHME = in.v_BHME * in.key_keep_BM->view({2, 1, tc.M, 1});
    }
    const auto method = make_smyrf(tc.n_hashes, tc.q_cluster, {}, tc.asymmetric);
    auto gen_clusters = make_generator(5);
    const SmyrfClusters clusters = method->cluster(in, gen_clusters);
    const at::Tensor expected = brute_force_multiset(in, clusters);
    const auto out = run(*method, in, 5);
    EXPECT_CLOSE(out.out_BHNE, expected, 1e-12, 1e-10)
        << "N " << tc.N << " M " << tc.M << " C " << tc.q_cluster << " # " << tc.n_hashes;
  }
}

TEST(Smyrf, RealTokensAreSpreadOverEveryClusterAndPaddingFillsTheRest) {
  AttentionInputs in = random_inputs(2, 1, 97, 97, 8, 8, at::kDouble, 6);
  in.key_keep_BM = keep_mask({97, 50}, 97);
  in.query_keep_BN = keep_mask({97, 50}, 97);
  auto gen = make_generator(3);
  const SmyrfClusters c = make_smyrf(2, 16)->cluster(in, gen);
  EXPECT_EQ(c.geometry.n_clusters, 7);
  EXPECT_EQ(c.geometry.q_cluster_size, 14);  // 97 ranks over 7 clusters: 13 or 14 each
  EXPECT_EQ(c.geometry.padded_queries, 98);
  EXPECT_EQ(c.geometry.k_cluster_size, 14);
  EXPECT_EQ(c.geometry.padded_keys, 98);
  for (const at::Tensor& perm_RUP : {c.perm_q_RUN, c.perm_k_RUM}) {
    for (int64_t t = 0; t < 2; ++t) {
      for (int64_t row = 0; row < 2; ++row) {
        const int64_t n_real = row == 0 ? 97 : 50;
        const at::Tensor slots = perm_RUP[row][t];
        EXPECT_TRUE(at::equal(std::get<0>(slots.sort()), at::arange(98, at::kLong)));  // a permutation
        // cluster c holds the real ranks [floor(n c / 7), floor(n (c+1) / 7)) of the row's n real
        // tokens; padded tokens and the dummy fill the other slots, so every cluster has real ones
        for (int64_t cluster = 0; cluster < 7; ++cluster) {
          const int64_t real = (slots.narrow(0, cluster * 14, 14) < n_real).sum().item<int64_t>();
          EXPECT_EQ(real, (cluster + 1) * n_real / 7 - cluster * n_real / 7) << "row " << row << " cluster " << cluster;
        }
      }
    }
  }
}

TEST(Smyrf, QueryAndKeyClustersCoverTheSameQuantilesWhenSizesDoNotDivide) {
  // M far from a multiple of L: every key cluster must still hold real keys (no all-dummy
  // cluster), and cluster c must cover the same share of the key order as of the query order.
  AttentionInputs in = random_inputs(1, 1, 128, 9, 8, 4, at::kDouble, 31);
  auto gen = make_generator(4);
  const auto method = make_smyrf(1, 32);
  const SmyrfClusters c = method->cluster(in, gen);
  EXPECT_EQ(c.geometry.n_clusters, 4);
  EXPECT_EQ(c.geometry.k_cluster_size, 3);
  for (int64_t cluster = 0; cluster < 4; ++cluster) {
    // key cluster c holds key ranks [floor(9c/4), floor(9(c+1)/4)): 2, 2, 2, 3 real keys
    const int64_t real = (c.perm_k_RUM[0][0].narrow(0, cluster * 3, 3) < 9).sum().item<int64_t>();
    EXPECT_EQ(real, (cluster + 1) * 9 / 4 - cluster * 9 / 4) << "key cluster " << cluster;
    // and query cluster c all 32 of its query ranks
    EXPECT_EQ((c.perm_q_RUN[0][0].narrow(0, cluster * 32, 32) < 128).sum().item<int64_t>(), 32);
  }
  const auto out = run(*method, in, 4);
  EXPECT_TRUE(at::isfinite(*out.lse_BHN).all().item<bool>()) << "a query was left with no key";
  EXPECT_GT(out.out_BHNE.abs().sum(-1).min().item<double>(), 0.0);
}

// ---- padding -------------------------------------------------------------------------------------

TEST(Padding, PaddedKeysGetZeroWeightAndNaNNeverLeaks) {
  const int64_t N = 97, M = 97;
  AttentionInputs clean = random_inputs(2, 2, N, M, 8, 4, at::kDouble, 7);
  clean.key_keep_BM = keep_mask({M, 60}, M);
  clean.query_keep_BN = keep_mask({N, 60}, N);
  AttentionInputs poisoned = clean;
  poisoned.q_BHND = nan_padded(clean.q_BHND, *clean.query_keep_BN);
  poisoned.k_BHMD = nan_padded(clean.k_BHMD, *clean.key_keep_BM);
  poisoned.v_BHME = nan_padded(clean.v_BHME, *clean.key_keep_BM);
  // dense: batch 1 equals attention over its 60 real tokens alone
  const auto dense = run(DenseAttention(), poisoned, 0);
  ASSERT_TRUE(at::isfinite(dense.out_BHNE).all().item<bool>());
  AttentionInputs truncated;
  truncated.q_BHND = clean.q_BHND.narrow(0, 1, 1).narrow(2, 0, 60);
  truncated.k_BHMD = clean.k_BHMD.narrow(0, 1, 1).narrow(2, 0, 60);
  truncated.v_BHME = clean.v_BHME.narrow(0, 1, 1).narrow(2, 0, 60);
  EXPECT_CLOSE(dense.out_BHNE.narrow(0, 1, 1).narrow(2, 0, 60), naive_attention_f64(truncated), 1e-13, 1e-12);
  EXPECT_TRUE(at::equal(dense.out_BHNE.narrow(0, 1, 1).narrow(2, 60, 37), at::zeros({1, 2, 37, 4}, at::kDouble)));
  // smyrf: NaN-poisoned pads give bit-identical results to zero pads, and a single cluster equals
  // dense over the real tokens
  for (int64_t C : {16, 97}) {
    const auto method = make_smyrf(2, C);
    const auto a = run(*method, poisoned, 9), b = run(*method, clean, 9);
    ASSERT_TRUE(at::isfinite(a.out_BHNE).all().item<bool>()) << "C " << C;
    EXPECT_TRUE(at::equal(a.out_BHNE, b.out_BHNE)) << "C " << C;
    if (C == 97) EXPECT_CLOSE(a.out_BHNE, dense.out_BHNE, 1e-12, 1e-11);
  }
}

TEST(Padding, AsReleasedMaskOrderReproducesTheTiledMask) {
  // batch 2 x 3 heads with different lengths: the released code gives row r = b*H + h the mask of
  // batch r % B. Check against per-row runs with that mask (directions are shared across rows).
  const int64_t B = 2, H = 3, N = 32;
  AttentionInputs in = random_inputs(B, H, N, N, 8, 4, at::kDouble, 8);
  in.key_keep_BM = keep_mask({32, 19}, N);
  in.query_keep_BN = *in.key_keep_BM;
  // zero the pads up front so that zeroing under either mask leaves the same data (and XBOX+ norms)
  const at::Tensor keep = in.key_keep_BM->view({B, 1, N, 1});
  in.q_BHND = in.q_BHND * keep;
  in.k_BHMD = in.k_BHMD * keep;
  in.v_BHME = in.v_BHME * keep;
  const auto released = run(*make_smyrf(2, 8, {}, true, MaskOrder::kAsReleased), in, 4).out_BHNE;
  const auto correct = run(*make_smyrf(2, 8, {}, true, MaskOrder::kCorrect), in, 4).out_BHNE;
  int64_t rows_differing = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      const int64_t tiled_batch = (b * H + h) % B;
      AttentionInputs row;
      row.q_BHND = in.q_BHND.narrow(0, b, 1).narrow(1, h, 1);
      row.k_BHMD = in.k_BHMD.narrow(0, b, 1).narrow(1, h, 1);
      row.v_BHME = in.v_BHME.narrow(0, b, 1).narrow(1, h, 1);
      row.key_keep_BM = in.key_keep_BM->narrow(0, tiled_batch, 1);
      row.query_keep_BN = row.key_keep_BM;
      const auto expected = run(*make_smyrf(2, 8, {}, true, MaskOrder::kCorrect), row, 4).out_BHNE;
      at::Tensor got = released.narrow(0, b, 1).narrow(1, h, 1);
      // rows whose own queries are padded are zeroed at the output: compare the real queries only
      const int64_t real_q = in.query_keep_BN->select(0, b).sum().item<int64_t>();
      const int64_t tiled_real_q = in.key_keep_BM->select(0, tiled_batch).sum().item<int64_t>();
      const int64_t n_cmp = std::min(real_q, tiled_real_q);
      EXPECT_CLOSE(got.narrow(2, 0, n_cmp), expected.narrow(2, 0, n_cmp), 1e-12, 1e-11) << "row " << b * H + h;
      if (!at::allclose(got, correct.narrow(0, b, 1).narrow(1, h, 1))) ++rows_differing;
    }
  EXPECT_GT(rows_differing, 0) << "the as_released mode should differ from correct for batch > 1";
  // with batch 1 the two modes agree
  AttentionInputs one = in;
  one.q_BHND = in.q_BHND.narrow(0, 1, 1);
  one.k_BHMD = in.k_BHMD.narrow(0, 1, 1);
  one.v_BHME = in.v_BHME.narrow(0, 1, 1);
  one.key_keep_BM = in.key_keep_BM->narrow(0, 1, 1);
  one.query_keep_BN = one.key_keep_BM;
  EXPECT_TRUE(at::equal(run(*make_smyrf(2, 8, {}, true, MaskOrder::kAsReleased), one, 4).out_BHNE,
                        run(*make_smyrf(2, 8, {}, true, MaskOrder::kCorrect), one, 4).out_BHNE));
}

// ---- determinism ---------------------------------------------------------------------------------

TEST(Determinism, SameSeedSameBitsOtherSeedOtherClusters) {
  AttentionInputs in = random_inputs(1, 4, 1013, 1013, 16, 16, at::kFloat, 9);
  const auto method = make_smyrf(2, 32);
  EXPECT_TRUE(at::equal(run(*method, in, 42).out_BHNE, run(*method, in, 42).out_BHNE));
  auto g1 = make_generator(42), g2 = make_generator(43);
  const auto c1 = method->cluster(in, g1), c2 = method->cluster(in, g2);
  EXPECT_FALSE(at::equal(c1.perm_q_RUN, c2.perm_q_RUN));
  EXPECT_FALSE(at::equal(run(*method, in, 42).out_BHNE, run(*method, in, 43).out_BHNE));
}

TEST(Determinism, DropoutOnlyInTrainingAndSeeded) {
  AttentionInputs in = random_inputs(1, 2, 64, 64, 8, 8, at::kDouble, 10);
  SmyrfOptions o;
  o.dropout = 0.3;
  o.q_cluster_size = 16;
  const SmyrfAttention with_dropout(o);
  const auto eval_out = run(with_dropout, in, 1).out_BHNE;
  EXPECT_TRUE(at::equal(eval_out, run(*make_smyrf(2, 16), in, 1).out_BHNE));
  in.training = true;
  const auto train_a = run(with_dropout, in, 1).out_BHNE, train_b = run(with_dropout, in, 1).out_BHNE;
  EXPECT_TRUE(at::equal(train_a, train_b));
  EXPECT_FALSE(at::allclose(train_a, eval_out));
}

TEST(Determinism, AutogradPathEqualsInferencePath) {
  // Without gradients forward() takes another path (dense: softmax in place; smyrf: the fused CPU
  // kernel); with the same clusters both must agree, in float64 to rounding and in float32 to
  // float32 rounding (the kernel has its own exp).
  for (auto [dtype, tol] : {std::pair<at::ScalarType, double>{at::kDouble, 1e-12}, {at::kFloat, 3e-6}}) {
    for (auto [N, M] : std::vector<std::pair<int64_t, int64_t>>{{97, 61}, {1013, 1013}}) {
      AttentionInputs in = random_inputs(2, 2, N, M, 8, 5, dtype, 14);
      in.key_keep_BM = keep_mask({M, M * 2 / 3}, M);
      std::vector<std::unique_ptr<AttentionMethod>> methods;
      methods.push_back(std::make_unique<DenseAttention>());
      methods.push_back(make_smyrf(3, 16));
      methods.push_back(make_smyrf(2, 16, {}, false));
      for (const auto& method : methods) {
        const auto inference = run(*method, in, 21);
        AttentionInputs grad_in = in;
        grad_in.q_BHND = in.q_BHND.clone().requires_grad_();
        const auto with_grad = run(*method, grad_in, 21);
        EXPECT_CLOSE(with_grad.out_BHNE.detach(), inference.out_BHNE, tol, tol) << method->name() << " N " << N;
        EXPECT_CLOSE(with_grad.lse_BHN->detach(), *inference.lse_BHN, tol, tol) << method->name() << " N " << N;
      }
    }
  }
}

TEST(Kernel, FastExpIsAccurateOverTheFloatRange) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 0.00731) {
    const double exact = std::exp(static_cast<double>(static_cast<float>(x)));
    worst = std::max(worst, std::abs(fast_expf(static_cast<float>(x)) - exact) / exact);
  }
  EXPECT_LT(worst, 1e-6);
  EXPECT_LT(fast_expf(-std::numeric_limits<float>::infinity()), 1e-37f);
}

// Every instruction-set variant of the fused kernel this CPU can run, called directly, against the
// float64 brute force over the same clusters, in float64 and float32. The sizes reach every
// remainder path: D and E not multiples of the vector width (scalar transpose columns), query
// slots not multiples of the register tile, key slots not multiples of the vector width, M != N,
// and masked keys that hold NaN (which must not leak).
TEST(Kernel, EveryInstructionSetMatchesTheBruteForceMultiset) {
  struct Case {
    int64_t N, M, D, E, q_cluster, n_hashes;
    bool padded;
  };
  const std::vector<Case> cases = {{97, 61, 40, 5, 16, 2, true},   {1013, 1013, 64, 64, 64, 2, false},
                                   {200, 77, 20, 24, 25, 3, true}, {61, 150, 8, 3, 8, 4, false},
                                   {300, 300, 64, 64, 128, 2, true}};
  std::vector<KernelIsa> isas;
  for (KernelIsa isa : {KernelIsa::kAvx512, KernelIsa::kAvx2, KernelIsa::kPortable})
    if (kernel_isa_available(isa)) isas.push_back(isa);
  ASSERT_FALSE(isas.empty());
  for (const Case& tc : cases) {
    for (auto [dtype, atol, rtol] : {std::tuple<at::ScalarType, double, double>{at::kDouble, 1e-12, 1e-10},
                                     {at::kFloat, 2e-6, 1e-5}}) {
      const int64_t B = 2, H = 2, R = B * H;
      AttentionInputs in = random_inputs(B, H, tc.N, tc.M, tc.D, tc.E, dtype, 200 + tc.N);
      at::Tensor keep_RM;
      if (tc.padded) {
        in.key_keep_BM = keep_mask({tc.M, tc.M * 2 / 3}, tc.M);
        // clustered as forward() hands them on (padded rows zeroed); the kernel then gets NaN there
        in.k_BHMD = in.k_BHMD * in.key_keep_BM->view({B, 1, tc.M, 1});
        in.v_BHME = in.v_BHME * in.key_keep_BM->view({B, 1, tc.M, 1});
        keep_RM = in.key_keep_BM->unsqueeze(1).expand({B, H, tc.M}).reshape({R, tc.M}).contiguous();
      }
      const auto method = make_smyrf(tc.n_hashes, tc.q_cluster);
      auto gen = make_generator(5);
      const SmyrfClusters clusters = method->cluster(in, gen);
      AttentionInputs in64 = in;
      in64.q_BHND = in.q_BHND.to(at::kDouble);
      in64.k_BHMD = in.k_BHMD.to(at::kDouble);
      in64.v_BHME = in.v_BHME.to(at::kDouble);
      at::Tensor lse_expected;
      const at::Tensor expected = brute_force_multiset(in64, clusters, &lse_expected);
      const at::Tensor k = tc.padded ? nan_padded(in.k_BHMD, *in.key_keep_BM) : in.k_BHMD;
      const at::Tensor v = tc.padded ? nan_padded(in.v_BHME, *in.key_keep_BM) : in.v_BHME;
      for (KernelIsa isa : isas) {
        at::Tensor out = at::empty({R, tc.N, tc.E}, dtype), lse = at::empty({R, tc.N}, dtype);
        ClusteredCall call;
        call.key_keep_RM = keep_RM;
        call.perm_q_RUN = clusters.perm_q_RUN;
        call.perm_k_RUM = clusters.perm_k_RUM;
        call.q_cluster_size = clusters.geometry.q_cluster_size;
        call.k_cluster_size = clusters.geometry.k_cluster_size;
        call.scale = 1.0 / std::sqrt(static_cast<double>(tc.D));
        call.isa = isa;
        clustered_attention_forward_cpu(in.q_BHND.reshape({R, tc.N, tc.D}), k.reshape({R, tc.M, tc.D}).contiguous(),
                                        v.reshape({R, tc.M, tc.E}).contiguous(), call, out, lse);
        const std::string where = fmt::format("{} {} N {} M {} D {} E {} C {} # {}", kernel_isa_name(isa),
                                              c10::toString(dtype), tc.N, tc.M, tc.D, tc.E, tc.q_cluster, tc.n_hashes);
        EXPECT_CLOSE(out.view({B, H, tc.N, tc.E}), expected, atol, rtol) << where;
        // compared through exp: rows that saw no key have lse -inf on both sides
        EXPECT_CLOSE(lse.view({B, H, tc.N}).to(at::kDouble).exp(), lse_expected.exp(), atol, rtol) << where;
      }
    }
  }
}

// ---- gradients -----------------------------------------------------------------------------------

TEST(Gradients, SmyrfMatchesFiniteDifferences) {
  check_gradients_by_finite_differences(*make_smyrf(2, 8), false);
  check_gradients_by_finite_differences(*make_smyrf(3, 8), true);
}

// ---- memory model --------------------------------------------------------------------------------

TEST(Memory, MemoryFractionIsHashesTimesKeyClusterOverKeys) {
  const AttentionShape s{1, 8, 4096, 4096, 64, 64, 4};
  for (auto [h, c] : std::vector<std::pair<int64_t, int64_t>>{{1, 32}, {2, 64}, {4, 128}, {8, 16}}) {
    const auto cost = make_smyrf(h, c)->cost(s);
    EXPECT_DOUBLE_EQ(cost.memory_fraction, static_cast<double>(h * c) / 4096.0);
    EXPECT_EQ(cost.score_entries, 8 * h * 4096 * c);
  }
  // BigGAN shape: 4096 queries, 1024 pooled keys, C_k = C_q / 4 by default
  const AttentionShape g{1, 1, 4096, 1024, 24, 96, 4};
  const auto cost = make_smyrf(8, 256)->cost(g);
  EXPECT_DOUBLE_EQ(cost.memory_fraction, 8.0 * 64 / 1024);
  // odd sizes: the entries really computed over the padded clusters
  const AttentionShape odd{1, 1, 97, 97, 8, 8, 8};
  EXPECT_EQ(make_smyrf(2, 16)->cost(odd).score_entries, 2 * 7 * 14 * 14);  // 7 clusters of 14 slots
  EXPECT_DOUBLE_EQ(DenseAttention().cost(odd).memory_fraction, 1.0);
  int64_t sum = 0;
  for (const auto& b : cost.buffers) sum += b.bytes;
  EXPECT_EQ(sum, cost.analytic_bytes);
}

// ---- bad input -----------------------------------------------------------------------------------

TEST(BadInput, ClusterSizeLargerThanSequenceIsAClearError) {
  AttentionInputs in = random_inputs(1, 1, 97, 97, 8, 8, at::kFloat, 1);
  try {
    run(*make_smyrf(2, 128), in, 0);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q_cluster_size 128 is larger than the 97 queries"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(run(*make_smyrf(2, 16, 5), in, 0), Error);  // 7 query clusters, 20 key clusters
}

// Causal calls (test_smyrf_causal.cpp) refuse attention dropout, which their exact blocks lack.
TEST(BadInput, SmyrfRefusesCausalDropout) {
  AttentionInputs in = random_inputs(1, 1, 32, 32, 4, 4, at::kFloat, 1);
  in.causal = true;
  in.training = true;
  const auto method = make_attention({{"method", "smyrf"}, {"q_cluster_size", 8}, {"dropout", 0.1}});
  const auto reasons = method->unsupported_reasons(request_of(in));
  ASSERT_EQ(reasons.size(), 1u);
  EXPECT_NE(reasons[0].find("dropout 0.1 with causal masking"), std::string::npos) << reasons[0];
  EXPECT_THROW(run(*method, in, 0), Error);
  EXPECT_NO_THROW(run(*make_smyrf(2, 8), in, 0));
}

}  // namespace
}  // namespace smyrf
