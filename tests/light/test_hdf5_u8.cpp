// Tests of H5File's uint8 reader (read_array_u8, dataset_dims), which reads images stored as uint8
// (N, 3, H, W) a batch of rows at a time: whole and partial row ranges, the shape of what was read,
// and loud refusals of other element types, scalars, missing datasets and ranges past the end.
// The uint8 datasets are written with the HDF5 C API directly, as h5py would write them.
// Run: smyrf_tests_light --gtest_filter='H5FileU8*'
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

class H5FileU8 : public test::TempDirTest {
 protected:
  // A file with /imgs uint8 (4, 3, 2, 5) holding 0, 1, 2, ..., /signed int8 (4), /scalar_u8, and
  // /floats, /scalar written by H5File.
  std::string make_file() {
    const std::string path = file("images.h5");
    const hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[4] = {4, 3, 2, 5};
    std::vector<uint8_t> values(4 * 3 * 2 * 5);
    std::iota(values.begin(), values.end(), uint8_t{0});
    const hid_t space = H5Screate_simple(4, dims, nullptr);
    const hid_t dset = H5Dcreate2(f, "imgs", H5T_STD_U8LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, values.data());
    H5Dclose(dset);
    H5Sclose(space);
    const hsize_t n = 4;
    const int8_t signed_values[4] = {-1, 0, 1, 2};
    const hid_t space1 = H5Screate_simple(1, &n, nullptr);
    const hid_t dset1 = H5Dcreate2(f, "signed", H5T_STD_I8LE, space1, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(dset1, H5T_NATIVE_INT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, signed_values);
    H5Dclose(dset1);
    H5Sclose(space1);
    const uint8_t one = 1;
    const hid_t scalar_space = H5Screate(H5S_SCALAR);
    const hid_t scalar = H5Dcreate2(f, "scalar_u8", H5T_STD_U8LE, scalar_space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dwrite(scalar, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, &one);
    H5Dclose(scalar);
    H5Sclose(scalar_space);
    H5Fclose(f);
    H5File h5 = H5File::open(path, /*writable=*/true);
    h5.write_array("floats", std::vector<float>{0.5f, 1.5f}, {2});
    h5.write_scalar("scalar", 1.0);
    h5.close();
    return path;
  }
};

TEST_F(H5FileU8, ReadsWholeDatasetsAndRowRanges) {
  const H5File h5 = H5File::open(make_file(), /*writable=*/false);
  EXPECT_EQ(h5.dataset_dims("imgs"), (std::vector<int64_t>{4, 3, 2, 5}));
  EXPECT_EQ(h5.dataset_dims("scalar"), std::vector<int64_t>{});
  const H5Array<uint8_t> all = h5.read_array_u8("imgs");
  EXPECT_EQ(all.dims, (std::vector<int64_t>{4, 3, 2, 5}));
  ASSERT_EQ(all.data.size(), 120u);
  EXPECT_EQ(all.data[119], 119);
  // Rows 1 and 2: elements 30..89.
  const H5Array<uint8_t> middle = h5.read_array_u8("/imgs", /*first_row=*/1, /*row_count=*/2);
  EXPECT_EQ(middle.dims, (std::vector<int64_t>{2, 3, 2, 5}));
  ASSERT_EQ(middle.data.size(), 60u);
  EXPECT_EQ(middle.data.front(), 30);
  EXPECT_EQ(middle.data.back(), 89);
  const H5Array<uint8_t> tail = h5.read_array_u8("imgs", /*first_row=*/3);
  EXPECT_EQ(tail.dims[0], 1);
  EXPECT_EQ(tail.data.front(), 90);
  const H5Array<uint8_t> none = h5.read_array_u8("imgs", /*first_row=*/4, /*row_count=*/0);
  EXPECT_EQ(none.dims, (std::vector<int64_t>{0, 3, 2, 5}));
  EXPECT_TRUE(none.data.empty());
}

TEST_F(H5FileU8, RefusesOtherTypesRangesAndMissingDatasets) {
  const std::string path = make_file();
  const H5File h5 = H5File::open(path, /*writable=*/false);
  for (const char* name : {"floats", "signed"}) {
    const std::string m = test::error_of<Error>([&] { h5.read_array_u8(name); });
    EXPECT_TRUE(test::contains(m, "expected 8-bit unsigned integers"));
    EXPECT_TRUE(test::contains(m, path));
  }
  EXPECT_TRUE(test::contains(test::error_of<Error>([&] { h5.read_array_u8("scalar_u8"); }), "is a scalar"));
  EXPECT_TRUE(test::contains(test::error_of<Error>([&] { h5.read_array_u8("imgs", 3, 2); }), "it has 4 rows"));
  EXPECT_TRUE(test::contains(test::error_of<Error>([&] { h5.read_array_u8("imgs", -1, 1); }), "it has 4 rows"));
  EXPECT_TRUE(test::contains(test::error_of<Error>([&] { h5.read_array_u8("absent"); }), "has no dataset '/absent'"));
  EXPECT_TRUE(test::contains(test::error_of<Error>([&] { h5.dataset_dims("absent"); }), "has no dataset '/absent'"));
}

}  // namespace
}  // namespace smyrf
