// See captured_group.h.
#include "experiments/io/captured_group.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <vector>

#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {
namespace {

std::string dims_text(const std::vector<int64_t>& dims) {
  std::vector<std::string> parts;
  for (int64_t d : dims) parts.push_back(std::to_string(d));
  return "[" + join(parts, ", ") + "]";
}

struct Where {
  const std::string& path;
  const std::string& group;
  IoError bad(const std::string& what) const {
    return IoError(fmt::format("captured-QKV file '{}', group '{}': {}; the file is damaged or was not written by the "
                               "capture pipeline (see results/README.md)", path, group, what));
  }
};

// The dims of each array, checked against one another before anything is read.
void check_shapes(const H5File& file, const std::string& g, const Where& where) {
  auto dims_of = [&](const char* name, size_t rank) {
    const std::vector<int64_t> dims = file.dataset_dims(g + "/" + name);
    bool positive = dims.size() == rank;
    for (int64_t d : dims) positive = positive && d >= 1;
    if (!positive)
      throw where.bad(fmt::format("dataset '{}' has shape {}; it needs {} dimensions of size at least 1", name,
                                  dims_text(dims), rank));
    return dims;
  };
  const auto q = dims_of("q", 4), k = dims_of("k", 4), v = dims_of("v", 4);
  if (k[0] != q[0] || k[1] != q[1] || k[3] != q[3] || v[0] != q[0] || v[1] != q[1] || v[2] != k[2])
    throw where.bad(fmt::format("shapes q {}, k {}, v {} do not agree (need q [B,H,N,D], k [B,H,M,D], v [B,H,M,E])",
                                dims_text(q), dims_text(k), dims_text(v)));
  for (const auto& [name, length] : {std::pair<const char*, int64_t>{"key_keep", k[2]}, {"query_keep", q[2]}}) {
    if (!file.is_dataset(g + "/" + name)) continue;
    const auto keep = dims_of(name, 2);
    if (keep[0] != q[0] || keep[1] != length)
      throw where.bad(fmt::format("dataset '{}' has shape {}, expected [{}, {}]", name, dims_text(keep), q[0], length));
  }
}

// A keep mask [B, L]: 0 or 1 everywhere.
H5Array<double> read_mask(const H5File& file, const std::string& g, const char* name, const Where& where) {
  H5Array<double> a = file.read_array_f64(g + "/" + name);
  for (size_t i = 0; i < a.data.size(); ++i)
    if (a.data[i] != 0.0 && a.data[i] != 1.0)
      throw where.bad(fmt::format("dataset '{}' holds {} at flat index {} (a keep mask holds 0 or 1)", name, a.data[i], i));
  return a;
}

// q, k or v [B, H, L, X]: finite wherever the mask `keep` [B, L] (if any) says the token is real;
// padded positions may hold anything (the methods zero them, see attention_method.h).
H5Array<double> read_values(const H5File& file, const std::string& g, const char* name,
                            const std::optional<H5Array<double>>& keep, const Where& where) {
  H5Array<double> a = file.read_array_f64(g + "/" + name);
  const int64_t H = a.dims[1], L = a.dims[2], X = a.dims[3];
  for (size_t i = 0; i < a.data.size(); ++i) {
    if (std::isfinite(a.data[i])) continue;
    const int64_t flat = static_cast<int64_t>(i), b = flat / (H * L * X), token = flat / X % L;
    if (keep && keep->data[static_cast<size_t>(b * L + token)] == 0.0) continue;
    throw where.bad(fmt::format("dataset '{}' holds {} at flat index {} (batch {}, token {}), a real token: values "
                                "must be finite", name, a.data[i], i, b, token));
  }
  return a;
}

}  // namespace

CapturedGroup read_captured_group(const std::string& path, const std::string& group, const std::string& source) {
  if (!std::filesystem::exists(path))
    throw IoError(fmt::format("{}: names the captured-QKV file '{}', which does not exist; write it with the capture "
                              "pipeline or fix the path", source, path));
  const H5File file = H5File::open(path, /*writable=*/false);
  if (file.attr_string("/", "format") != std::optional<std::string>(kCapturedQkvFormat))
    throw IoError(fmt::format("'{}' is not a captured-QKV file (root attribute format = \"{}\" is missing); see "
                              "results/README.md", path, kCapturedQkvFormat));
  const std::string g = "/" + group;
  if (group.empty() || !file.is_group(g))
    throw ConfigError(fmt::format("{}: names group '{}', which is not a group of '{}'; groups: {}", source,
                                  group, path, join(file.children("/"), ", ")));
  const Where where{path, group};
  for (const char* name : {"q", "k", "v"})
    if (!file.is_dataset(g + "/" + name))
      throw where.bad(fmt::format("it has no dataset '{}' (need q [B,H,N,D], k [B,H,M,D], v [B,H,M,E])", name));
  check_shapes(file, g, where);
  CapturedGroup out;
  if (file.is_dataset(g + "/key_keep")) out.key_keep = read_mask(file, g, "key_keep", where);
  if (file.is_dataset(g + "/query_keep")) out.query_keep = read_mask(file, g, "query_keep", where);
  out.q = read_values(file, g, "q", out.query_keep, where);
  out.k = read_values(file, g, "k", out.key_keep, where);
  out.v = read_values(file, g, "v", out.key_keep, where);
  const int64_t causal = file.attr_int(g, "causal").value_or(0);
  if (causal != 0 && causal != 1) throw where.bad(fmt::format("attribute causal is {}, expected 0 or 1", causal));
  out.causal = causal == 1;
  out.scale = file.attr_double(g, "scale").value_or(0.0);
  if (!std::isfinite(out.scale) || out.scale < 0)
    throw where.bad(fmt::format("attribute scale is {}, expected a finite number >= 0 (0: 1/sqrt(D))", out.scale));
  return out;
}

}  // namespace smyrf
