// Tensors in HDF5 files, in one place: every command and pipeline that writes a tensor to an HDF5
// file, reads one back, or hands one to the results store goes through these functions.
//   write_tensor   any dtype/device/strides -> a C-order float32 or float64 dataset
//   read_tensor    a numeric dataset -> a CPU tensor of the asked dtype (missing: IoError naming
//                  file and dataset)
//   named_array_of a tensor -> the results store's array (experiments/runner/results_store.h)
// Tested through the files they write: tests/test_experiments.cpp (captured Q/K/V, `smyrf attend`),
// tests/python/test_bert_parity.py (`smyrf encode`), tests/python/test_fid.py (FID statistics).
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

#include "core/util/hdf5_file.h"
#include "experiments/runner/results_store.h"

namespace smyrf {

enum class StoredPrecision { kFloat32, kFloat64 };

void write_tensor(H5File& file, const std::string& dataset, const at::Tensor& t, StoredPrecision precision);

at::Tensor read_tensor(const H5File& file, const std::string& dataset, at::ScalarType dtype = at::kDouble);

// Values travel as float64; store_float32 asks the store to write them as float32 (images).
NamedArray named_array_of(const at::Tensor& t, bool store_float32 = false);

}  // namespace smyrf
