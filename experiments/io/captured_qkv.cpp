// See captured_qkv.h.
#include "experiments/io/captured_qkv.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>
#include <optional>

#include "core/util/check.h"
#include "core/util/strings.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

constexpr const char* kFormat = "smyrf-captured-qkv";

H5File create_partial(const std::string& path, const std::string& partial_path) {
  if (const auto parent = std::filesystem::path(path).parent_path(); !parent.empty())
    std::filesystem::create_directories(parent);
  return H5File::create(partial_path);
}

}  // namespace

CapturedQkvWriter::CapturedQkvWriter(const std::string& path, const std::map<std::string, std::string>& root_strings,
                                     const std::map<std::string, int64_t>& root_integers)
    : path_(path), partial_path_(path + ".partial"), file_(create_partial(path, partial_path_)) {
  file_.set_attr("/", "format", kFormat);
  for (const auto& [name, value] : root_strings) file_.set_attr("/", name, value);
  for (const auto& [name, value] : root_integers) file_.set_attr("/", name, value);
}

void CapturedQkvWriter::add_group(const std::string& group, const AttentionInputs& in, const at::Tensor& ids_BN,
                                  int64_t layer, int64_t batch) {
  SMYRF_CHECK(in.key_keep_BM && in.query_keep_BN, "captured group '{}' needs both keep masks", group);
  file_.create_groups(group);
  write_tensor(file_, group + "/q", in.q_BHND, StoredPrecision::kFloat32);
  write_tensor(file_, group + "/k", in.k_BHMD, StoredPrecision::kFloat32);
  write_tensor(file_, group + "/v", in.v_BHME, StoredPrecision::kFloat32);
  write_tensor(file_, group + "/key_keep", in.key_keep_BM->to(at::kFloat), StoredPrecision::kFloat32);
  write_tensor(file_, group + "/query_keep", in.query_keep_BN->to(at::kFloat), StoredPrecision::kFloat32);
  write_tensor(file_, group + "/ids", ids_BN.to(at::kFloat), StoredPrecision::kFloat32);
  file_.set_attr(group, "scale", in.scale);
  file_.set_attr(group, "causal", static_cast<int64_t>(in.causal ? 1 : 0));
  file_.set_attr(group, "layer", layer);
  file_.set_attr(group, "batch", batch);
  ++groups_;
}

void CapturedQkvWriter::commit() {
  file_.close();
  std::filesystem::rename(partial_path_, path_);
}

AttentionInputs load_captured_qkv(const std::string& path, const std::string& group, at::ScalarType dtype,
                                  const std::string& source) {
  if (!std::filesystem::exists(path))
    throw IoError(fmt::format("{}: names the captured-QKV file '{}', which does not exist; write it with the capture "
                              "pipeline or fix the path", source, path));
  const H5File file = H5File::open(path, /*writable=*/false);
  if (file.attr_string("/", "format") != std::optional<std::string>(kFormat))
    throw IoError(fmt::format("'{}' is not a captured-QKV file (root attribute format = \"{}\" is missing); see "
                              "results/README.md", path, kFormat));
  const std::string g = "/" + group;
  if (!file.is_group(g))
    throw ConfigError(fmt::format("{}: names group '{}', which is not a group of '{}'; groups: {}", source,
                                  group, path, join(file.children("/"), ", ")));
  for (const char* name : {"q", "k", "v"})
    if (!file.is_dataset(g + "/" + name))
      throw IoError(fmt::format("'{}': group '{}' has no dataset '{}' (need q [B,H,N,D], k [B,H,M,D], v [B,H,M,E])",
                                path, group, name));
  AttentionInputs in;
  in.q_BHND = read_tensor(file, g + "/q", dtype);
  in.k_BHMD = read_tensor(file, g + "/k", dtype);
  in.v_BHME = read_tensor(file, g + "/v", dtype);
  if (file.is_dataset(g + "/key_keep")) in.key_keep_BM = read_tensor(file, g + "/key_keep").ne(0);
  if (file.is_dataset(g + "/query_keep")) in.query_keep_BN = read_tensor(file, g + "/query_keep").ne(0);
  in.causal = file.attr_int(g, "causal").value_or(0) != 0;
  in.scale = file.attr_double(g, "scale").value_or(0.0);
  return in;
}

}  // namespace smyrf
