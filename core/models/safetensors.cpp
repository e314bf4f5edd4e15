// Safetensors reading and writing; see safetensors.h for the format and what is refused.
#include "core/models/safetensors.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>

#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

struct StoredDtype {
  const char* name;
  at::ScalarType type;
  uint64_t bytes;
};
constexpr StoredDtype kStoredDtypes[] = {
    {"F64", at::kDouble, 8}, {"F32", at::kFloat, 4}, {"F16", at::kHalf, 2},  {"BF16", at::kBFloat16, 2},
    {"I64", at::kLong, 8},   {"I32", at::kInt, 4},   {"I16", at::kShort, 2}, {"I8", at::kChar, 1},
    {"U8", at::kByte, 1},    {"BOOL", at::kBool, 1}};

const StoredDtype* stored_dtype_named(const std::string& name) {
  for (const auto& d : kStoredDtypes)
    if (name == d.name) return &d;
  return nullptr;
}

const StoredDtype& stored_dtype_of(at::ScalarType type) {
  for (const auto& d : kStoredDtypes)
    if (type == d.type) return d;
  throw Error(fmt::format("write_safetensors: dtype {} has no safetensors code", c10::toString(type)));
}

// A header over 100 MB is a corrupt length, not a real model (the safetensors crate caps it at 100,000,000).
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

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
  return header;
}

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  if (!std::filesystem::is_regular_file(path))
    throw IoError(fmt::format("safetensors file '{}' cannot be opened: it does not exist or is not a file; check the "
                              "path (model.safetensors in the model directory)", path));
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw IoError(fmt::format("safetensors file '{}' cannot be opened: check the path (model.safetensors in "
                                     "the model directory)", path));
  const auto file_size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  if (file_size < 8)
    throw IoError(fmt::format("safetensors file '{}' is {} bytes, shorter than its 8-byte header length: the file is "
                              "truncated", path, file_size));
  unsigned char length_bytes[8];
  in.read(reinterpret_cast<char*>(length_bytes), 8);
  if (!in) throw IoError(fmt::format("safetensors file '{}': reading its 8-byte header length failed", path));
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];  // little-endian
  if (header_bytes > file_size - 8 || header_bytes > kMaxHeaderBytes)
    throw IoError(fmt::format("safetensors file '{}': header length {} does not fit in the file ({} bytes): the "
                              "file is truncated or not a safetensors file", path, header_bytes, file_size));
  std::string header_text(header_bytes, '\0');
  in.read(header_text.data(), static_cast<std::streamsize>(header_bytes));
  if (!in) throw IoError(fmt::format("safetensors file '{}': reading the header failed", path));

  SafetensorsFile file;
  file.path_ = path;
  const nlohmann::json header = parse_header_refusing_duplicates(header_text, path);
  if (!header.is_object())
    throw IoError(fmt::format("safetensors file '{}': header must be a JSON object, got {}", path, header.type_name()));

  const uint64_t buffer_bytes = file_size - 8 - header_bytes;
  for (const auto& [name, value] : header.items()) {
    auto bad = [&](const std::string& what) {
      return IoError(fmt::format("safetensors file '{}': tensor '{}' {}", path, name, what));
    };
    if (name == "__metadata__") {
      if (!value.is_object()) throw bad("must be an object of strings");
      for (const auto& [key, text] : value.items()) {
        if (!text.is_string()) throw bad(fmt::format("entry '{}' must be a string", key));
        file.metadata_[key] = text.get<std::string>();
      }
      continue;
    }
    if (name.empty()) throw bad("has an empty name");
    if (!value.is_object()) throw bad("must be an object with dtype, shape and data_offsets");
    for (const auto& [key, unused] : value.items())
      if (key != "dtype" && key != "shape" && key != "data_offsets")
        throw bad(fmt::format("has an unknown field '{}'", key));
    if (!value.contains("dtype") || !value["dtype"].is_string()) throw bad("has no dtype string");
    if (!value.contains("shape") || !value["shape"].is_array()) throw bad("has no shape array");
    if (!value.contains("data_offsets") || !value["data_offsets"].is_array() || value["data_offsets"].size() != 2)
      throw bad("has no data_offsets [begin, end]");

    SafetensorsEntry entry;
    entry.dtype = value["dtype"].get<std::string>();
    const StoredDtype* dtype = stored_dtype_named(entry.dtype);
    if (dtype == nullptr) throw bad(fmt::format("has unsupported dtype '{}'", entry.dtype));
    // The product of the non-zero dimensions must fit in int64 too: a zero dimension makes the
    // element count 0 but LibTorch still computes strides from the others.
    uint64_t elements = 1, nonzero_product = 1;
    constexpr uint64_t kMaxInt64 = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    for (const auto& dim : value["shape"]) {
      if (!dim.is_number_unsigned()) throw bad(fmt::format("has shape entry {} (must be a non-negative integer)", dim.dump()));
      const uint64_t d = dim.get<uint64_t>();
      if (d != 0 && nonzero_product > kMaxInt64 / d) throw bad("has a shape whose size overflows");
      if (d != 0) nonzero_product *= d;
      elements = d == 0 ? 0 : elements * d;
      entry.shape.push_back(static_cast<int64_t>(d));
    }
    for (const auto& offset : value["data_offsets"])
      if (!offset.is_number_unsigned()) throw bad(fmt::format("has data offset {} (must be a non-negative integer)", offset.dump()));
    entry.begin = value["data_offsets"][0].get<uint64_t>();
    entry.end = value["data_offsets"][1].get<uint64_t>();
    if (entry.begin > entry.end) throw bad(fmt::format("has data_offsets [{}, {}] out of order", entry.begin, entry.end));
    if (entry.end > buffer_bytes)
      throw bad(fmt::format("ends at byte {} of a {}-byte data buffer: the file is truncated", entry.end, buffer_bytes));
    if (elements > std::numeric_limits<uint64_t>::max() / dtype->bytes || entry.end - entry.begin != elements * dtype->bytes)
      throw bad(fmt::format("has {} bytes but shape [{}] of {} needs {}", entry.end - entry.begin,
                            join([&] {
                              std::vector<std::string> dims;
                              for (int64_t d : entry.shape) dims.push_back(std::to_string(d));
                              return dims;
                            }(), ", "),
                            entry.dtype, elements * dtype->bytes));
    file.entries_.emplace(name, std::move(entry));
  }

  // Tensors must tile the buffer exactly: an overlap means two tensors share bytes, a gap means bytes
  // no tensor explains; either way the header does not describe this file.
  std::vector<std::pair<const std::string*, const SafetensorsEntry*>> by_offset;
  for (const auto& [name, entry] : file.entries_) by_offset.emplace_back(&name, &entry);
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

  file.data_.resize(buffer_bytes);
  in.read(file.data_.data(), static_cast<std::streamsize>(buffer_bytes));
  if (!in) throw IoError(fmt::format("safetensors file '{}': reading {} bytes of tensor data failed", path, buffer_bytes));
  return file;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) {
    std::vector<std::string> names;
    for (const auto& [n, unused] : entries_) names.push_back(n);
    throw IoError(fmt::format("safetensors file '{}' has no tensor '{}'{}", path_, name, did_you_mean(name, names)));
  }
  const SafetensorsEntry& entry = it->second;
  const StoredDtype& dtype = *stored_dtype_named(entry.dtype);
  at::Tensor out = at::empty(entry.shape, at::TensorOptions().dtype(dtype.type));
  // Safetensors is little-endian, as is every machine LibTorch runs on here.
  if (entry.end > entry.begin) std::memcpy(out.data_ptr(), data_.data() + entry.begin, entry.end - entry.begin);
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, at::Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    at::Tensor t = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * stored_dtype_of(t.scalar_type()).bytes;
    header[name] = {{"dtype", stored_dtype_of(t.scalar_type()).name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string text = header.dump();
  // The format pads the header with spaces to a multiple of 8 so the buffer starts aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) throw IoError(fmt::format("cannot write safetensors file '{}': check that the directory exists and is writable", path));
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  out.write(reinterpret_cast<const char*>(length_bytes), 8);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  for (const at::Tensor& t : contiguous)
    out.write(static_cast<const char*>(t.data_ptr()), static_cast<std::streamsize>(t.nbytes()));
  out.close();
  if (!out) throw IoError(fmt::format("writing safetensors file '{}' failed (disk full?)", path));
}

}  // namespace smyrf
