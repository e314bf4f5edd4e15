// SafetensorsFile: reads a Hugging Face `.safetensors` file and trusts nothing in it.
//
// Format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length n, n bytes of
// UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the byte buffer; offsets are relative to the buffer's start. open() refuses a file that lies:
// a header longer than the file, JSON that is malformed or not an object, a duplicate or empty name,
// an unknown dtype, a negative or non-integer shape, offsets out of order, past the buffer, or whose
// length differs from shape × dtype size, tensors that overlap, or bytes that no tensor covers.
// Every error is an IoError naming the file, the tensor and what was wrong.
// Tested by tests/test_models.cpp (crafted files) and, on real weights, tests/python/test_bert_parity.py.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace smyrf {

struct SafetensorsEntry {
  std::string dtype;           // "F32", "F16", "BF16", "F64", "I64", "I32", "I16", "I8", "U8", "BOOL"
  std::vector<int64_t> shape;  // row-major
  uint64_t begin = 0, end = 0; // byte range within the data buffer
};

class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::map<std::string, SafetensorsEntry>& entries() const { return entries_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const { return entries_.count(name) != 0; }
  // A copy of the tensor in its stored dtype (on the CPU). Unknown name: IoError listing a close one.
  at::Tensor tensor(const std::string& name) const;

 private:
  std::string path_;
  std::vector<char> data_;  // the byte buffer (after the header)
  std::map<std::string, SafetensorsEntry> entries_;
  std::map<std::string, std::string> metadata_;
};

// Writes tensors (contiguous CPU copies, any supported dtype) as a safetensors file; used by tests
// and by users who export fine-tuned weights. Names are written in sorted order.
void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace smyrf
