// read_captured_group: one group of a captured-Q/K/V file (format in captured_qkv.h), read and
// checked without LibTorch, so that it can be fuzzed (tests/fuzz/fuzz_captured.cpp). Before any
// array is read, the file must say it is a captured-QKV file, the group must exist and the shapes
// must agree: q [B,H,N,D], k [B,H,M,D], v [B,H,M,E], key_keep [B,M] and query_keep [B,N] (both
// optional), every size at least 1. Values of real tokens must be finite (padded ones may hold
// anything, as the methods allow), keep masks 0 or 1, the scale finite and not negative
// (0: 1/sqrt(D)), causal 0 or 1. Errors name the file, the group and the dataset.
// load_captured_qkv (captured_qkv.h) turns the group into AttentionInputs.
#pragma once

#include <optional>
#include <string>

#include "core/util/hdf5_file.h"

namespace smyrf {

// The root attribute `format` of every captured-QKV file.
inline constexpr const char* kCapturedQkvFormat = "smyrf-captured-qkv";

struct CapturedGroup {
  H5Array<double> q, k, v;                              // [B,H,N,D], [B,H,M,D], [B,H,M,E]
  std::optional<H5Array<double>> key_keep, query_keep;  // [B,M], [B,N]; 1 = real token
  bool causal = false;
  double scale = 0.0;  // 0 means 1/sqrt(D)
};

// Missing file or dataset, wrong shapes or values: IoError; unknown group: ConfigError listing the
// groups. `source` names the config (or command) that named the file.
CapturedGroup read_captured_group(const std::string& path, const std::string& group, const std::string& source);

}  // namespace smyrf
