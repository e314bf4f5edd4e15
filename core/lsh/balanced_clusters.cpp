// Balanced clustering by sorting; see balanced_clusters.h.
#include "core/lsh/balanced_clusters.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include "core/util/check.h"

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

namespace {

// Order-preserving map of a float to an unsigned integer (negative floats reversed), so that an
// integer radix sort orders floats; unkept tokens get the largest key and so sort last.
inline uint32_t radix_key(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x80000000u) ? ~bits : (bits | 0x80000000u);
}
inline uint64_t radix_key(double x) {
  uint64_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  return (bits & 0x8000000000000000ull) ? ~bits : (bits | 0x8000000000000000ull);
}

// Stable LSD radix argsort of each (row, hash) column of hash_RTU, 8 bits per pass: the same
// order as a stable comparison sort (ties keep token order) in O(T) per column instead of
// O(T log T); at N = 16384 it is several times faster than LibTorch's stable sort. The histograms
// of all passes are counted in one read, and token indices travel as 32 bits (T < 2^31 checked).
template <class Scalar>
void radix_argsort_rows(const at::Tensor& hash_RTU, const at::Tensor& keep_RT, at::Tensor& perm_RUT) {
  using Key = decltype(radix_key(Scalar{}));
  constexpr int kPasses = static_cast<int>(sizeof(Key));
  const int64_t R = hash_RTU.size(0), T = hash_RTU.size(1), H = hash_RTU.size(2);
  SMYRF_CHECK(T < (int64_t{1} << 31), "sort_by_hash: {} tokens per row is beyond 32-bit indices", T);
  const Scalar* hash = hash_RTU.data_ptr<Scalar>();
  const bool* keep = keep_RT.data_ptr<bool>();
  int64_t* perm = perm_RUT.data_ptr<int64_t>();
  at::parallel_for(0, R * H, 1, [&](int64_t begin, int64_t end) {
    std::vector<Key> keys(static_cast<size_t>(T)), keys_tmp(static_cast<size_t>(T));
    std::vector<uint32_t> idx(static_cast<size_t>(T)), idx_tmp(static_cast<size_t>(T));
    std::vector<std::array<int64_t, 257>> offsets(kPasses);
    for (int64_t rh = begin; rh < end; ++rh) {
      const int64_t r = rh / H, h = rh % H;
      for (auto& offset : offsets) offset.fill(0);
      for (int64_t t = 0; t < T; ++t) {
        const Key key = keep[r * T + t] ? radix_key(hash[(r * T + t) * H + h]) : ~Key{0};
        keys[static_cast<size_t>(t)] = key;
        idx[static_cast<size_t>(t)] = static_cast<uint32_t>(t);
        for (int pass = 0; pass < kPasses; ++pass) ++offsets[static_cast<size_t>(pass)][((key >> (8 * pass)) & 0xFF) + 1];
      }
      for (int pass = 0; pass < kPasses; ++pass) {
        auto& offset = offsets[static_cast<size_t>(pass)];
        if (std::count(offset.begin() + 1, offset.end(), T) == 1) continue;  // one bucket: a no-op pass
        for (int b = 0; b < 256; ++b) offset[b + 1] += offset[b];
        const unsigned shift = 8u * static_cast<unsigned>(pass);
        for (int64_t t = 0; t < T; ++t) {
          const Key key = keys[static_cast<size_t>(t)];
          const size_t to = static_cast<size_t>(offset[(key >> shift) & 0xFF]++);
          keys_tmp[to] = key;
          idx_tmp[to] = idx[static_cast<size_t>(t)];
        }
        keys.swap(keys_tmp);
        idx.swap(idx_tmp);
      }
      std::copy(idx.begin(), idx.end(), perm + rh * T);
    }
  });
}

}  // namespace

at::Tensor sort_by_hash(const at::Tensor& hash_RTU, const at::Tensor& keep_RT) {
  at::NoGradGuard no_grad;
  if (hash_RTU.is_cpu() && (hash_RTU.scalar_type() == at::kFloat || hash_RTU.scalar_type() == at::kDouble)) {
    const at::Tensor hash = hash_RTU.contiguous();
    const at::Tensor keep = keep_RT.narrow(1, 0, hash.size(1)).contiguous();
    at::Tensor perm = at::empty({hash.size(0), hash.size(2), hash.size(1)}, hash.options().dtype(at::kLong));
    if (hash.scalar_type() == at::kFloat) {
      radix_argsort_rows<float>(hash, keep, perm);
    } else {
      radix_argsort_rows<double>(hash, keep, perm);
    }
    return perm;
  }
  const at::Tensor masked =
      hash_RTU.masked_fill(keep_RT.logical_not().unsqueeze(-1), std::numeric_limits<double>::infinity());
  // std::optional spelled out: a plain `true` would pick the sort(dim, descending) overload
  return std::get<1>(at::sort(masked.transpose(1, 2), /*stable=*/std::optional<bool>(true), /*dim=*/-1,
                              /*descending=*/false));
}

namespace {

// balanced_slots on the CPU in one pass (the tensor formula below makes ~12 full-size temporaries,
// ~5 ms at R = 8, N = 16384, # = 2); the same integer arithmetic, so the same slots.
at::Tensor balanced_slots_cpu(const at::Tensor& sorted_RUP, const at::Tensor& keep_RT, int64_t T, int64_t L,
                              int64_t C) {
  const at::Tensor sorted = sorted_RUP.contiguous();
  const at::Tensor keep = keep_RT.narrow(1, 0, T).contiguous();
  const int64_t R = sorted.size(0), H = sorted.size(1), S = sorted.size(2), P = L * C;
  at::Tensor slots = at::empty({R, H, P}, sorted.options());
  const int64_t* src = sorted.data_ptr<int64_t>();
  const bool* kept = keep.data_ptr<bool>();
  int64_t* dst = slots.data_ptr<int64_t>();
  at::parallel_for(0, R * H, 1, [&](int64_t begin, int64_t end) {
    for (int64_t rh = begin; rh < end; ++rh) {
      const int64_t r = rh / H;
      int64_t n = 0;  // real tokens of the row; they lead the sorted order
      for (int64_t t = 0; t < T; ++t) n += kept[r * T + t];
      const int64_t* order = src + rh * S;
      int64_t* out = dst + rh * P;
      for (int64_t c = 0; c < L; ++c) {
        const int64_t first = c * n / L, count = (c + 1) * n / L - first;
        for (int64_t o = 0; o < C; ++o) {
          const int64_t s = c * C + o;
          // real slots take sorted ranks first..; filler slots the padded ranks n.. (then dummies)
          const int64_t rank = o < count ? first + o : n + s - first - count;
          out[s] = rank < T ? order[rank] : rank;
        }
      }
    }
  });
  return slots;
}

}  // namespace

at::Tensor balanced_slots(const at::Tensor& sorted_RUP, const at::Tensor& keep_RT, int64_t T, int64_t L, int64_t C) {
  at::NoGradGuard no_grad;
  if (sorted_RUP.is_cpu() && keep_RT.is_cpu() && sorted_RUP.scalar_type() == at::kLong &&
      keep_RT.scalar_type() == at::kBool) {
    return balanced_slots_cpu(sorted_RUP, keep_RT, T, L, C);
  }
  const auto long_opts = sorted_RUP.options().dtype(at::kLong);
  const int64_t R = sorted_RUP.size(0), P = L * C;
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
  const at::Tensor rank_RUP = rank.expand({R, sorted_RUP.size(1), P});
  const at::Tensor token = sorted_RUP.narrow(-1, 0, T).gather(-1, rank_RUP.clamp_max(T - 1));
  return at::where(rank_RUP.lt(T), token, rank_RUP);
}

at::Tensor cluster_of_rank(const at::Tensor& ranks, int64_t T, int64_t L) {
  // the largest c with floor(c*T/L) <= s is floor(((s+1)*L - 1) / T)
  return ((ranks + 1) * L - 1).div(T, "floor");
}

at::Tensor cluster_of_rank(const at::Tensor& ranks_RX, const at::Tensor& n_real_R, int64_t L) {
  const at::Tensor n = n_real_R.to(at::kLong).clamp_min(1).view({-1, 1});
  return ((ranks_RX + 1) * L - 1).div(n, "floor");
}

at::Tensor inverse_permutation(const at::Tensor& perm_RUP) {
  at::NoGradGuard no_grad;
  const int64_t P = perm_RUP.size(-1);
  return at::empty_like(perm_RUP).scatter_(-1, perm_RUP, at::arange(P, perm_RUP.options()).expand_as(perm_RUP));
}

at::Tensor flat_token_index(const at::Tensor& perm_RUP, int64_t tokens_per_row) {
  const int64_t R = perm_RUP.size(0);
  return (perm_RUP + at::arange(R, perm_RUP.options()).mul(tokens_per_row).view({R, 1, 1})).reshape({-1});
}

at::Tensor flat_hash_index(const at::Tensor& index_RUP) {
  const int64_t RH = index_RUP.size(0) * index_RUP.size(1), P = index_RUP.size(2);
  return (index_RUP.reshape({RH, P}) + at::arange(RH, index_RUP.options()).mul(P).view({RH, 1})).reshape({-1});
}

}  // namespace smyrf
