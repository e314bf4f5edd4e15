// read_safetensors: reads a Hugging Face `.safetensors` file into its header and its byte buffer,
// and trusts nothing in it. Torch-free, so that it can be fuzzed (tests/fuzz/fuzz_safetensors.cpp);
// core/models/safetensors.h turns the entries into tensors.
//
// Format (https://huggingface.co/docs/safetensors): 8-byte little-endian header length n, n bytes of
// UTF-8 JSON {name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
// then the byte buffer; offsets are relative to the buffer's start. A file that lies is refused:
// a header longer than the file, JSON that is malformed or not an object, a duplicate or empty name,
// an unknown dtype, a negative or non-integer shape, offsets out of order, past the buffer, or whose
// length differs from shape × dtype size, tensors that overlap, or bytes that no tensor covers.
// Every error is an IoError naming the file, the tensor and what was wrong.
// Tested by tests/test_models.cpp (crafted files), the fuzz target and, on real weights,
// tests/python/test_bert_parity.py.
#pragma once

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

struct SafetensorsContents {
  std::map<std::string, SafetensorsEntry> entries;
  std::map<std::string, std::string> metadata;
  std::vector<char> data;  // the byte buffer (after the header); the entries tile it exactly
};

SafetensorsContents read_safetensors(const std::string& path);

// Bytes per element of a safetensors dtype code; 0 for a code this reader does not know.
uint64_t safetensors_dtype_bytes(const std::string& dtype);

}  // namespace smyrf
