// See tensor_h5.h.
#include "experiments/io/tensor_h5.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <vector>

#include "core/util/check.h"

namespace smyrf {

void write_tensor(H5File& file, const std::string& dataset, const at::Tensor& t, StoredPrecision precision) {
  if (precision == StoredPrecision::kFloat64) {
    const at::Tensor x = t.detach().to(at::kCPU, at::kDouble).contiguous();
    file.write_array(dataset, std::vector<double>(x.data_ptr<double>(), x.data_ptr<double>() + x.numel()),
                     x.sizes().vec());
  } else {
    const at::Tensor x = t.detach().to(at::kCPU, at::kFloat).contiguous();
    file.write_array(dataset, std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel()),
                     x.sizes().vec());
  }
}

at::Tensor read_tensor(const H5File& file, const std::string& dataset, at::ScalarType dtype) {
  if (!file.is_dataset(dataset)) throw IoError(fmt::format("'{}' has no dataset '{}'", file.path(), dataset));
  const H5Array<double> a = file.read_array_f64(dataset);
  return at::tensor(a.data, at::TensorOptions().dtype(at::kDouble)).view(a.dims).to(dtype);
}

NamedArray named_array_of(const at::Tensor& t, bool store_float32) {
  const at::Tensor x = t.detach().to(at::kCPU, at::kDouble).contiguous();
  NamedArray a;
  a.data.assign(x.data_ptr<double>(), x.data_ptr<double>() + x.numel());
  a.dims = x.sizes().vec();
  a.store_float32 = store_float32;
  return a;
}

}  // namespace smyrf
