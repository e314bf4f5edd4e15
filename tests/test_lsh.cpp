// core/lsh: the XBOX+ identity, the split projection equals hashing the explicit (D+2)-dim
// transform, directions come only from the generator, e2lsh hashes the raw vectors.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/attention/smyrf.h"
#include "core/lsh/asymmetric_transform.h"
#include "core/lsh/balanced_clusters.h"
#include "core/lsh/projection_hash.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::make_generator;

TEST(XboxPlus, DistanceDependsOnlyOnInnerProduct) {
  auto gen = make_generator(1);
  const at::Tensor q = at::normal(0, 2.0, {3, 50, 7}, gen, at::kDouble);
  const at::Tensor k = at::normal(0, 0.5, {3, 40, 7}, gen, at::kDouble);
  const auto ext = xbox_plus_extensions(q, k);
  const at::Tensor tq = xbox_plus_queries(q, ext.q_ext_RN), tk = xbox_plus_keys(k, ext.k_ext_RM);
  const at::Tensor dist2 = at::cdist(tq, tk).square();
  const at::Tensor m2 = q.square().sum(-1).amax(-1) + k.square().sum(-1).amax(-1);
  const at::Tensor expected = 2 * m2.view({3, 1, 1}) - 2 * at::matmul(q, k.transpose(1, 2));
  EXPECT_CLOSE(dist2, expected, 1e-9, 1e-9);
  // all transformed vectors share the norm M
  EXPECT_CLOSE(tq.norm(2, -1), m2.sqrt().view({3, 1}).expand({3, 50}), 1e-12, 1e-12);
  EXPECT_CLOSE(tk.norm(2, -1), m2.sqrt().view({3, 1}).expand({3, 40}), 1e-12, 1e-12);
}

TEST(ProjectionHash, SplitFormEqualsProjectingTheExplicitTransform) {
  auto gen = make_generator(2);
  const at::Tensor q = at::normal(0, 1.0, {2, 97, 9}, gen, at::kDouble);
  const at::Tensor k = at::normal(0, 1.0, {2, 61, 9}, gen, at::kDouble);
  const auto ext = xbox_plus_extensions(q, k);
  const at::Tensor dirs = draw_directions(3, 11, gen);
  EXPECT_CLOSE(projection_hash_cpu(q, ext.q_ext_RN, dirs, 10), at::matmul(xbox_plus_queries(q, ext.q_ext_RN), dirs.t()),
               1e-12, 1e-12);
  EXPECT_CLOSE(projection_hash_cpu(k, ext.k_ext_RM, dirs, 9), at::matmul(xbox_plus_keys(k, ext.k_ext_RM), dirs.t()),
               1e-12, 1e-12);
  // without an extension (e2lsh) it is a plain projection on the first D coordinates
  EXPECT_CLOSE(projection_hash_cpu(q, at::Tensor(), dirs, 0), at::matmul(q, dirs.narrow(1, 0, 9).t()), 1e-12, 1e-12);
}

TEST(ProjectionHash, DirectionsComeOnlyFromTheGenerator) {
  auto a = make_generator(7), b = make_generator(7), c = make_generator(8);
  const at::Tensor da = draw_directions(4, 66, a);
  EXPECT_TRUE(at::equal(da, draw_directions(4, 66, b)));
  EXPECT_FALSE(at::equal(da, draw_directions(4, 66, c)));
  EXPECT_EQ(da.scalar_type(), at::kDouble);
}


TEST(BalancedClustering, ClustersEqualSortingTheExplicitTransformAlongEachDirection) {
  AttentionInputs in = test::random_inputs(1, 2, 97, 97, 6, 4, at::kDouble, 3);
  SmyrfOptions o;
  o.n_hashes = 3;
  o.q_cluster_size = 16;
  const SmyrfAttention method(o);
  auto gen = make_generator(9);
  const SmyrfClusters c = method.cluster(in, gen);
  const at::Tensor q = in.q_BHND.reshape({2, 97, 6}), k = in.k_BHMD.reshape({2, 97, 6});
  const auto ext = xbox_plus_extensions(q, k);
  const at::Tensor hq = at::matmul(xbox_plus_queries(q, ext.q_ext_RN), c.directions_UX.t());  // [R, N, #]
  const at::Tensor hk = at::matmul(xbox_plus_keys(k, ext.k_ext_RM), c.directions_UX.t());
  const int64_t L = c.geometry.n_clusters;
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < 3; ++t) {
      const at::Tensor order_q = hq[r].select(1, t).argsort(), order_k = hk[r].select(1, t).argsort();
      for (int64_t cluster = 0; cluster < L; ++cluster) {
        // cluster c holds ranks [floor(97c/L), floor(97(c+1)/L)) of the projection in its first
        // slots (14 slots per cluster, the spare one a dummy)
        const int64_t lo = cluster * 97 / L, n = (cluster + 1) * 97 / L - lo;
        const int64_t slot = cluster * c.geometry.q_cluster_size;
        const at::Tensor ours = std::get<0>(c.perm_q_RUN[r][t].narrow(0, slot, n).sort());
        const at::Tensor theirs = std::get<0>(order_q.narrow(0, lo, n).sort());
        EXPECT_TRUE(at::equal(ours, theirs)) << "query cluster " << cluster;
        const at::Tensor ours_k = std::get<0>(c.perm_k_RUM[r][t].narrow(0, slot, n).sort());
        EXPECT_TRUE(at::equal(ours_k, std::get<0>(order_k.narrow(0, lo, n).sort()))) << "key cluster " << cluster;
      }
    }
}

}  // namespace
}  // namespace smyrf

namespace smyrf {
namespace {

TEST(BalancedClusters, RadixArgsortEqualsAStableComparisonSort) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  for (const auto dtype : {at::kFloat, at::kDouble}) {
    // many ties (small integers), negative values, both zeros, and unkept tokens
    at::Tensor hash = at::randint(-20, 20, {3, 1013, 2}, gen, at::TensorOptions().dtype(at::kLong)).to(dtype) * 0.25;
    hash.select(2, 1).copy_(at::normal(0, 1e3, {3, 1013}, gen, at::TensorOptions().dtype(at::kDouble)).to(dtype));
    const at::Tensor keep = at::rand({3, 1013}, gen, at::TensorOptions().dtype(at::kDouble)).gt(0.2);
    const at::Tensor expected = std::get<1>(at::sort(
        hash.masked_fill(keep.logical_not().unsqueeze(-1), std::numeric_limits<double>::infinity()).transpose(1, 2),
        std::optional<bool>(true), -1, false));
    EXPECT_TRUE(at::equal(sort_by_hash(hash, keep), expected)) << dtype;
  }
}

}  // namespace
}  // namespace smyrf
