// See safetensors_reader.h for the format and what is refused.
#include "core/util/safetensors_reader.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

// A header over 100 MB is a corrupt length, not a real model (the safetensors crate caps it at 100,000,000).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Opened {
  std::ifstream in;
  uint64_t file_size = 0;
  std::string header_text;
};

// Opens the file and reads its length-prefixed header; `in` is left at the data buffer.
Opened read_header_text(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw IoError(fmt::format("safetensors file '{}' cannot be opened: it does not exist or is not a file; check the "
                              "path (model.safetensors in the model directory)", path));
  Opened f;
  f.in.open(path, std::ios::binary | std::ios::ate);
  if (!f.in) throw IoError(fmt::format("safetensors file '{}' cannot be opened: check the path (model.safetensors in "
                                       "the model directory)", path));
  f.file_size = static_cast<uint64_t>(f.in.tellg());
  f.in.seekg(0);
  if (f.file_size < 8)
    throw IoError(fmt::format("safetensors file '{}' is {} bytes, shorter than its 8-byte header length: the file is "
                              "truncated", path, f.file_size));
  unsigned char length_bytes[8];
  f.in.read(reinterpret_cast<char*>(length_bytes), 8);
  if (!f.in) throw IoError(fmt::format("safetensors file '{}': reading its 8-byte header length failed", path));
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];  // little-endian
  if (header_bytes > f.file_size - 8 || header_bytes > kMaxHeaderBytes)
    throw IoError(fmt::format("safetensors file '{}': header length {} does not fit in the file ({} bytes): the "
                              "file is truncated or not a safetensors file", path, header_bytes, f.file_size));
  f.header_text.assign(header_bytes, '\0');
  f.in.read(f.header_text.data(), static_cast<std::streamsize>(header_bytes));
  if (!f.in) throw IoError(fmt::format("safetensors file '{}': reading the header failed", path));
  return f;
}

// nlohmann::json silently keeps the last of duplicate keys; a file whose header names a tensor twice
// is lying about one of them, so duplicates among the top-level names are caught while parsing.
nlohmann::json parse_header_refusing_duplicates(const std::string& text, const std::string& path) {
  std::set<std::string> seen;
  std::string duplicate;
  auto callback = [&](int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    if (event == nlohmann::json::parse_event_t::key && depth == 1) {
      const std::string key = parsed.get<std::string>();
      if (!seen.insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  const nlohmann::json header = parse_json_with<nlohmann::json>(
      text, {fmt::format("safetensors file '{}': its header", path), "the file is corrupt or truncated: download it again"},
      callback);
  if (!duplicate.empty())
    throw IoError(fmt::format("safetensors file '{}': tensor '{}' is named twice in the header", path, duplicate));
  if (!header.is_object())
    throw IoError(fmt::format("safetensors file '{}': header must be a JSON object, got {}", path, header.type_name()));
  return header;
}

// One tensor's entry, checked against the buffer's size; `bad` builds the error naming the tensor.
template <typename Bad>
SafetensorsEntry parse_entry(const nlohmann::json& value, uint64_t buffer_bytes, const Bad& bad) {
  if (!value.is_object()) throw bad("must be an object with dtype, shape and data_offsets");
  for (const auto& [key, unused] : value.items())
    if (key != "dtype" && key != "shape" && key != "data_offsets") throw bad(fmt::format("has an unknown field '{}'", key));
  if (!value.contains("dtype") || !value["dtype"].is_string()) throw bad("has no dtype string");
  if (!value.contains("shape") || !value["shape"].is_array()) throw bad("has no shape array");
  if (!value.contains("data_offsets") || !value["data_offsets"].is_array() || value["data_offsets"].size() != 2)
    throw bad("has no data_offsets [begin, end]");

  SafetensorsEntry entry;
  entry.dtype = value["dtype"].get<std::string>();
  const uint64_t dtype_bytes = safetensors_dtype_bytes(entry.dtype);
  if (dtype_bytes == 0) throw bad(fmt::format("has unsupported dtype '{}'", entry.dtype));
  // The product of the non-zero dimensions must fit in int64 too: a zero dimension makes the
  // element count 0 but LibTorch still computes strides from the others.
  uint64_t elements = 1, nonzero_product = 1;
  constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  std::vector<std::string> dims;
  for (const auto& dim : value["shape"]) {
    if (!dim.is_number_unsigned()) throw bad(fmt::format("has shape entry {} (must be a non-negative integer)", dim.dump()));
    const uint64_t d = dim.get<uint64_t>();
    if (d != 0 && nonzero_product > kMaxInt64 / d) throw bad("has a shape whose size overflows");
    if (d != 0) nonzero_product *= d;
    elements = d == 0 ? 0 : elements * d;
    entry.shape.push_back(static_cast<int64_t>(d));
    dims.push_back(std::to_string(d));
  }
  for (const auto& offset : value["data_offsets"])
    if (!offset.is_number_unsigned()) throw bad(fmt::format("has data offset {} (must be a non-negative integer)", offset.dump()));
  entry.begin = value["data_offsets"][0].get<uint64_t>();
  entry.end = value["data_offsets"][1].get<uint64_t>();
  if (entry.begin > entry.end) throw bad(fmt::format("has data_offsets [{}, {}] out of order", entry.begin, entry.end));
  if (entry.end > buffer_bytes)
    throw bad(fmt::format("ends at byte {} of a {}-byte data buffer: the file is truncated", entry.end, buffer_bytes));
  if (elements > std::numeric_limits<uint64_t>::max() / dtype_bytes || entry.end - entry.begin != elements * dtype_bytes)
    throw bad(fmt::format("has {} bytes but shape [{}] of {} needs {}", entry.end - entry.begin, join(dims, ", "),
                          entry.dtype, elements * dtype_bytes));
  return entry;
}

// Tensors must tile the buffer exactly: an overlap means two tensors share bytes, a gap means bytes
// no tensor explains; either way the header does not describe this file.
void check_tiling(const std::map<std::string, SafetensorsEntry>& entries, uint64_t buffer_bytes, const std::string& path) {
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : entries) by_offset.emplace_back(&name, &entry);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto& a, const auto& b) {
    return a.second->begin != b.second->begin ? a.second->begin < b.second->begin : a.second->end < b.second->end;
  });
  uint64_t covered = 0;
  const std::string* previous = nullptr;
  for (const auto& [name, entry] : by_offset) {
    if (entry->begin < covered)
      throw IoError(fmt::format("safetensors file '{}': tensors '{}' and '{}' overlap (bytes {}..{})", path, *previous,
                                *name, entry->begin, covered));
    if (entry->begin > covered)
      throw IoError(fmt::format("safetensors file '{}': bytes {}..{} of the data buffer belong to no tensor", path,
                                covered, entry->begin));
    covered = entry->end;
    previous = name;
  }
  if (covered != buffer_bytes)
    throw IoError(fmt::format("safetensors file '{}': the header describes {} bytes of data but the file holds {}", path,
                              covered, buffer_bytes));
}

}  // namespace

uint64_t safetensors_dtype_bytes(const std::string& dtype) {
  static const std::map<std::string, uint64_t> kBytes = {{"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8},
                                                         {"I32", 4}, {"I16", 2}, {"I8", 1},  {"U8", 1},   {"BOOL", 1}};
  const auto it = kBytes.find(dtype);
  return it == kBytes.end() ? 0 : it->second;
}

SafetensorsContents read_safetensors(const std::string& path) {
  Opened f = read_header_text(path);
  const nlohmann::json header = parse_header_refusing_duplicates(f.header_text, path);
  const uint64_t buffer_bytes = f.file_size - 8 - f.header_text.size();
  SafetensorsContents out;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();  // not a structured binding: lambdas cannot capture those in C++17
    const nlohmann::json& value = item.value();
    auto bad = [&](const std::string& what) {
      return IoError(fmt::format("safetensors file '{}': tensor '{}' {}", path, name, what));
    };
    if (name == "__metadata__") {
      if (!value.is_object()) throw bad("must be an object of strings");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) throw bad(fmt::format("entry '{}' must be a string", key));
        out.metadata[key] = text.get<std::string>();
      }
      continue;
    }
    if (name.empty()) throw bad("has an empty name");
    out.entries.emplace(name, parse_entry(value, buffer_bytes, bad));
  }
  check_tiling(out.entries, buffer_bytes, path);
  out.data.resize(buffer_bytes);
  f.in.read(out.data.data(), static_cast<std::streamsize>(buffer_bytes));
  if (!f.in) throw IoError(fmt::format("safetensors file '{}': reading {} bytes of tensor data failed", path, buffer_bytes));
  return out;
}

}  // namespace smyrf
