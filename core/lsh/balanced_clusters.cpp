// Balanced clustering by sorting; see balanced_clusters.h.
#include "core/lsh/balanced_clusters.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include "core/util/check.h"
#include <ATen/core/grad_mode.h>

#include <limits>
#include <tuple>
#include <vector>

namespace smyrf {

at::Tensor row_keep(const std::optional<at::Tensor>& keep_BT, int64_t B, int64_t H, int64_t T, int64_t T_padded,
                    bool as_released, const at::TensorOptions& device) {
  at::Tensor keep_RT;
  if (keep_BT) {
    if (as_released) {
      const at::Tensor batch_of_row = at::arange(B * H, device.dtype(at::kLong)).remainder(B);
      keep_RT = keep_BT->index_select(0, batch_of_row);
    } else {
      keep_RT = keep_BT->unsqueeze(1).expand({B, H, T}).reshape({B * H, T});
    }
  } else {
    keep_RT = at::ones({B * H, T}, device.dtype(at::kBool));
  }
  if (T_padded > T) keep_RT = at::constant_pad_nd(keep_RT, {0, T_padded - T}, 0);
  return keep_RT;
}

at::Tensor pad_tokens(const at::Tensor& x_RTX, int64_t T_padded) {
  const int64_t T = x_RTX.size(1);
  return T_padded > T ? at::constant_pad_nd(x_RTX, {0, 0, 0, T_padded - T}, 0) : x_RTX;
}

at::Tensor sort_by_hash(const at::Tensor& hash_RTH, const at::Tensor& keep_RT) {
  at::NoGradGuard no_grad;
  const at::Tensor masked =
      hash_RTH.masked_fill(keep_RT.logical_not().unsqueeze(-1), std::numeric_limits<double>::infinity());
  // std::optional spelled out: a plain `true` would pick the sort(dim, descending) overload
  return std::get<1>(at::sort(masked.transpose(1, 2), /*stable=*/std::optional<bool>(true), /*dim=*/-1,
                              /*descending=*/false));
}

at::Tensor balanced_slots(const at::Tensor& sorted_RHP, const at::Tensor& keep_RT, int64_t T, int64_t L, int64_t C) {
  at::NoGradGuard no_grad;
  const auto long_opts = sorted_RHP.options().dtype(at::kLong);
  const int64_t R = sorted_RHP.size(0), P = L * C;
  // real tokens of each row (they lead the sorted order); the quantiles are taken over them
  const at::Tensor n_R11 = keep_RT.narrow(1, 0, T).sum(1).to(at::kLong).view({R, 1, 1});
  const at::Tensor slot_P = at::arange(P, long_opts);
  const at::Tensor c_P = slot_P.div(C, "floor"), o_P = slot_P.remainder(C);
  const at::Tensor begin = (c_P * n_R11).div(L, "floor");            // [R, 1, P]
  const at::Tensor count = ((c_P + 1) * n_R11).div(L, "floor") - begin;
  const at::Tensor is_real = o_P.lt(count);
  // filler slots take the padded ranks n.. (then dummies) in slot order: slot s has
  // begin + min(o, count) real slots before it, so s - that many fillers
  const at::Tensor rank = at::where(is_real, begin + o_P, n_R11 + slot_P - begin - count);  // [R, 1, P]
  const at::Tensor rank_RHP = rank.expand({R, sorted_RHP.size(1), P});
  const at::Tensor token = sorted_RHP.narrow(-1, 0, T).gather(-1, rank_RHP.clamp_max(T - 1));
  return at::where(rank_RHP.lt(T), token, rank_RHP);
}

at::Tensor cluster_of_rank(const at::Tensor& ranks, int64_t T, int64_t L) {
  // the largest c with floor(c*T/L) <= s is floor(((s+1)*L - 1) / T)
  return ((ranks + 1) * L - 1).div(T, "floor");
}

at::Tensor cluster_of_rank(const at::Tensor& ranks_RX, const at::Tensor& n_real_R, int64_t L) {
  const at::Tensor n = n_real_R.to(at::kLong).clamp_min(1).view({-1, 1});
  return ((ranks_RX + 1) * L - 1).div(n, "floor");
}

at::Tensor inverse_permutation(const at::Tensor& perm_RHP) {
  at::NoGradGuard no_grad;
  const int64_t P = perm_RHP.size(-1);
  return at::empty_like(perm_RHP).scatter_(-1, perm_RHP, at::arange(P, perm_RHP.options()).expand_as(perm_RHP));
}

at::Tensor flat_token_index(const at::Tensor& perm_RHP, int64_t tokens_per_row) {
  const int64_t R = perm_RHP.size(0);
  return (perm_RHP + at::arange(R, perm_RHP.options()).mul(tokens_per_row).view({R, 1, 1})).reshape({-1});
}

at::Tensor flat_hash_index(const at::Tensor& index_RHP) {
  const int64_t RH = index_RHP.size(0) * index_RHP.size(1), P = index_RHP.size(2);
  return (index_RHP.reshape({RH, P}) + at::arange(RH, index_RHP.options()).mul(P).view({RH, 1})).reshape({-1});
}

}  // namespace smyrf
