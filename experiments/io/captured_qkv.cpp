// See captured_qkv.h.
#include "experiments/io/captured_qkv.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>

#include "core/util/check.h"
#include "experiments/io/captured_group.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

H5File create_partial(const std::string& path, const std::string& partial_path) {
  if (const auto parent = std::filesystem::path(path).parent_path(); !parent.empty())
    std::filesystem::create_directories(parent);
  return H5File::create(partial_path);
}

}  // namespace

CapturedQkvWriter::CapturedQkvWriter(const std::string& path, const std::map<std::string, std::string>& root_strings,
                                     const std::map<std::string, int64_t>& root_integers)
    : path_(path), partial_path_(path + ".partial"), file_(create_partial(path, partial_path_)) {
  file_.set_attr("/", "format", kCapturedQkvFormat);
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
  const CapturedGroup g = read_captured_group(path, group, source);
  auto tensor_of = [](const H5Array<double>& a) {
    return at::tensor(a.data, at::TensorOptions().dtype(at::kDouble)).view(a.dims);
  };
  AttentionInputs in;
  in.q_BHND = tensor_of(g.q).to(dtype);
  in.k_BHMD = tensor_of(g.k).to(dtype);
  in.v_BHME = tensor_of(g.v).to(dtype);
  if (g.key_keep) in.key_keep_BM = tensor_of(*g.key_keep).ne(0);
  if (g.query_keep) in.query_keep_BN = tensor_of(*g.query_keep).ne(0);
  in.causal = g.causal;
  in.scale = g.scale;
  return in;
}

}  // namespace smyrf
