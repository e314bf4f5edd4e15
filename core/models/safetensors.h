// SafetensorsFile: a `.safetensors` file read and checked by read_safetensors
// (core/util/safetensors_reader.h, which says what is refused), with its tensors as LibTorch tensors;
// and write_safetensors, its inverse.
// Tested by tests/test_models.cpp (crafted files) and, on real weights, tests/python/test_bert_parity.py.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/util/safetensors_reader.h"

namespace smyrf {

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return contents_.entries; }
  const std::map<std::string, std::string>& metadata() const { return contents_.metadata; }
  bool contains(const std::string& name) const { return contents_.entries.count(name) != 0; }
  // A copy of the tensor in its stored dtype (on the CPU). Unknown name: IoError listing a close one.
  at::Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  SafetensorsContents contents_;
};

// Writes tensors (contiguous CPU copies, any supported dtype) as a safetensors file; used by tests
// and by users who export fine-tuned weights. Names are written in sorted order.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace smyrf
