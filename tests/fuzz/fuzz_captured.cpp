// Fuzz target: captured-Q/K/V files (experiments/io/captured_group.h) that are valid HDF5 but lie:
// arrays of other shapes and element types, chunked arrays that claim a huge extent without storing
// it, NaN and infinite values, attributes of the wrong type or value, missing groups. A valid file
// (group g: B=1, H=2, N=5, M=4, D=3, E=2, with keep masks) is written once; each input is a program
// of edits applied to a copy, after which group g is read as attention_fidelity and `smyrf attend`
// read it. A group that is read back must have the shapes the reader promises.
// Program bytes: op (mod 7), object (index into kObjects), then the op's operands.
#include <hdf5.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <limits>

#include "core/util/hdf5_file.h"
#include "experiments/io/captured_group.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace smyrf;

const char* const kObjects[] = {"/", "/g", "/g/q", "/g/k", "/g/v", "/g/key_keep", "/g/query_keep", "/g/ids", "/h"};
const char* const kAttrs[] = {"format", "scale", "causal", "layer", "batch"};
const char* const kStrings[] = {"", "smyrf-captured-qkv", "smyrf-results", "1", "0.125"};
const double kValues[] = {0.0, 1.0, -1.0, 0.5, 2.0, 1e308, -0.0, std::nan(""), INFINITY, -INFINITY};

std::string make_template() {
  const auto path = fuzz::scratch_dir() / "template.h5";
  {
    H5File file = H5File::create(path.string());
    file.set_attr("/", "format", kCapturedQkvFormat);
    file.create_groups("/g");
    auto ramp = [](size_t n) {
      std::vector<double> x(n);
      for (size_t i = 0; i < n; ++i) x[i] = std::sin(static_cast<double>(i));
      return x;
    };
    file.write_array("/g/q", ramp(30), {1, 2, 5, 3});
    file.write_array("/g/k", ramp(24), {1, 2, 4, 3});
    file.write_array("/g/v", ramp(16), {1, 2, 4, 2});
    file.write_array("/g/key_keep", std::vector<double>{1, 1, 1, 0}, {1, 4});
    file.write_array("/g/query_keep", std::vector<double>{1, 1, 1, 1, 0}, {1, 5});
    file.write_array("/g/ids", std::vector<double>{101, 7, 8, 102, 0}, {1, 5});
    file.set_attr("/g", "scale", 0.5);
    file.set_attr("/g", "causal", int64_t{0});
    file.set_attr("/g", "layer", int64_t{3});
    file.set_attr("/g", "batch", int64_t{0});
    file.close();
  }
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// A chunked float64 dataset whose extent is up to 2^40 per dimension; no chunk is ever written.
void write_sparse(const std::string& file_path, const std::string& object, fuzz::Program& p) {
  const int rank = 1 + p.byte() % 4;
  std::vector<hsize_t> dims(static_cast<size_t>(rank)), chunk(static_cast<size_t>(rank), 1);
  for (auto& d : dims) d = hsize_t{1} << (p.byte() % 41);
  const hid_t file = H5Fopen(file_path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
  if (file < 0) return;
  H5Ldelete(file, object.c_str(), H5P_DEFAULT);
  const hid_t space = H5Screate_simple(rank, dims.data(), nullptr);
  const hid_t create = H5Pcreate(H5P_DATASET_CREATE);
  H5Pset_chunk(create, rank, chunk.data());
  const hid_t dset = H5Dcreate2(file, object.c_str(), H5T_IEEE_F64LE, space, H5P_DEFAULT, create, H5P_DEFAULT);
  if (dset >= 0) H5Dclose(dset);
  H5Pclose(create);
  H5Sclose(space);
  H5Fclose(file);
}

void edit(H5File& file, const std::string& file_path, fuzz::Program& p) {
  const std::string object = p.pick(kObjects);
  switch (p.byte() % 7) {
    case 0: file.set_attr(object, p.pick(kAttrs), std::string(p.pick(kStrings))); break;
    case 1: file.set_attr(object, p.pick(kAttrs), static_cast<int64_t>(static_cast<int8_t>(p.byte()))); break;
    case 2: file.set_attr(object, p.pick(kAttrs), p.pick(kValues)); break;
    case 3: file.remove(object); break;
    case 4: {  // an array of another shape in its place, filled with one value
      std::vector<int64_t> dims(p.byte() % 6);
      size_t count = 1;
      for (auto& d : dims) count *= static_cast<size_t>(d = p.byte() % 7);
      file.remove(object);
      if (object != "/") file.write_array(object, std::vector<double>(count, p.pick(kValues)), dims);
      break;
    }
    case 5: {  // one element of an existing array changed
      if (!file.is_dataset(object)) break;
      H5Array<double> a = file.read_array_f64(object);
      if (!a.data.empty()) a.data[p.byte() % a.data.size()] = p.pick(kValues);
      file.write_array(object, a.data, a.dims);
      break;
    }
    default: {  // a lying, unwritten chunked array (the H5File handle is closed around it)
      file.close();
      if (object != "/") write_sparse(file_path, object, p);
      file = H5File::open(file_path, /*writable=*/true);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kTemplate = make_template();
  const auto path = fuzz::fresh_scratch_dir() / "captured.h5";
  fuzz::write_file(path, kTemplate);
  fuzz::expect_clean([&] {
    {
      H5File file = H5File::open(path.string(), /*writable=*/true);
      fuzz::Program program{data, size};
      for (int edits = 0; program.more() && edits < 16; ++edits) edit(file, path.string(), program);
      file.close();
    }
    const CapturedGroup g = read_captured_group(path.string(), "g", "fuzz");
    const bool agree = g.q.dims.size() == 4 && g.k.dims.size() == 4 && g.v.dims.size() == 4 &&
                       g.k.dims[3] == g.q.dims[3] && g.v.dims[2] == g.k.dims[2] &&
                       (!g.key_keep || g.key_keep->dims == std::vector<int64_t>{g.q.dims[0], g.k.dims[2]}) &&
                       (!g.query_keep || g.query_keep->dims == std::vector<int64_t>{g.q.dims[0], g.q.dims[2]}) &&
                       std::isfinite(g.scale);
    if (!agree) std::abort();  // the reader let through a group that breaks its promise
  });
  return 0;
}
