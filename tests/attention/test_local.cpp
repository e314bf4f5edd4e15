// local (core/attention/local.cpp): sliding-window attention against a brute-force dense softmax
// over the band only, written from the definition in local.h, causal and not, with padding (NaN
// there) at N = 97 and M != N. Exactness limits (block and sliding) against the float64 loop
// oracle, padding, determinism, causality and gradients: test_method_contract.cpp.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/attention/local.h"
#include "tests/support/attention_test_support.h"

namespace smyrf {
namespace {

using test::method_of;
using test::padded_inputs;
using test::run;

// ---- sliding window ----------------------------------------------------------------------------------

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

}  // namespace
}  // namespace smyrf
