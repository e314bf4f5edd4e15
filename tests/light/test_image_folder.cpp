// Tests for image decoding/resampling (datasets/image_io.h) and the CelebA-HQ image-folder loader
// (datasets/image_folder.h). Resampling is checked on small cases computed by hand in the comments
// (area average with whole and fractional coverage, round half up, bilinear enlarging with edge
// clamping, mixed axes), crops and flips on coordinate-coded pixels, PNG by a bit-exact write/decode
// round trip. The loader is checked on folders written per test (listing order, hidden files,
// subdirectories, corrupt and empty files, non-square images, max_images, options from JSON) and on
// the committed fixture tests/data/celebahq_tiny (procedural images, not faces; see
// tests/data/make_celebahq_tiny.py for the pixel formulas used below), where load_all must give the
// same bytes for 1, 3 and 8 threads as image-by-image loading.
// Run: smyrf_tests_light --gtest_filter='*Image*'
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "datasets/image_folder.h"
#include "datasets/image_io.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_of;

const std::string kFixtureDir = std::string(SMYRF_TEST_DATA_DIR) + "/celebahq_tiny";

// An image whose pixel (y, x, c) is f(y, x, c).
template <class F>
RgbImage image_of(int64_t height, int64_t width, F f) {
  RgbImage image;
  image.height = height;
  image.width = width;
  image.pixels_VWC.resize(static_cast<size_t>(height * width * 3));
  for (int64_t y = 0; y < height; ++y)
    for (int64_t x = 0; x < width; ++x)
      for (int64_t c = 0; c < 3; ++c)
        image.pixels_VWC[static_cast<size_t>((y * width + x) * 3 + c)] = static_cast<uint8_t>(f(y, x, c));
  return image;
}

RgbImage random_image(int64_t height, int64_t width, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255);
  return image_of(height, width, [&](int64_t, int64_t, int64_t) { return static_cast<uint8_t>(byte(rng)); });
}

// Channel 0 of every pixel, row by row (hand cases use equal or offset channels).
std::vector<int> channel0(const RgbImage& image) {
  std::vector<int> out;
  for (int64_t y = 0; y < image.height; ++y)
    for (int64_t x = 0; x < image.width; ++x) out.push_back(image.at(y, x, 0));
  return out;
}

RgbImage grey(int64_t height, int64_t width, const std::vector<int>& values) {
  return image_of(height, width,
                  [&](int64_t y, int64_t x, int64_t) { return static_cast<uint8_t>(values[y * width + x]); });
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out << bytes;
}

// ---------------------------------------------------------------------------------------------
// image_io: PNG

class ImageIo : public test::TempDirTest {};

TEST_F(ImageIo, PngRoundTripIsBitExact) {
  const RgbImage image = random_image(7, 5, /*seed=*/11);  // odd sizes: no row padding can hide
  write_png(file("a.png"), image);
  const RgbImage back = decode_image(file("a.png"));
  EXPECT_EQ(back.height, 7);
  EXPECT_EQ(back.width, 5);
  EXPECT_EQ(back.pixels_VWC, image.pixels_VWC);
}

TEST_F(ImageIo, GreyPngDecodesToEqualChannelsAndAlphaIsDropped) {
  const std::vector<uint8_t> grey_VW = {0, 17, 200, 255, 3, 99};  // 2 x 3
  write_png(file("g.png"), grey_VW.data(), /*height=*/2, /*width=*/3, /*channels=*/1);
  RgbImage back = decode_image(file("g.png"));
  ASSERT_EQ(back.height * back.width, 6);
  for (int64_t i = 0; i < 6; ++i)
    for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(back.pixels_VWC[i * 3 + c], grey_VW[i]) << "pixel " << i << " c " << c;

  const std::vector<uint8_t> rgba_VWC = {10, 20, 30, 0, 40, 50, 60, 128};  // 1 x 2, alpha 0 and 128
  write_png(file("rgba.png"), rgba_VWC.data(), /*height=*/1, /*width=*/2, /*channels=*/4);
  back = decode_image(file("rgba.png"));
  EXPECT_EQ(back.pixels_VWC, (std::vector<uint8_t>{10, 20, 30, 40, 50, 60}));
}

TEST_F(ImageIo, WritePngIntoMissingDirectoryIsIoErrorNamingTheFile) {
  const std::string path = file("no_such_dir/x.png");
  const RgbImage image = random_image(2, 2, /*seed=*/1);
  const std::string message = error_of<IoError>([&] { write_png(path, image); });
  EXPECT_TRUE(contains(message, path));
  EXPECT_TRUE(contains(message, "cannot write PNG"));
}

TEST_F(ImageIo, DecodeErrorsNameTheFileAndTheReason) {
  write_bytes(file("bad.jpg"), "definitely not a JPEG, just some bytes");
  std::string message = error_of<IoError>([&] { decode_image(file("bad.jpg")); });
  EXPECT_TRUE(contains(message, file("bad.jpg")));
  EXPECT_TRUE(contains(message, "not a decodable image"));
  message = error_of<IoError>([&] { decode_image(file("missing.png")); });
  EXPECT_TRUE(contains(message, file("missing.png")));
  EXPECT_TRUE(contains(message, "cannot open"));
  write_bytes(file("empty.png"), "");
  EXPECT_TRUE(contains(error_of<IoError>([&] { decode_image(file("empty.png")); }), "empty file"));
}

TEST_F(ImageIo, TruncatedPngIsNotDecodable) {
  write_png(file("t.png"), random_image(16, 16, /*seed=*/5));
  std::ifstream in(file("t.png"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_bytes(file("t.png"), bytes.substr(0, bytes.size() / 2));
  RgbImage out;
  std::string reason;
  EXPECT_FALSE(try_decode_image(file("t.png"), out, reason));
  EXPECT_TRUE(contains(reason, "not a decodable image")) << reason;
  EXPECT_EQ(out.height, 0);  // untouched on failure
}

// Before stb: only PNG and JPEG, and PNGs whose chunks are sound (datasets/image_io.cpp).
TEST_F(ImageIo, OtherFormatsBadCrcsAndEndlessImageDataAreRefused) {
  write_bytes(file("a.bmp"), std::string("BM") + std::string(60, '\0'));
  write_bytes(file("a.gif"), "GIF89a\x01\x00\x01\x00\x00\x00\x00;");
  for (const char* name : {"a.bmp", "a.gif"})
    EXPECT_TRUE(contains(error_of<IoError>([&] { decode_image(file(name)); }), "not a PNG or JPEG")) << name;
  write_png(file("c.png"), random_image(4, 4, /*seed=*/3));
  std::ifstream in(file("c.png"), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes[20] = static_cast<char>(bytes[20] ^ 1);  // inside IHDR: its CRC no longer matches
  write_bytes(file("c.png"), bytes);
  EXPECT_TRUE(contains(error_of<IoError>([&] { decode_image(file("c.png")); }), "CRC"));
  // a fuzzer's find (its CRCs made valid): image data that never ends made stb ask for 2 GiB
  const std::string endless = std::string(SMYRF_TEST_DATA_DIR) + "/../fuzz/regressions/image/stb_inflate_grows_without_bound_crcs_fixed.png";
  EXPECT_TRUE(contains(error_of<IoError>([&] { decode_image(endless); }), "does not inflate"));
}

// ---------------------------------------------------------------------------------------------
// image_io: resampling, crop, flip

TEST(ImageResize, FourByFourToTwoByTwoAveragesBlocksRoundingHalfUp) {
  // v(y, x, c) = 10x + y + 1 + 100c. Top-left block {1, 11, 2, 12}: 26/4 = 6.5 -> 7 (half up; half
  // to even would give 6). Top-right {21, 31, 22, 32} = 26.5 -> 27; bottom-left {3, 13, 4, 14} =
  // 8.5 -> 9; bottom-right 28.5 -> 29. Channel c adds 100 to each.
  const RgbImage in = image_of(4, 4, [](int64_t y, int64_t x, int64_t c) { return 10 * x + y + 1 + 100 * c; });
  const RgbImage out = resize_area(in, 2, 2);
  ASSERT_EQ(out.height, 2);
  ASSERT_EQ(out.width, 2);
  const std::vector<int> expected = {7, 27, 9, 29};
  for (int64_t c = 0; c < 3; ++c)
    for (int64_t i = 0; i < 4; ++i)
      EXPECT_EQ(out.pixels_VWC[i * 3 + c], expected[i] + 100 * c) << "pixel " << i << " channel " << c;
}

TEST(ImageResize, ThreeByThreeToTwoByTwoUsesFractionalCoverage) {
  // Per axis, output 0 covers input [0, 1.5): weights (1, 0.5, 0) / 1.5 = (2, 1, 0) / 3; output 1
  // covers [1.5, 3): (0, 1, 2) / 3. So out(0,0) = (4*10 + 2*20 + 2*50 + 70) / 9 = 250/9 = 27.8 -> 28,
  // out(0,1) = (2*20 + 4*40 + 70 + 2*90) / 9 = 450/9 = 50,
  // out(1,0) = (2*50 + 70 + 4*100 + 2*130) / 9 = 830/9 = 92.2 -> 92,
  // out(1,1) = (70 + 2*90 + 2*130 + 4*250) / 9 = 1510/9 = 167.8 -> 168.
  const RgbImage in = grey(3, 3, {10, 20, 40, 50, 70, 90, 100, 130, 250});
  EXPECT_EQ(channel0(resize_area(in, 2, 2)), (std::vector<int>{28, 50, 92, 168}));
}

TEST(ImageResize, FiveToTwoSplitsTheMiddlePixel) {
  // 1 x 5 -> 1 x 2: output 0 covers [0, 2.5): (2*0 + 2*10 + 1*20) / 5 = 8; output 1 covers
  // [2.5, 5): (1*20 + 2*30 + 2*45) / 5 = 34. The height axis (1 -> 1) is the identity.
  EXPECT_EQ(channel0(resize_area(grey(1, 5, {0, 10, 20, 30, 45}), 1, 2)), (std::vector<int>{8, 34}));
}

TEST(ImageResize, SameSizeIsTheIdentity) {
  const RgbImage in = random_image(5, 9, /*seed=*/3);
  const RgbImage out = resize_area(in, 5, 9);
  EXPECT_EQ(out.pixels_VWC, in.pixels_VWC);
  // A constant image stays constant at any size (weights sum to the denominator exactly).
  const RgbImage flat = image_of(13, 7, [](int64_t, int64_t, int64_t c) { return 77 + c; });
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{4, 3}, {6, 6}, {1, 1}, {20, 11}}) {
    const RgbImage r = resize_area(flat, h, w);
    for (size_t i = 0; i < r.pixels_VWC.size(); ++i) ASSERT_EQ(r.pixels_VWC[i], 77 + i % 3) << h << "x" << w;
  }
}

TEST(ImageResize, EnlargingIsBilinearWithHalfPixelCentresAndClampedEdges) {
  // 2x2 -> 3x3: src = (i + 0.5) * 2/3 - 0.5 = -1/6 (clamped to 0), 0.5, 7/6 (clamped to 1).
  // [[0, 100], [50, 251]] -> row 0: 0, 50, 100; row 1: 25, (0+100+50+251)/4 = 100.25 -> 100,
  // (100+251)/2 = 175.5 -> 176; row 2: 50, (50+251)/2 = 150.5 -> 151, 251.
  EXPECT_EQ(channel0(resize_area(grey(2, 2, {0, 100, 50, 251}), 3, 3)),
            (std::vector<int>{0, 50, 100, 25, 100, 176, 50, 151, 251}));
  // 1x2 -> 1x4: src = -0.25, 0.25, 0.75, 1.25 -> 0, 25, 75, 100.
  EXPECT_EQ(channel0(resize_area(grey(1, 2, {0, 100}), 1, 4)), (std::vector<int>{0, 25, 75, 100}));
}

TEST(ImageResize, EachAxisPicksItsOwnFilter) {
  // 4x1 -> 2x2: height shrinks (box: (0+10)/2 = 5, (20+31)/2 = 25.5 -> 26), width grows from one
  // column (bilinear clamps both outputs to it).
  EXPECT_EQ(channel0(resize_area(grey(4, 1, {0, 10, 20, 31}), 2, 2)), (std::vector<int>{5, 5, 26, 26}));
}

TEST(ImageResize, RejectsEmptyOutput) {
  const RgbImage in = random_image(2, 2, /*seed=*/2);
  EXPECT_THROW(resize_area(in, 0, 2), Error);
  EXPECT_THROW(resize_area(RgbImage{}, 2, 2), Error);
}

TEST(ImageCrop, CentreSquareOfSixByFourDropsOneRowAtTopAndBottom) {
  // v(y, x, c) = 10y + x + c. 6x4 -> 4x4 rows 1..4; 4x7 -> 4x4 columns 1..4 (floor(3/2) = 1: the
  // odd extra column goes at the right).
  const auto code = [](int64_t y, int64_t x, int64_t c) { return 10 * y + x + c; };
  const RgbImage tall = center_crop_square(image_of(6, 4, code));
  ASSERT_EQ(tall.height, 4);
  ASSERT_EQ(tall.width, 4);
  for (int64_t y = 0; y < 4; ++y)
    for (int64_t x = 0; x < 4; ++x) EXPECT_EQ(tall.at(y, x, 2), code(y + 1, x, 2)) << y << "," << x;
  const RgbImage wide = center_crop_square(image_of(4, 7, code));
  ASSERT_EQ(wide.height, 4);
  ASSERT_EQ(wide.width, 4);
  EXPECT_EQ(wide.at(0, 0, 0), 1);
  EXPECT_EQ(wide.at(3, 3, 1), 30 + 4 + 1);
  const RgbImage square = random_image(3, 3, /*seed=*/4);
  EXPECT_EQ(center_crop_square(square).pixels_VWC, square.pixels_VWC);
}

TEST(ImageFlip, MirrorsColumnsKeepingChannelOrder) {
  const auto code = [](int64_t y, int64_t x, int64_t c) { return 10 * y + x + 100 * c; };
  const RgbImage in = image_of(2, 3, code);
  const RgbImage out = flip_horizontal(in);
  for (int64_t y = 0; y < 2; ++y)
    for (int64_t x = 0; x < 3; ++x)
      for (int64_t c = 0; c < 3; ++c) EXPECT_EQ(out.at(y, x, c), code(y, 2 - x, c));
  EXPECT_EQ(flip_horizontal(out).pixels_VWC, in.pixels_VWC);
}

// ---------------------------------------------------------------------------------------------
// image_folder: listing and options

class ImageFolderTest : public test::TempDirTest {
 protected:
  ImageFolderOptions options(int64_t resolution = 4) const {
    ImageFolderOptions o;
    o.path = dir_.string();
    o.resolution = resolution;
    return o;
  }
  // n valid PNGs 0.png .. (n-1).png of size side x side with different content.
  void write_pngs(int n, int64_t side = 8) {
    for (int i = 0; i < n; ++i) write_png(file(std::to_string(i) + ".png"), random_image(side, side, 100 + i));
  }
  static std::vector<std::string> names(const ImageFolder& folder) {
    std::vector<std::string> out;
    for (size_t i = 0; i < folder.size(); ++i) out.push_back(fs::path(folder.file(i)).filename().string());
    return out;
  }
};

TEST_F(ImageFolderTest, ListsNumericNamesByValueThenOthersLexicographically) {
  for (const char* name : {"10.png", "2.png", "1.jpg", "b.png", "a10.jpeg", "A.PNG", "007.jpg", "0010.png", "notes.txt",
                           ".hidden.png", "x.gif", "png", "5.JPEG"})
    write_bytes(file(name), "x");          // listing does not decode
  fs::create_directories(dir_ / "3.png");  // a directory with an image-like name
  const ImageFolder folder = ImageFolder::open(options());
  // 7 < 10 by value; "0010.png" and "10.png" are both 10, ordered by full name ('0' < '1').
  EXPECT_EQ(names(folder), (std::vector<std::string>{"1.jpg", "2.png", "5.JPEG", "007.jpg", "0010.png", "10.png",
                                                     "A.PNG", "a10.jpeg", "b.png"}));
  EXPECT_EQ(folder.file(0), (dir_ / "1.jpg").string());
}

TEST_F(ImageFolderTest, MaxImagesKeepsTheFirstInListingOrder) {
  write_pngs(12);
  ImageFolderOptions o = options();
  o.max_images = 3;
  EXPECT_EQ(names(ImageFolder::open(o)), (std::vector<std::string>{"0.png", "1.png", "2.png"}));
  o.max_images = 50;
  EXPECT_EQ(ImageFolder::open(o).size(), 12u);
  o.max_images = 0;
  EXPECT_EQ(names(ImageFolder::open(o)).back(), "11.png");
}

TEST_F(ImageFolderTest, MissingOrEmptyFolderNamesThePathAndTheFetchDoc) {
  ImageFolderOptions o = options();
  o.path = file("nowhere");
  std::string message = error_of<IoError>([&] { ImageFolder::open(o); });
  EXPECT_TRUE(contains(message, file("nowhere")));
  EXPECT_TRUE(contains(message, "not found"));
  EXPECT_TRUE(contains(message, "scripts/fetch_celebahq.md"));

  write_bytes(file("README.txt"), "no images here");
  message = error_of<IoError>([&] { ImageFolder::open(options()); });
  EXPECT_TRUE(contains(message, dir_.string()));
  EXPECT_TRUE(contains(message, "holds no .jpg, .jpeg or .png files (1 other entries)"));
  EXPECT_TRUE(contains(message, "scripts/fetch_celebahq.md"));

  o.path = file("README.txt");  // a file, not a folder
  EXPECT_TRUE(contains(error_of<IoError>([&] { ImageFolder::open(o); }), "not a directory"));
}

TEST_F(ImageFolderTest, BadOptionsAreConfigErrors) {
  write_pngs(1);
  ImageFolderOptions o = options(/*resolution=*/0);
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { ImageFolder::open(o); }), "resolution must be >= 1"));
  o = options();
  o.on_bad_image = "skp";
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { ImageFolder::open(o); }), "did you mean 'skip'?"));
  o = options();
  o.max_images = -1;
  EXPECT_THROW(ImageFolder::open(o), ConfigError);
}

TEST(ImageFolderOptionsJson, ReadsEveryKeyAndRejectsUnknownOnes) {
  nlohmann::json j = {{"path", "data/celeba_hq/CelebA-HQ-img"},
                      {"resolution", 128},
                      {"on_bad_image", "skip"},
                      {"max_images", 500},
                      {"center_crop", false}};
  JsonReader r(j, "data", "configs/celeba.json");
  const ImageFolderOptions o = ImageFolderOptions::from_json(r);
  EXPECT_EQ(o.path, "data/celeba_hq/CelebA-HQ-img");
  EXPECT_EQ(o.resolution, 128);
  EXPECT_EQ(o.on_bad_image, "skip");
  EXPECT_EQ(o.max_images, 500);
  EXPECT_FALSE(o.center_crop);
  EXPECT_EQ(o.to_json(), j);

  // Defaults for what is left out.
  JsonReader minimal({{"path", "p"}, {"resolution", 64}}, "data", "c.json");
  const ImageFolderOptions d = ImageFolderOptions::from_json(minimal);
  EXPECT_EQ(d.on_bad_image, "error");
  EXPECT_EQ(d.max_images, 0);
  EXPECT_TRUE(d.center_crop);

  JsonReader typo({{"path", "p"}, {"resolutoin", 64}, {"resolution", 64}}, "data", "c.json");
  std::string message = error_of<ConfigError>([&] { ImageFolderOptions::from_json(typo); });
  EXPECT_TRUE(contains(message, "unknown key 'data.resolutoin'"));
  EXPECT_TRUE(contains(message, "did you mean 'resolution'?"));

  JsonReader no_resolution({{"path", "p"}}, "data", "c.json");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { ImageFolderOptions::from_json(no_resolution); }), "resolution"));
  JsonReader bad_mode({{"path", "p"}, {"resolution", 8}, {"on_bad_image", "ignore"}}, "data", "c.json");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { ImageFolderOptions::from_json(bad_mode); }), "error, skip"));
  JsonReader zero({{"path", "p"}, {"resolution", 0}}, "data", "c.json");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { ImageFolderOptions::from_json(zero); }), "'data.resolution'"));

  // A pipeline's own keys, read before from_json, are not unknown.
  JsonReader extra({{"path", "p"}, {"resolution", 8}, {"random_flip", true}}, "data", "c.json");
  bool random_flip = false;
  extra.get("random_flip", random_flip);
  EXPECT_NO_THROW(ImageFolderOptions::from_json(extra));
  EXPECT_TRUE(random_flip);
}

// ---------------------------------------------------------------------------------------------
// image_folder: loading and bad images

TEST_F(ImageFolderTest, LoadCropsAndResizesToTheResolution) {
  // 8x12 -> central 8x8 (columns 2..9) -> 4x4 by 2x2 block means.
  const RgbImage wide = random_image(8, 12, /*seed=*/9);
  write_png(file("0.png"), wide);
  const RgbImage loaded = ImageFolder::open(options(/*resolution=*/4)).load(0);
  EXPECT_EQ(loaded.pixels_VWC, resize_area(center_crop_square(wide), 4, 4).pixels_VWC);
  ASSERT_EQ(loaded.height, 4);
  const int sum = wide.at(0, 2, 1) + wide.at(0, 3, 1) + wide.at(1, 2, 1) + wide.at(1, 3, 1);
  EXPECT_EQ(loaded.at(0, 0, 1), (2 * sum + 4) / 8);  // round half up of sum / 4
}

TEST_F(ImageFolderTest, CorruptFileIsAnErrorNamingItAndSkipCountsIt) {
  write_pngs(3);
  write_bytes(file("3.jpg"), "\xff\xd8\xff\xe0 garbage after a JPEG start marker");
  write_png(file("4.png"), random_image(8, 8, /*seed=*/104));

  ImageFolderOptions o = options();
  const ImageFolder strict = ImageFolder::open(o);
  ASSERT_EQ(strict.size(), 5u);
  std::string message = error_of<IoError>([&] { load_all(strict); });
  EXPECT_TRUE(contains(message, file("3.jpg")));
  EXPECT_TRUE(contains(message, "not a decodable image"));
  EXPECT_TRUE(contains(message, "data.on_bad_image = \"skip\""));
  message = error_of<IoError>([&] { strict.load(3); });  // load() refuses whatever on_bad_image says
  EXPECT_TRUE(contains(message, file("3.jpg")));

  o.on_bad_image = "skip";
  const ImageFolder lenient = ImageFolder::open(o);
  const LoadedImages loaded = load_all(lenient);
  EXPECT_EQ(loaded.count, 4);
  EXPECT_EQ(loaded.skipped, 1u);
  ASSERT_EQ(loaded.skipped_images.size(), 1u);
  EXPECT_EQ(loaded.skipped_images[0].file, file("3.jpg"));
  EXPECT_TRUE(contains(loaded.skipped_images[0].reason, "not a decodable image"));
  EXPECT_EQ(loaded.files, (std::vector<std::string>{file("0.png"), file("1.png"), file("2.png"), file("4.png")}));
  // The slot after the skipped one holds 4.png, not a gap.
  const size_t image_bytes = 4 * 4 * 3;
  ASSERT_EQ(loaded.pixels_BVWC.size(), 4 * image_bytes);
  const RgbImage fourth = lenient.load(4);
  EXPECT_TRUE(
      std::equal(fourth.pixels_VWC.begin(), fourth.pixels_VWC.end(), loaded.pixels_BVWC.begin() + 3 * image_bytes));
}

TEST_F(ImageFolderTest, FirstBadImageInListingOrderIsReportedForAnyThreadCount) {
  // 5.png is slow to find bad (a large non-square image, bad only after decoding with center_crop
  // off), 6.png and 7.png are instantly bad (garbage): with several threads 6 usually fails first
  // in time, and the error must still name 5.
  write_pngs(16, /*side=*/6);
  write_png(file("5.png"), random_image(400, 520, /*seed=*/55));
  for (const char* name : {"6.png", "7.png"}) write_bytes(file(name), "broken");
  write_bytes(file("11.png"), "");
  ImageFolderOptions o = options();
  o.center_crop = false;
  const ImageFolder folder = ImageFolder::open(o);
  for (size_t threads : {1u, 2u, 4u, 8u}) {
    SCOPED_TRACE(threads);
    const std::string message = error_of<IoError>([&] { load_all(folder, {}, threads); });
    EXPECT_TRUE(contains(message, file("5.png") + "': it is 400x520"));
    for (const char* later : {"6.png", "7.png", "11.png"}) EXPECT_FALSE(contains(message, later));
  }
  o.on_bad_image = "skip";
  const LoadedImages loaded = load_all(ImageFolder::open(o), {}, 3);
  EXPECT_EQ(loaded.count, 12);
  ASSERT_EQ(loaded.skipped_images.size(), 4u);
  EXPECT_EQ(loaded.skipped_images[0].file, file("5.png"));
  EXPECT_EQ(loaded.skipped_images[3].file, file("11.png"));
  EXPECT_TRUE(contains(loaded.skipped_images[3].reason, "empty file"));
}

TEST_F(ImageFolderTest, NonSquareIsBadOnlyWithoutCentreCrop) {
  write_png(file("0.png"), random_image(8, 8, /*seed=*/1));
  write_png(file("1.png"), random_image(6, 9, /*seed=*/2));
  ImageFolderOptions o = options();
  EXPECT_EQ(load_all(ImageFolder::open(o)).count, 2);
  o.center_crop = false;
  const std::string message = error_of<IoError>([&] { load_all(ImageFolder::open(o)); });
  EXPECT_TRUE(contains(message, file("1.png")));
  EXPECT_TRUE(contains(message, "6x9 (height x width), not square"));
  o.on_bad_image = "skip";
  const LoadedImages loaded = load_all(ImageFolder::open(o));
  EXPECT_EQ(loaded.count, 1);
  EXPECT_EQ(loaded.files, std::vector<std::string>{file("0.png")});
}

TEST_F(ImageFolderTest, EveryImageBadIsAnErrorEvenWhenSkipping) {
  write_bytes(file("0.jpg"), "a");
  write_bytes(file("1.jpg"), "b");
  ImageFolderOptions o = options();
  o.on_bad_image = "skip";
  const std::string message = error_of<IoError>([&] { load_all(ImageFolder::open(o)); });
  EXPECT_TRUE(contains(message, "all 2 images in '" + dir_.string() + "' are bad"));
  EXPECT_TRUE(contains(message, file("0.jpg")));
}

TEST_F(ImageFolderTest, SmallImagesAreUpscaledAndCounted) {
  write_png(file("0.png"), grey(2, 2, {0, 100, 50, 251}));
  write_png(file("1.png"), random_image(6, 6, /*seed=*/7));
  const LoadedImages loaded = load_all(ImageFolder::open(options(/*resolution=*/3)));
  EXPECT_EQ(loaded.count, 2);
  EXPECT_EQ(loaded.upscaled, 1u);
  // The bilinear hand case of EnlargingIsBilinearWithHalfPixelCentresAndClampedEdges, channel 0.
  const std::vector<int> expected = {0, 50, 100, 25, 100, 176, 50, 151, 251};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(loaded.pixels_BVWC[i * 3], expected[i]) << i;
}

// ---------------------------------------------------------------------------------------------
// The fixture tests/data/celebahq_tiny

ImageFolderOptions fixture_options(int64_t resolution) {
  ImageFolderOptions o;
  o.path = kFixtureDir;
  o.resolution = resolution;
  return o;
}

TEST(ImageFixture, DecodesToTheGeneratorsFormulas) {
  // PNGs are exact: background R = round(255x/(w-1)), G = round(255y/(h-1)), B = 37k mod 256.
  RgbImage img = decode_image(kFixtureDir + "/11.png");  // k = 11, 64x64: B = 151
  ASSERT_EQ(img.height, 64);
  ASSERT_EQ(img.width, 64);
  EXPECT_EQ((std::vector<int>{img.at(0, 0, 0), img.at(0, 0, 1), img.at(0, 0, 2)}), (std::vector<int>{0, 0, 151}));
  EXPECT_EQ((std::vector<int>{img.at(0, 63, 0), img.at(63, 0, 1), img.at(63, 63, 0), img.at(63, 63, 1)}),
            (std::vector<int>{255, 255, 255, 255}));
  EXPECT_EQ(img.at(0, 1, 0), 4);  // round(255/63) = round(4.05)
  // 8.png is RGBA with alpha 64 on the right edge: the colour must come through unchanged.
  img = decode_image(kFixtureDir + "/8.png");  // k = 8: B = 40
  EXPECT_EQ((std::vector<int>{img.at(0, 47, 0), img.at(0, 47, 1), img.at(0, 47, 2)}), (std::vector<int>{255, 0, 40}));
  // 9.png is greyscale: round(255 (x + y) / 78); (0, 39) is 127.5, which Python rounds to 128.
  img = decode_image(kFixtureDir + "/9.png");
  EXPECT_EQ((std::vector<int>{img.at(0, 39, 0), img.at(0, 39, 1), img.at(0, 39, 2), img.at(39, 39, 2)}),
            (std::vector<int>{128, 128, 128, 255}));
  // JPEGs are lossy: corners within 8 levels. 7.jpg is 48 high and 40 wide.
  img = decode_image(kFixtureDir + "/7.jpg");  // k = 7: B = 259 mod 256 = 3
  ASSERT_EQ(img.height, 48);
  ASSERT_EQ(img.width, 40);
  EXPECT_NEAR(img.at(47, 39, 0), 255, 8);
  EXPECT_NEAR(img.at(47, 39, 1), 255, 8);
  EXPECT_NEAR(img.at(47, 39, 2), 3, 8);
  EXPECT_NEAR(img.at(0, 0, 0), 0, 8);
}

TEST(ImageFixture, LoadsAllTwelveAtResolution32InNumericOrder) {
  const ImageFolder folder = ImageFolder::open(fixture_options(32));
  ASSERT_EQ(folder.size(), 12u);  // README.md is not an image
  std::vector<size_t> progress_done;
  const LoadedImages loaded = load_all(folder, [&](size_t done, size_t total) {
    EXPECT_EQ(total, 12u);
    progress_done.push_back(done);
  });
  EXPECT_EQ(loaded.count, 12);
  EXPECT_EQ(loaded.skipped, 0u);
  EXPECT_EQ(loaded.upscaled, 1u);  // 10.png is 24x24
  EXPECT_EQ(loaded.pixels_BVWC.size(), 12u * 32 * 32 * 3);
  ASSERT_EQ(loaded.files.size(), 12u);
  EXPECT_EQ(fs::path(loaded.files[0]).filename().string(), "0.jpg");
  EXPECT_EQ(fs::path(loaded.files[7]).filename().string(), "7.jpg");
  EXPECT_EQ(fs::path(loaded.files[8]).filename().string(), "8.png");
  EXPECT_EQ(fs::path(loaded.files[11]).filename().string(), "11.png");
  ASSERT_FALSE(progress_done.empty());
  EXPECT_EQ(progress_done.back(), 12u);
  EXPECT_TRUE(std::is_sorted(progress_done.begin(), progress_done.end()));
  // 11.png 64 -> 32 averages 2x2 blocks: (0,0): R = G = (0 + 4 + 0 + 4)/4 = 2; (0,31): R =
  // (round(255*62/63) + 255)/2 = (251 + 255)/2 = 253, G = 2; B = 151 everywhere on the background.
  const uint8_t* eleven = loaded.pixels_BVWC.data() + 11 * 32 * 32 * 3;
  EXPECT_EQ((std::vector<int>{eleven[0], eleven[1], eleven[2]}), (std::vector<int>{2, 2, 151}));
  EXPECT_EQ((std::vector<int>{eleven[31 * 3], eleven[31 * 3 + 1], eleven[31 * 3 + 2]}),
            (std::vector<int>{253, 2, 151}));
}

TEST(ImageFixture, ThreadCountDoesNotChangeTheBytes) {
  const ImageFolder folder = ImageFolder::open(fixture_options(32));
  std::vector<uint8_t> sequential;
  for (size_t i = 0; i < folder.size(); ++i) {
    const RgbImage image = folder.load(i);
    sequential.insert(sequential.end(), image.pixels_VWC.begin(), image.pixels_VWC.end());
  }
  for (size_t threads : {1u, 3u, 8u, 0u}) {
    SCOPED_TRACE(threads);
    EXPECT_EQ(load_all(folder, {}, threads).pixels_BVWC, sequential);
  }
  // Different images really differ (the comparison above could not pass on a constant buffer).
  EXPECT_FALSE(std::equal(sequential.begin(), sequential.begin() + 32 * 32 * 3, sequential.begin() + 32 * 32 * 3));
}

TEST(ImageFixture, WithoutCentreCropTheNonSquareOneIsSkipped) {
  ImageFolderOptions o = fixture_options(16);
  o.center_crop = false;
  o.on_bad_image = "skip";
  o.max_images = 9;
  const LoadedImages loaded = load_all(ImageFolder::open(o));
  EXPECT_EQ(loaded.count, 8);
  ASSERT_EQ(loaded.skipped_images.size(), 1u);
  EXPECT_EQ(fs::path(loaded.skipped_images[0].file).filename().string(), "7.jpg");
  EXPECT_EQ(fs::path(loaded.files.back()).filename().string(), "8.png");
}

}  // namespace
}  // namespace smyrf
