// read_captured_group (experiments/io/captured_group.h) and the HDF5 reader's size check: a valid
// group reads back; a group whose shapes disagree, whose values are not finite, whose masks are not
// 0/1, whose scale or causal flag is impossible, or whose array claims an extent the file does not
// store is refused with an error naming the file, the group and the dataset, before the array is
// allocated. The fuzz target tests/fuzz/fuzz_captured.cpp looks for more of the same.
// Run: smyrf_tests_light --gtest_filter='CapturedGroup*'
#include <gtest/gtest.h>
#include <hdf5.h>

#include <cmath>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "experiments/io/captured_group.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

using test::contains;
using test::error_of;

class CapturedGroupTest : public test::TempDirTest {
 protected:
  // Group g: B=1, H=2, N=5, M=4, D=3, E=2, with keep masks.
  std::string write_valid() {
    const std::string path = file("captured.h5");
    H5File f = H5File::create(path);
    f.set_attr("/", "format", kCapturedQkvFormat);
    f.create_groups("/g");
    f.write_array("/g/q", std::vector<double>(30, 0.5), {1, 2, 5, 3});
    f.write_array("/g/k", std::vector<double>(24, 0.25), {1, 2, 4, 3});
    f.write_array("/g/v", std::vector<double>(16, 1.0), {1, 2, 4, 2});
    f.write_array("/g/key_keep", std::vector<double>{1, 1, 1, 0}, {1, 4});
    f.write_array("/g/query_keep", std::vector<double>{1, 1, 1, 1, 0}, {1, 5});
    f.set_attr("/g", "scale", 0.5);
    f.set_attr("/g", "causal", int64_t{1});
    f.close();
    return path;
  }
  std::string refusal(const std::string& path) {
    return error_of<IoError>([&] { read_captured_group(path, "g", "test"); });
  }
};

TEST_F(CapturedGroupTest, AValidGroupReadsBack) {
  const CapturedGroup g = read_captured_group(write_valid(), "g", "test");
  EXPECT_EQ(g.q.dims, (std::vector<int64_t>{1, 2, 5, 3}));
  EXPECT_EQ(g.v.dims, (std::vector<int64_t>{1, 2, 4, 2}));
  ASSERT_TRUE(g.key_keep && g.query_keep);
  EXPECT_EQ(g.key_keep->data, (std::vector<double>{1, 1, 1, 0}));
  EXPECT_TRUE(g.causal);
  EXPECT_EQ(g.scale, 0.5);
}

TEST_F(CapturedGroupTest, ShapesThatDisagreeAreRefused) {
  const std::string path = write_valid();
  H5File(H5File::open(path, true)).write_array("/g/v", std::vector<double>(15, 1.0), {1, 1, 5, 3});
  const std::string message = refusal(path);
  EXPECT_TRUE(contains(message, "do not agree")) << message;
  EXPECT_TRUE(contains(message, "group 'g'")) << message;
  H5File(H5File::open(path, true)).write_array("/g/v", std::vector<double>(16, 1.0), {1, 2, 4, 2});
  H5File(H5File::open(path, true)).write_array("/g/key_keep", std::vector<double>{1, 1, 1, 1, 1}, {1, 5});
  EXPECT_TRUE(contains(refusal(path), "dataset 'key_keep' has shape [1, 5], expected [1, 4]"));
  H5File(H5File::open(path, true)).write_array("/g/key_keep", std::vector<double>{}, {1, 0});
  EXPECT_TRUE(contains(refusal(path), "size at least 1"));
}

TEST_F(CapturedGroupTest, ValuesScaleAndFlagsAreChecked) {
  const std::string path = write_valid();
  std::vector<double> q(30, 0.5);
  q[17] = std::nan("");
  H5File(H5File::open(path, true)).write_array("/g/q", q, {1, 2, 5, 3});
  EXPECT_TRUE(contains(refusal(path), "dataset 'q' holds nan at flat index 17 (batch 0, token 0), a real token"));
  q[17] = 0.5;
  q[29] = std::nan("");  // token 4 is padding (query_keep 0): allowed
  H5File(H5File::open(path, true)).write_array("/g/q", q, {1, 2, 5, 3});
  EXPECT_TRUE(std::isnan(read_captured_group(path, "g", "test").q.data[29]));
  H5File(H5File::open(path, true)).write_array("/g/q", std::vector<double>(30, 0.5), {1, 2, 5, 3});
  H5File(H5File::open(path, true)).write_array("/g/query_keep", std::vector<double>{1, 1, 2, 1, 0}, {1, 5});
  EXPECT_TRUE(contains(refusal(path), "a keep mask holds 0 or 1"));
  H5File(H5File::open(path, true)).write_array("/g/query_keep", std::vector<double>{1, 1, 1, 1, 0}, {1, 5});
  H5File(H5File::open(path, true)).set_attr("/g", "scale", INFINITY);
  EXPECT_TRUE(contains(refusal(path), "attribute scale is inf"));
  H5File(H5File::open(path, true)).set_attr("/g", "scale", 0.5);
  H5File(H5File::open(path, true)).set_attr("/g", "causal", int64_t{2});
  EXPECT_TRUE(contains(refusal(path), "attribute causal is 2"));
  // a float attribute read as an integer: 1e308 used to be cast to int64 (undefined behaviour)
  H5File(H5File::open(path, true)).set_attr("/g", "causal", 1e308);
  const std::string message = error_of<Error>([&] { read_captured_group(path, "g", "test"); });
  EXPECT_TRUE(contains(message, "attribute 'causal' of '/g'")) << message;
  EXPECT_TRUE(contains(message, "is 1e+308, expected an integer")) << message;
}

TEST_F(CapturedGroupTest, WrongFormatAndUnknownGroupsNameTheFix) {
  const std::string path = write_valid();
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { read_captured_group(path, "h", "cfg.json"); }), "groups: g"));
  H5File(H5File::open(path, true)).set_attr("/", "format", "smyrf-results");
  EXPECT_TRUE(contains(refusal(path), "is not a captured-QKV file"));
}

// A chunked dataset of 2^19 x 2^20 float64 whose chunks were never written: a few KiB on disk, 4 TiB
// if read. Every numeric reader of H5File refuses it before allocating.
TEST_F(CapturedGroupTest, AnArrayClaimingMoreThanTheFileStoresIsNotAllocated) {
  const std::string path = write_valid();
  {
    const hid_t f = H5Fopen(path.c_str(), H5F_ACC_RDWR, H5P_DEFAULT);
    ASSERT_GE(f, 0);
    H5Ldelete(f, "/g/k", H5P_DEFAULT);
    const hsize_t dims[4] = {1, 2, hsize_t{1} << 19, hsize_t{1} << 20}, chunk[4] = {1, 1, 1, 1};
    const hid_t space = H5Screate_simple(4, dims, nullptr), create = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(create, 4, chunk);
    const hid_t d = H5Dcreate2(f, "/g/k", H5T_IEEE_F64LE, space, H5P_DEFAULT, create, H5P_DEFAULT);
    ASSERT_GE(d, 0);
    H5Dclose(d), H5Pclose(create), H5Sclose(space), H5Fclose(f);
  }
  EXPECT_TRUE(contains(refusal(path), "do not agree"));  // shapes are checked first
  const H5File file = H5File::open(path, false);
  const std::string message = error_of<IoError>([&] { file.read_array_f64("/g/k"); });
  EXPECT_TRUE(contains(message, "claims 1099511627776 elements but the file stores only 0 bytes")) << message;
}

}  // namespace
}  // namespace smyrf
