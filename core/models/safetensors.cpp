// SafetensorsFile's tensors and write_safetensors; see safetensors.h.
#include "core/models/safetensors.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cstring>

#include "core/util/check.h"
#include "core/util/file_writer.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

struct StoredDtype {
  const char* name;
  at::ScalarType type;
};
constexpr StoredDtype kStoredDtypes[] = {
    {"F64", at::kDouble}, {"F32", at::kFloat}, {"F16", at::kHalf},  {"BF16", at::kBFloat16}, {"I64", at::kLong},
    {"I32", at::kInt},    {"I16", at::kShort}, {"I8", at::kChar},  {"U8", at::kByte},       {"BOOL", at::kBool}};

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

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile file;
  file.path_ = path;
  file.contents_ = read_safetensors(path);
  return file;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  auto it = entries().find(name);
  if (it == entries().end()) {
    std::vector<std::string> names;
    for (const auto& [n, unused] : entries()) names.push_back(n);
    throw IoError(fmt::format("safetensors file '{}' has no tensor '{}'{}", path_, name, did_you_mean(name, names)));
  }
  const SafetensorsEntry& entry = it->second;
  const StoredDtype& dtype = *stored_dtype_named(entry.dtype);
  at::Tensor out = at::empty(entry.shape, at::TensorOptions().dtype(dtype.type));
  // Safetensors is little-endian, as is every machine LibTorch runs on here.
  if (entry.end > entry.begin) std::memcpy(out.data_ptr(), contents_.data.data() + entry.begin, entry.end - entry.begin);
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
    const uint64_t bytes = static_cast<uint64_t>(t.nbytes());
    header[name] = {{"dtype", stored_dtype_of(t.scalar_type()).name},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string text = header.dump();
  // The format pads the header with spaces to a multiple of 8 so the buffer starts aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  FileWriter out(path, "safetensors file");
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = static_cast<unsigned char>(static_cast<uint64_t>(text.size()) >> (8 * i));
  out.write(length_bytes, 8);
  out.write(text);
  for (const at::Tensor& t : contiguous) out.write(t.data_ptr(), t.nbytes());
  out.close();
}

}  // namespace smyrf
