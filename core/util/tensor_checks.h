// Loud checks at public entry points, built on TORCH_CHECK so messages carry the tensor's name
// and the expected shape. Internal shape assertions use SMYRF_DEBUG_CHECK_SHAPE (debug builds only).
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <string>
#include <vector>

namespace smyrf {

inline std::string shape_string(at::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}

}  // namespace smyrf

// Expected sizes use -1 for "any".
#define SMYRF_CHECK_SHAPE(tensor, name, ...)                                                        \
  do {                                                                                             \
    const std::vector<int64_t> smyrf_expected_{__VA_ARGS__};                                        \
    bool smyrf_ok_ = (tensor).dim() == static_cast<int64_t>(smyrf_expected_.size());               \
    for (size_t i_ = 0; smyrf_ok_ && i_ < smyrf_expected_.size(); ++i_)                            \
      smyrf_ok_ = smyrf_expected_[i_] < 0 || smyrf_expected_[i_] == (tensor).size(i_);              \
    TORCH_CHECK(smyrf_ok_, name, " has shape ", ::smyrf::shape_string((tensor).sizes()),            \
                ", expected ", ::smyrf::shape_string(smyrf_expected_), " (-1 = any)");            \
  } while (0)

#ifdef NDEBUG
#define SMYRF_DEBUG_CHECK_SHAPE(tensor, name, ...) do {} while (0)
#else
#define SMYRF_DEBUG_CHECK_SHAPE(tensor, name, ...) SMYRF_CHECK_SHAPE(tensor, name, __VA_ARGS__)
#endif
