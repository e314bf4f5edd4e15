// Tests of the peer methods (hyper, polysketch/polynomial, reformer, performer, nystrom, local,
// sdpa): each at its exactness limit against the float64 loop oracle with padding (NaN in padded
// positions) and causal masks at odd sizes (N = 97, M = 61, M > N), the algorithm-specific
// identities (Gray order, unbiased sampled mass, block-size independence, pseudo-inverse),
// causality, determinism, finite-difference gradients and that no sub-quadratic method holds an
// N x M buffer (peak RSS).
#include <algorithm>
#include <bitset>

#include "core/attention/dense.h"
#include "core/attention/hyper.h"
#include "core/attention/memory_budget.h"
#include "core/attention/nystrom.h"
#include "core/attention/polysketch.h"
#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
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

std::unique_ptr<AttentionMethod> method_of(const nlohmann::json& options) { return make_attention(options); }

// Inputs with the tail of batch row 1 padded (keys; queries too when N == M), NaN written there.
AttentionInputs padded_inputs(int64_t N, int64_t M, bool causal, uint64_t seed, double q_scale = 1.0) {
  AttentionInputs in = random_inputs(2, 3, N, M, 8, 5, at::kDouble, seed, q_scale);
  in.causal = causal;
  in.key_keep_BM = keep_mask({M, M - M / 4}, M);
  in.k_BHMD = nan_padded(in.k_BHMD, *in.key_keep_BM);
  in.v_BHME = nan_padded(in.v_BHME, *in.key_keep_BM);
  if (N == M) {
    in.query_keep_BN = in.key_keep_BM;
    in.q_BHND = nan_padded(in.q_BHND, *in.query_keep_BN);
  }
  return in;
}

double relative_error(const at::Tensor& approx, const at::Tensor& exact) {
  return (approx.to(at::kDouble) - exact).norm().item<double>() / exact.norm().item<double>();
}

// ---- exactness limits ------------------------------------------------------------------------------

struct ExactCase {
  nlohmann::json options;
  int64_t n, m;
  bool causal;
};

std::string describe(const ExactCase& c) {
  return fmt::format("{} N={} M={} causal={}", c.options.dump(), c.n, c.m, c.causal);
}

TEST(PeerExactness, EveryMethodEqualsTheLoopOracleAtItsLimitWithPaddingAndOddSizes) {
  const std::vector<ExactCase> cases = {
      {{{"method", "sdpa"}}, 97, 61, false},
      {{{"method", "sdpa"}}, 97, 97, true},
      {{{"method", "local"}, {"mode", "block"}, {"window", 97}}, 97, 61, false},
      {{{"method", "local"}, {"mode", "block"}, {"window", 130}}, 61, 97, false},
      {{{"method", "local"}, {"mode", "block"}, {"window", 97}}, 97, 97, true},
      {{{"method", "local"}, {"mode", "sliding"}, {"window", 193}}, 97, 97, false},
      {{{"method", "local"}, {"mode", "sliding"}, {"window", 97}}, 97, 97, true},
      {{{"method", "reformer"}, {"n_buckets", 1}, {"chunk_size", 97}, {"n_rounds", 3}}, 97, 61, false},
      {{{"method", "reformer"}, {"n_buckets", 1}, {"chunk_size", 97}, {"n_rounds", 2}}, 97, 97, true},
      {{{"method", "hyper"}, {"block_size", 97}, {"min_seq_len", 0}, {"sample_size", 16}}, 97, 61, false},
      {{{"method", "hyper"}, {"block_size", 16}, {"min_seq_len", 98}}, 97, 61, false},
      // recursion 97 -> 49 -> 25 -> 13 with every off-diagonal part one exact block
      {{{"method", "hyper"}, {"block_size", 97}, {"min_seq_len", 16}, {"sample_size", 8}}, 97, 97, true},
      // one recursion level whose off-diagonal part is exact because 49 < min_seq_len
      {{{"method", "hyper"}, {"block_size", 8}, {"min_seq_len", 64}}, 97, 97, true},
      {{{"method", "nystrom"}, {"landmarks", 61}, {"pinv_iterations", 0}}, 61, 61, false},
  };
  for (const ExactCase& c : cases) {
    const auto method = method_of(c.options);
    const AttentionInputs in = padded_inputs(c.n, c.m, c.causal, 5);
    const AttentionOutput out = run(*method, in, 3);
    ASSERT_TRUE(at::isfinite(out.out_BHNE).all().item<bool>()) << describe(c);
    EXPECT_CLOSE(out.out_BHNE, naive_attention_f64(in), 1e-10, 1e-9) << describe(c);
    if (out.lse_BHN) {
      auto gen = make_generator(0);
      const at::Tensor dense_lse = *DenseAttention().forward(in, gen).lse_BHN;
      const at::Tensor both_finite = at::isfinite(dense_lse);
      EXPECT_TRUE(at::equal(at::isfinite(*out.lse_BHN), both_finite)) << describe(c);
      EXPECT_CLOSE(out.lse_BHN->masked_select(both_finite), dense_lse.masked_select(both_finite), 1e-10, 1e-10)
          << describe(c);
    }
  }
}

TEST(PeerExactness, SlidingWindowEqualsBruteForceBandedDense) {
  for (bool causal : {false, true}) {
    const int64_t N = 97, M = causal ? 97 : 61, w = 10;
    const AttentionInputs in = padded_inputs(N, M, causal, 8);
    const at::Tensor out = run(*method_of({{"method", "local"}, {"window", w}}), in, 0).out_BHNE;
    // oracle: a dense loop over the band only, written from the definition in local.h
    const int64_t left = causal ? w - 1 : (w - 1) / 2, right = causal ? 0 : w - 1 - left;
    at::Tensor expected = at::zeros_like(out);
    const at::Tensor q = in.q_BHND.nan_to_num(0), k = in.k_BHMD.nan_to_num(0), v = in.v_BHME.nan_to_num(0);
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t i = 0; i < N; ++i) {
        if (in.query_keep_BN && !(*in.query_keep_BN)[b][i].item<bool>()) continue;
        std::vector<int64_t> js;
        for (int64_t j = std::max<int64_t>(0, i - left); j <= std::min(M - 1, i + right); ++j)
          if ((*in.key_keep_BM)[b][j].item<bool>()) js.push_back(j);
        if (js.empty()) continue;
        const at::Tensor idx = at::tensor(js, at::kLong);
        const at::Tensor logits = at::matmul(q[b].select(1, i).unsqueeze(1), k[b].index_select(1, idx).transpose(-1, -2)) /
                                  std::sqrt(8.0);
        expected[b].select(1, i).copy_(at::matmul(at::softmax(logits, -1), v[b].index_select(1, idx)).squeeze(1));
      }
    EXPECT_CLOSE(out, expected, 1e-12, 1e-10) << "causal=" << causal;
  }
}

// ---- polysketch / polynomial -----------------------------------------------------------------------

// o_i = sum_j w_ij v_j / (1 + sum_j w_ij), w_ij = (s q_i.k_j)^p over kept (and causal) keys.
at::Tensor naive_polynomial_f64(const AttentionInputs& in, int64_t p) {
  const int64_t B = in.q_BHND.size(0), H = in.q_BHND.size(1), N = in.q_BHND.size(2), M = in.k_BHMD.size(2);
  const double s = 1.0 / std::sqrt(static_cast<double>(in.q_BHND.size(3)));
  const at::Tensor q = in.q_BHND.nan_to_num(0), k = in.k_BHMD.nan_to_num(0), v = in.v_BHME.nan_to_num(0);
  at::Tensor out = at::zeros({B, H, N, in.v_BHME.size(3)}, at::kDouble);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < N; ++i) {
        if (in.query_keep_BN && !(*in.query_keep_BN)[b][i].item<bool>()) continue;
        at::Tensor num = at::zeros({in.v_BHME.size(3)}, at::kDouble);
        double den = 1.0;
        for (int64_t j = 0; j < M; ++j) {
          if ((in.key_keep_BM && !(*in.key_keep_BM)[b][j].item<bool>()) || (in.causal && j > i)) continue;
          const double w = std::pow(s * at::dot(q[b][h][i], k[b][h][j]).item<double>(), static_cast<double>(p));
          num += w * v[b][h][j];
          den += w;
        }
        out[b][h][i].copy_(num / den);
      }
  return out;
}

TEST(Polysketch, ExactTensorProductsGivePolynomialAttention) {
  for (bool causal : {false, true}) {
    const int64_t N = 37, M = causal ? 37 : 23;
    AttentionInputs in = padded_inputs(N, M, causal, 21);
    const at::Tensor expected = naive_polynomial_f64(in, 4);
    EXPECT_CLOSE(run(*method_of({{"method", "polynomial"}}), in, 0).out_BHNE, expected, 1e-12, 1e-10) << causal;
    for (int64_t block : {1, 7, 64}) {
      const auto exact_sketch = method_of({{"method", "polysketch"}, {"sketch", "exact"}, {"block", block}});
      EXPECT_CLOSE(run(*exact_sketch, in, 0).out_BHNE, expected, 1e-12, 1e-9) << "causal=" << causal << " block=" << block;
    }
    // local_exact with one block covering everything: every weight is exact
    if (causal) {
      const auto local = method_of({{"method", "polysketch"}, {"local_exact", true}, {"block", 64}});
      EXPECT_CLOSE(run(*local, in, 0).out_BHNE, expected, 1e-12, 1e-9);
    }
  }
}

TEST(Polysketch, ResultDoesNotDependOnBlockSizeAndCausalLastRowIsNonCausal) {
  AttentionInputs in = random_inputs(1, 2, 97, 97, 8, 5, at::kDouble, 4);
  in.causal = true;
  const at::Tensor ref = run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"block", 97}}), in, 9).out_BHNE;
  for (int64_t block : {1, 8, 32, 200})
    EXPECT_CLOSE(run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"block", block}}), in, 9).out_BHNE,
                 ref, 1e-12, 1e-9) << "block " << block;
  AttentionInputs full = in;
  full.causal = false;
  const at::Tensor non_causal = run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}}), full, 9).out_BHNE;
  EXPECT_CLOSE(ref.select(2, 96), non_causal.select(2, 96), 1e-12, 1e-9);
  // local_exact is meant to depend on the block: a block of 8 and one of 32 disagree
  in.causal = true;
  const auto local = [&](int64_t block) {
    return run(*method_of({{"method", "polysketch"}, {"sketch_size", 16}, {"local_exact", true}, {"block", block}}), in, 9)
        .out_BHNE;
  };
  EXPECT_GT((local(8) - local(32)).abs().max().item<double>(), 1e-6);
}

TEST(Polysketch, WeightsAreNonNegativeAndTheSketchIsUnbiasedForDegreeTwo) {
  // sub-convexity: every weight >= 0 and the +1, so |o_i| <= max_j |v_j| component-wise bound on norms
  const AttentionInputs in = random_inputs(1, 1, 64, 64, 8, 4, at::kDouble, 2, 2.0);
  const at::Tensor out = run(*method_of({{"method", "polysketch"}, {"sketch_size", 8}}), in, 1).out_BHNE;
  EXPECT_LE(out.norm(2, -1).max().item<double>(), in.v_BHME.norm(2, -1).max().item<double>() + 1e-12);
  // E<phi(q), phi(k)> = <q', k'>^2 over the sketches our forward draws: one query and one key, so
  // the output o = w v / (1 + w) gives back each draw's weight w = <phi(q), phi(k)>^2, which must
  // equal the weight computed here from the returned draws with the documented scale
  AttentionInputs pair = random_inputs(1, 1, 1, 1, 8, 1, at::kDouble, 3);
  pair.v_BHME = at::ones_like(pair.v_BHME);
  const double s = 1.0 / std::sqrt(8.0);
  const at::Tensor q = pair.q_BHND.view({8}) * std::sqrt(s), k = pair.k_BHMD.view({8}) * std::sqrt(s);
  const auto sketch = method_of({{"method", "polysketch"}, {"sketch_size", 32}});
  double mean = 0;
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const AttentionOutput o = run(*sketch, pair, 100 + t);
    const at::Tensor s1 = o.aux.at("sketch_1_DR"), s2 = o.aux.at("sketch_2_DR");
    const double inner = at::dot(at::matmul(q, s1) * at::matmul(q, s2), at::matmul(k, s1) * at::matmul(k, s2))
                             .item<double>() / 32.0;
    const double out = o.out_BHNE.item<double>();
    ASSERT_NEAR(out / (1 - out), inner * inner, 1e-9 * (1 + inner * inner)) << "draw " << t;
    mean += inner / trials;
  }
  const double target = std::pow(at::dot(q, k).item<double>(), 2);
  EXPECT_NEAR(mean, target, 0.1 * std::abs(target) + 0.05) << "unbiased for degree 2";
  // and our forward uses exactly those draws: the aux tensors are returned
  const AttentionOutput o = run(*method_of({{"method", "polysketch"}}), in, 1);
  ASSERT_TRUE(o.aux.count("sketch_1_DR") && o.aux.count("sketch_2_DR"));
  EXPECT_EQ(o.aux.at("sketch_1_DR").sizes(), (std::vector<int64_t>{8, 64}));
}

// ---- performer -------------------------------------------------------------------------------------

TEST(Performer, ErrorShrinksAsFeaturesGrow) {
  AttentionInputs in = random_inputs(1, 4, 256, 256, 16, 8, at::kDouble, 6, 0.5);
  // values with a common offset: near-uniform attention then has an output of norm ~1 to compare to
  in.v_BHME = in.v_BHME + 2.0;
  const at::Tensor exact = naive_attention_f64(in);
  std::map<int64_t, double> error;
  for (int64_t f : {16, 64, 256, 1024}) {
    double sum = 0;
    for (uint64_t seed = 0; seed < 4; ++seed)
      sum += relative_error(run(*method_of({{"method", "performer"}, {"features", f}}), in, seed).out_BHNE, exact);
    error[f] = sum / 4;
  }
  // positive features are heavy-tailed (exp of a Gaussian), so the error falls slower than
  // 1/sqrt(features); pinned with fixed seeds: measured 0.074 at 16 and 0.031 at 1024
  EXPECT_LT(error[64], error[16]);
  EXPECT_LT(error[256], error[64]);
  EXPECT_LT(error[1024], error[256]);
  EXPECT_LT(error[1024], 0.5 * error[16]) << error[16] << " " << error[1024];
  EXPECT_LT(error[1024], 0.05) << "stated bound at 1024 features on these inputs";
}

TEST(Performer, CausalBlocksDoNotChangeTheResult) {
  AttentionInputs in = random_inputs(1, 2, 97, 97, 8, 5, at::kDouble, 7, 0.5);
  in.causal = true;
  const at::Tensor ref = run(*method_of({{"method", "performer"}, {"features", 32}, {"block", 97}}), in, 2).out_BHNE;
  for (int64_t block : {1, 10, 64})
    EXPECT_CLOSE(run(*method_of({{"method", "performer"}, {"features", 32}, {"block", block}}), in, 2).out_BHNE, ref,
                 1e-12, 1e-9) << block;
  AttentionInputs full = in;
  full.causal = false;
  EXPECT_CLOSE(run(*method_of({{"method", "performer"}, {"features", 32}}), full, 2).out_BHNE.select(2, 96),
               ref.select(2, 96), 1e-12, 1e-9);
}

// ---- hyper -----------------------------------------------------------------------------------------

int popcount(int64_t x) { return static_cast<int>(std::bitset<64>(static_cast<uint64_t>(x)).count()); }

TEST(Hyper, TrueGrayOrderVisitsBucketsOneBitApartAndTheReleasedOrderDoesNot) {
  // projections = identity: bit j of a token is the sign of its coordinate j; one token per bin
  const int64_t P = 7, bins = int64_t{1} << P;
  at::Tensor x = at::empty({1, bins, P}, at::kDouble);
  for (int64_t bin = 0; bin < bins; ++bin)
    for (int64_t j = 0; j < P; ++j) x[0][bin][j] = (bin >> j) & 1 ? 1.0 : -1.0;
  for (const std::string order : {"gray", "as_released"}) {
    HyperOptions o;
    o.n_projections = P;
    o.bucket_order = order;
    const at::Tensor keys = HyperAttention(o).bucket_keys(x, at::eye(P, at::kDouble));
    const at::Tensor by_key = keys[0].argsort();
    std::map<int, int> distance_counts;
    for (int64_t s = 0; s + 1 < bins; ++s)
      ++distance_counts[popcount(by_key[s].item<int64_t>() ^ by_key[s + 1].item<int64_t>())];
    if (order == "gray") {
      EXPECT_EQ(distance_counts, (std::map<int, int>{{1, 127}}));
    } else {  // the counts reported for the reference code in methods.md
      EXPECT_EQ(distance_counts, (std::map<int, int>{{1, 96}, {2, 24}, {3, 6}, {4, 1}}));
    }
  }
}

TEST(Hyper, BlockPartEqualsDenseMaskedToTheSortedBlocks) {
  // sample_size 0: only the diagonal blocks of the sorted order; the oracle rebuilds the blocks with
  // std::stable_sort and the rank-quantile rule, independent of the tensor code
  const int64_t N = 97, M = 61, block = 16, L = (M + block - 1) / block;
  AttentionInputs in = random_inputs(1, 2, N, M, 8, 5, at::kDouble, 12);
  HyperOptions o;
  o.block_size = block;
  o.sample_size = 0;
  o.min_seq_len = 0;
  const HyperAttention hyper(o);
  const AttentionOutput out = run(hyper, in, 4);
  const at::Tensor proj = out.aux.at("projections_DP");
  at::Tensor expected = at::zeros_like(out.out_BHNE);
  for (int64_t h = 0; h < 2; ++h) {
    const auto blocks_of = [&](const at::Tensor& x_TD) {
      const at::Tensor keys = hyper.bucket_keys(x_TD.unsqueeze(0), proj)[0];
      const int64_t T = x_TD.size(0);
      std::vector<int64_t> order(static_cast<size_t>(T));
      std::iota(order.begin(), order.end(), 0);
      std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
        return keys[a].item<int64_t>() < keys[b].item<int64_t>();
      });
      std::vector<int64_t> block_of(static_cast<size_t>(T));
      for (int64_t rank = 0; rank < T; ++rank)
        for (int64_t c = 0; c < L; ++c)
          if (c * T / L <= rank && rank < (c + 1) * T / L) block_of[static_cast<size_t>(order[static_cast<size_t>(rank)])] = c;
      return block_of;
    };
    const auto q_block = blocks_of(in.q_BHND[0][h]), k_block = blocks_of(in.k_BHMD[0][h]);
    at::Tensor mask = at::zeros({N, M}, at::kBool);
    for (int64_t i = 0; i < N; ++i)
      for (int64_t j = 0; j < M; ++j) mask[i][j] = q_block[static_cast<size_t>(i)] == k_block[static_cast<size_t>(j)];
    const at::Tensor logits = at::matmul(in.q_BHND[0][h], in.k_BHMD[0][h].t()) / std::sqrt(8.0);
    const at::Tensor probs = at::softmax(logits.masked_fill(mask.logical_not(), -INFINITY), -1);
    expected[0][h].copy_(at::matmul(probs, in.v_BHME[0][h]));
  }
  EXPECT_CLOSE(out.out_BHNE, expected, 1e-12, 1e-10);
}

TEST(Hyper, SampledPartEstimatesTheMassOutsideTheBlockWithoutBias) {
  // E[exp(lse)] over seeds = sum_j exp(s_ij): the block part is exact and the sample part
  // estimates the rest without bias; counting in-block samples again would overshoot by ~1/L
  const AttentionInputs in = random_inputs(1, 1, 64, 64, 8, 4, at::kDouble, 14, 0.6);
  HyperOptions o;
  o.block_size = 16;
  o.sample_size = 8;
  o.min_seq_len = 0;
  const HyperAttention hyper(o);
  auto gen0 = make_generator(0);
  const at::Tensor true_mass = at::exp(*DenseAttention().forward(in, gen0).lse_BHN);
  at::Tensor mean_mass = at::zeros_like(true_mass);
  const int trials = 1500;
  for (int t = 0; t < trials; ++t) mean_mass += at::exp(*run(hyper, in, 1000 + t).lse_BHN) / trials;
  const double bias = ((mean_mass - true_mass) / true_mass).mean().item<double>();
  EXPECT_LT(std::abs(bias), 0.02) << "mean relative bias of the estimated row mass";
}

// ---- nystrom ---------------------------------------------------------------------------------------

TEST(Nystrom, IterativePseudoInverseConvergesToTheExactOne) {
  // a softmax kernel with a dominant diagonal, as Nystromformer's landmark kernels are
  const at::Tensor x = at::randn({2, 16, 8}, make_generator(5), at::kDouble);
  const at::Tensor k = at::softmax(at::matmul(x, x.transpose(-1, -2)) / 2, -1);
  EXPECT_CLOSE(newton_schulz_pinv(k, 40), at::linalg_pinv(k), 1e-8, 1e-6);
  const double err6 = (newton_schulz_pinv(k, 6) - at::linalg_pinv(k)).norm().item<double>();
  const double err12 = (newton_schulz_pinv(k, 12) - at::linalg_pinv(k)).norm().item<double>();
  EXPECT_LT(err12, err6);
  // landmarks = N with the iterative inverse approaches dense
  const AttentionInputs in = random_inputs(1, 1, 32, 32, 8, 4, at::kDouble, 2, 2.0);
  const double e =
      relative_error(run(*method_of({{"method", "nystrom"}, {"landmarks", 32}, {"pinv_iterations", 60}}), in, 0).out_BHNE,
                     naive_attention_f64(in));
  EXPECT_LT(e, 1e-6);
}

// ---- every approximate method ----------------------------------------------------------------------

const std::vector<nlohmann::json>& approximate_configs() {
  static const std::vector<nlohmann::json> configs = {
      {{"method", "hyper"}, {"block_size", 16}, {"sample_size", 8}, {"min_seq_len", 32}},
      {{"method", "polysketch"}, {"sketch_size", 8}, {"block", 16}},
      {{"method", "polysketch"}, {"sketch_size", 8}, {"block", 16}, {"local_exact", true}},
      {{"method", "reformer"}, {"chunk_size", 16}, {"n_rounds", 2}},
      {{"method", "performer"}, {"features", 32}, {"block", 16}},
      {{"method", "nystrom"}, {"landmarks", 8}},
      {{"method", "local"}, {"window", 12}},
      {{"method", "local"}, {"window", 12}, {"mode", "block"}},
  };
  return configs;
}

TEST(PeerMethods, OddSizesPaddingNaNAndMNotN) {
  for (const auto& options : approximate_configs()) {
    const auto method = method_of(options);
    for (auto [N, M] : {std::pair<int64_t, int64_t>{97, 97}, {97, 61}, {61, 97}, {1013, 1013}}) {
      for (bool causal : {false, true}) {
        if (causal && (N != M || !method->capabilities().causal)) continue;
        AttentionRequest request;
        request.shape = {2, 3, N, M, 8, 5, 8};
        request.causal = causal;
        request.padded = true;
        if (!method->unsupported_reasons(request).empty()) continue;  // e.g. local_exact needs N == M
        AttentionInputs in = padded_inputs(N, M, causal, 31, 0.7);
        // a common offset in the values: the exact output then has norm ~3, so a relative error
        // below 1/2 is a real check (with zero-mean values it is ~1 for any other subset of keys)
        in.v_BHME = in.v_BHME + 3.0;
        const AttentionOutput out = run(*method, in, 5);
        const std::string what = fmt::format("{} N={} M={} causal={}", options.dump(), N, M, causal);
        ASSERT_TRUE(at::isfinite(out.out_BHNE).all().item<bool>()) << what;
        if (in.query_keep_BN)
          EXPECT_EQ(out.out_BHNE[1].narrow(1, N - N / 4, N / 4).abs().max().item<double>(), 0.0) << what;
        // polysketch approximates a different function; local leaves queries past the last key's
        // window without keys when N > M (zeros, by definition)
        if (options.at("method") != "polysketch" && !(options.at("method") == "local" && N > M)) {
          auto gen = make_generator(0);  // dense float64 is itself checked against the loop oracle
          const double e = relative_error(out.out_BHNE, DenseAttention().forward(in, gen).out_BHNE);
          EXPECT_LT(e, 0.5) << what;
        }
      }
    }
  }
}

TEST(PeerMethods, CausalRowsIgnoreLaterKeysAndValues) {
  for (const auto& options : approximate_configs()) {
    const auto method = method_of(options);
    if (!method->capabilities().causal) continue;
    const bool values_only = options.at("method") == "reformer";  // see reformer.h: the chunking sees every hash
    const int64_t N = 300, cut = 137;
    AttentionInputs in = random_inputs(1, 2, N, N, 8, 5, at::kDouble, 40, 0.7);
    in.causal = true;
    const at::Tensor before = run(*method, in, 6).out_BHNE;
    AttentionInputs changed = in;
    const at::Tensor noise = at::randn({1, 2, N - cut - 1, 8}, make_generator(41), at::kDouble);
    if (!values_only) changed.k_BHMD = in.k_BHMD.clone(), changed.k_BHMD.narrow(2, cut + 1, N - cut - 1).add_(noise);
    changed.v_BHME = in.v_BHME.clone();
    changed.v_BHME.narrow(2, cut + 1, N - cut - 1).add_(noise.narrow(-1, 0, 5));
    const at::Tensor after = run(*method, changed, 6).out_BHNE;
    EXPECT_CLOSE(after.narrow(2, 0, cut + 1), before.narrow(2, 0, cut + 1), 1e-12, 1e-12) << options.dump();
    EXPECT_GT((after - before).abs().max().item<double>(), 1e-6) << options.dump() << ": the change must matter later";
  }
}

TEST(PeerMethods, SameSeedSameBitsOtherSeedOtherResult) {
  const AttentionInputs in = random_inputs(1, 2, 97, 97, 8, 5, at::kFloat, 50);
  for (const auto& options : approximate_configs()) {
    const auto method = method_of(options);
    const at::Tensor a = run(*method, in, 1).out_BHNE, b = run(*method, in, 1).out_BHNE;
    EXPECT_TRUE(at::equal(a, b)) << options.dump();
    const std::string name = options.at("method");
    if (name == "hyper" || name == "reformer" || name == "performer" || name == "polysketch")
      EXPECT_FALSE(at::equal(a, run(*method, in, 2).out_BHNE)) << options.dump() << " must use the generator";
  }
}

TEST(PeerMethods, GradientsMatchFiniteDifferences) {
  const std::vector<nlohmann::json> configs = {
      {{"method", "hyper"}, {"block_size", 8}, {"sample_size", 4}, {"min_seq_len", 8}},
      {{"method", "polysketch"}, {"sketch_size", 4}, {"block", 8}},
      {{"method", "reformer"}, {"chunk_size", 8}, {"n_rounds", 2}},
      {{"method", "performer"}, {"features", 16}, {"block", 8}},
      {{"method", "nystrom"}, {"landmarks", 6}},
      {{"method", "local"}, {"window", 5}},
      {{"method", "sdpa"}},
  };
  for (const auto& options : configs) {
    const auto method = method_of(options);
    check_gradients_by_finite_differences(*method, /*padded=*/true, false, 1e-6, 1e-5);
    if (method->capabilities().causal) check_gradients_by_finite_differences(*method, true, true, 1e-6, 1e-5);
  }
}

TEST(PeerMethods, NoSubQuadraticMethodHoldsAnNByMBuffer) {
  // N = M = 8192, one head: a float32 N x M buffer is 256 MiB; each method's peak growth (all its
  // buffers and temporaries) must stay below half of that
  const int64_t N = 8192;
  const AttentionInputs in = random_inputs(1, 1, N, N, 32, 32, at::kFloat, 60);
  const double nm_bytes = static_cast<double>(N) * N * 4;
  const std::vector<nlohmann::json> configs = {
      {{"method", "smyrf"}},     {{"method", "hyper"}, {"min_seq_len", 1024}}, {{"method", "polysketch"}},
      {{"method", "reformer"}},  {{"method", "performer"}}, {{"method", "nystrom"}}, {{"method", "local"}},
      {{"method", "e2lsh"}}};
  for (const auto& options : configs) {
    const auto method = method_of(options);
    for (bool causal : {false, true}) {
      if (causal && !method->capabilities().causal) continue;
      AttentionInputs x = in;
      x.causal = causal;
      const AttentionCost cost = method->cost({1, 1, N, N, 32, 32, 4});
      EXPECT_LT(cost.memory_fraction, 0.25) << options.dump();
      at::NoGradGuard no_grad;
      run(*method, x, 1);  // warm-up: thread pools, allocator
      ASSERT_TRUE(reset_peak_rss());
      const ProcessMemory before = read_process_memory();
      run(*method, x, 1);
      const double growth = static_cast<double>(read_process_memory().peak_rss_bytes - before.rss_bytes);
      EXPECT_LT(growth, 0.5 * nm_bytes) << options.dump() << " causal=" << causal << " grew "
                                         << growth / (1 << 20) << " MiB";
    }
  }
}

TEST(PeerMethods, RequestsAMethodCannotServeAreClearErrors) {
  AttentionInputs in = random_inputs(1, 1, 16, 16, 4, 4, at::kDouble, 1);
  in.causal = true;
  auto message_of = [&](const nlohmann::json& options) {
    try {
      run(*method_of(options), in, 0);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of({{"method", "nystrom"}, {"landmarks", 4}}).find("nystrom does not support causal masking"),
            std::string::npos);
  in.causal = false;
  EXPECT_NE(message_of({{"method", "nystrom"}, {"landmarks", 40}}).find("landmarks 40 exceed min(N, M) = 16"),
            std::string::npos);
  // a chunk longer than the sequence is one chunk, not an error (sweeps over lengths meet it)
  EXPECT_EQ(message_of({{"method", "reformer"}, {"chunk_size", 64}}), "no error");
  const auto config_error = [](const nlohmann::json& options) {
    try {
      make_attention(options, "attention", "configs/x.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(config_error({{"method", "polysketch"}, {"degree", 2}}).find("approximates degree 4 only"), std::string::npos);
  EXPECT_NE(config_error({{"method", "reformer"}, {"n_buckets", 3}}).find("'attention.n_buckets'"), std::string::npos);
  EXPECT_NE(config_error({{"method", "hyper"}, {"bucket_order", "grey"}}).find("gray"), std::string::npos);
  EXPECT_NE(config_error({{"method", "local"}, {"windw", 3}}).find("window"), std::string::npos);
}

TEST(MemoryBudget, EveryMethodGetsTheLargestKnobWithinItsBudget) {
  for (bool causal : {false, true}) {
    const AttentionShape shape{1, 2, 4096, 4096, 64, 64, 4, causal};
    for (const char* name : {"smyrf", "e2lsh", "hyper", "local", "reformer", "performer", "polysketch", "nystrom"}) {
      nlohmann::json attention = {{"method", name}};
      if (std::string(name) == "hyper") attention["min_seq_len"] = 64;
      if (causal && !make_attention(attention)->capabilities().causal) continue;
      for (double budget : {1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0 / 2}) {
        attention["memory_budget"] = budget;
        const BudgetChoice choice = resolve_memory_budget(attention, shape);
        const std::string what = fmt::format("{} budget {} causal {}", name, budget, causal);
        EXPECT_FALSE(choice.attention.contains("memory_budget")) << what;
        EXPECT_LE(choice.memory_fraction, budget) << what;
        EXPECT_EQ(choice.attention.at(choice.knob), choice.value) << what;
        // one more would not fit, or give the same layout (or not be valid)
        nlohmann::json bigger = choice.attention;
        bigger[choice.knob] = choice.value + 1;
        if (std::string(name) == "hyper") bigger["sample_size"] = choice.value + 1;
        if (std::string(name) == "performer" || std::string(name) == "polysketch") bigger["block"] = choice.value + 1;
        const auto method = make_attention(bigger);
        AttentionRequest request{shape, causal, false};
        if (method->unsupported_reasons(request).empty()) {
          const double f = method->cost(shape).memory_fraction;
          EXPECT_TRUE(f > budget || f == choice.memory_fraction) << what << ": " << f;
        }
        // and the analytic fraction is the one the method reports when it runs
        EXPECT_DOUBLE_EQ(make_attention(choice.attention)->cost(shape).memory_fraction, choice.memory_fraction) << what;
      }
    }
  }
  // smyrf's formula: # * C / M
  const BudgetChoice smyrf = resolve_memory_budget({{"method", "smyrf"}, {"n_hashes", 2}, {"memory_budget", 1.0 / 16}},
                                                   AttentionShape{1, 1, 4096, 4096, 64, 64, 4});
  EXPECT_EQ(smyrf.value, 128);
  const auto error_of = [](const nlohmann::json& attention) {
    try {
      resolve_memory_budget(attention, AttentionShape{1, 1, 4096, 4096, 64, 64, 4}, "attention", "configs/x.json");
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error_of({{"method", "dense"}, {"memory_budget", 0.5}}).find("has no size knob"), std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"memory_budget", 1.5}}).find("must be a number in (0, 1]"), std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"q_cluster_size", 8}, {"memory_budget", 0.5}}).find("remove one"),
            std::string::npos);
  EXPECT_NE(error_of({{"method", "smyrf"}, {"n_hashes", 8}, {"memory_budget", 1e-4}}).find("raise the budget"),
            std::string::npos);
}

}  // namespace
}  // namespace smyrf
