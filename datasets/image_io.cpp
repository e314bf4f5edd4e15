// Image decoding, PNG writing and resampling (see image_io.h for the conventions and filters).
//
// stb comes from Debian's libstb (libstb.so carries the implementations, so no *_IMPLEMENTATION
// here). It is thread-safe for what we call: stbi_load_from_memory keeps its failure reason in a
// thread-local (stb_image >= 2.26 with GCC), and we never touch its global settings.
//
// resize_area, per axis: a list of (input index, integer weight) taps per output index and one
// denominator D for the axis (identity: D = 1; box: D = in, weights = overlap lengths in units of
// 1/out pixel; bilinear: D = 2*out, weights from src = ((2i+1)*in - out) / (2*out)). The two
// separable passes accumulate in int64 (at most 255 * D_h * D_w < 2^59 for sides <= 2^24) and the
// sum is rounded half up once: (2*acc + D) / (2*D).
//
// Before stb sees a file, container_problem() accepts only PNG and JPEG by their signatures, and
// checks a PNG the way libpng would: every chunk's CRC, IHDR first, and the image data inflated by
// zlib to completion within the size IHDR implies. stb's own inflater reads past the end of a
// truncated stream as zeros and grows its buffer without bound (a fuzzer's 471-byte file made it ask
// for 2 GiB: tests/fuzz/regressions/image/).
// Tested by tests/light/test_image_folder.cpp and the fuzz target tests/fuzz/fuzz_image.cpp.
#include "datasets/image_io.h"

#include <fmt/format.h>
#include <stb_image.h>
#include <stb_image_write.h>
#include <zlib.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <iterator>

#include "core/util/check.h"

namespace smyrf {

namespace {

constexpr int64_t kMaxSide = int64_t{1} << 24;  // stb_image's own limit (STBI_MAX_DIMENSIONS)

struct Tap {
  int64_t index;
  int64_t weight;
};

// Taps of output i are taps[begin[i] .. begin[i+1]); their weights sum to denominator.
struct AxisFilter {
  int64_t denominator = 1;
  std::vector<size_t> begin;
  std::vector<Tap> taps;
};

AxisFilter make_axis_filter(int64_t in, int64_t out) {
  AxisFilter f;
  f.begin.reserve(static_cast<size_t>(out) + 1);
  if (out == in) {
    for (int64_t i = 0; i < out; ++i) {
      f.begin.push_back(f.taps.size());
      f.taps.push_back({i, 1});
    }
  } else if (out < in) {
    // Box: output i spans [i*in, (i+1)*in) and input j spans [j*out, (j+1)*out), in units of
    // 1/out input pixel; the overlaps sum to in.
    f.denominator = in;
    for (int64_t i = 0; i < out; ++i) {
      f.begin.push_back(f.taps.size());
      const int64_t lo = i * in, hi = (i + 1) * in;
      for (int64_t j = lo / out; j * out < hi; ++j) {
        const int64_t overlap = std::min(hi, (j + 1) * out) - std::max(lo, j * out);
        if (overlap > 0) f.taps.push_back({j, overlap});
      }
    }
  } else {
    // Bilinear: src = (i + 0.5) * in/out - 0.5 = p / (2*out) with p = (2i+1)*in - out; left of
    // pixel 0's centre (p <= 0) clamps to pixel 0, right of the last centre to the last pixel.
    const int64_t d = 2 * out;
    f.denominator = d;
    for (int64_t i = 0; i < out; ++i) {
      f.begin.push_back(f.taps.size());
      const int64_t p = (2 * i + 1) * in - out;
      if (p <= 0) {
        f.taps.push_back({0, d});
        continue;
      }
      const int64_t j0 = p / d, frac = p % d;  // j0 <= in - 1 since p < 2*out*in - out
      const int64_t j1 = std::min(j0 + 1, in - 1);
      if (frac == 0 || j1 == j0) {
        f.taps.push_back({j0, d});
      } else {
        f.taps.push_back({j0, d - frac});
        f.taps.push_back({j1, frac});
      }
    }
  }
  f.begin.push_back(f.taps.size());
  return f;
}

bool read_file_bytes(const std::string& path, std::vector<unsigned char>& bytes, std::string& reason) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    reason = "cannot open the file for reading (missing, or no permission)";
    return false;
  }
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad()) {
    reason = "read error";
    return false;
  }
  if (bytes.empty()) {
    reason = "empty file (0 bytes)";
    return false;
  }
  if (bytes.size() > static_cast<size_t>(INT_MAX)) {
    reason = fmt::format("file of {} bytes is larger than the decoder's 2 GiB limit", bytes.size());
    return false;
  }
  return true;
}

void check_image(const RgbImage& image, const char* what) {
  SMYRF_CHECK(image.height >= 1 && image.width >= 1 &&
                  image.pixels_VWC.size() == static_cast<size_t>(image.height * image.width * 3),
              "{}: image must be at least 1x1 with height*width*3 = {}*{}*3 bytes, got {} bytes", what, image.height,
              image.width, image.pixels_VWC.size());
}

uint32_t big_endian_u32(const unsigned char* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Inflates `deflated` completely into at most `limit` bytes; false when the stream is corrupt,
// truncated or longer.
bool inflates_within(const std::vector<unsigned char>& deflated, uint64_t limit) {
  z_stream z{};
  if (inflateInit(&z) != Z_OK) return false;
  std::vector<unsigned char> out(64 * 1024);
  z.next_in = const_cast<unsigned char*>(deflated.data());
  z.avail_in = static_cast<uInt>(deflated.size());
  uint64_t total = 0;
  int rc = Z_OK;
  while (rc == Z_OK && total <= limit) {
    z.next_out = out.data();
    z.avail_out = static_cast<uInt>(out.size());
    rc = inflate(&z, Z_NO_FLUSH);
    total += out.size() - z.avail_out;
    if (rc == Z_BUF_ERROR && z.avail_in == 0) break;  // truncated: no more input, no end
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END && total <= limit;
}

// Why a PNG's chunks are unsound (a CRC, a chunk past the end, no IHDR first, image data that does
// not inflate to what IHDR implies), or "".
std::string png_problem(const std::vector<unsigned char>& bytes) {
  size_t at = 8;
  std::vector<unsigned char> deflated;
  uint64_t raw_bytes = 0;
  bool ended = false;
  while (!ended) {
    if (bytes.size() - at < 12) return "it ends inside a chunk (truncated)";
    const uint32_t length = big_endian_u32(&bytes[at]);
    if (length > bytes.size() - at - 12) return "a chunk runs past the end of the file (truncated)";
    const unsigned char* type = &bytes[at + 4];
    const unsigned char* data = type + 4;
    const uint32_t stored_crc = big_endian_u32(data + length);
    if (crc32(0, type, length + 4) != stored_crc) return "a chunk's CRC does not match its data (corrupt)";
    const std::string name(reinterpret_cast<const char*>(type), 4);
    if (at == 8 && (name != "IHDR" || length != 13)) return "the first chunk is not a 13-byte IHDR";
    if (name == "IHDR") {
      const uint64_t width = big_endian_u32(data), height = big_endian_u32(data + 4);
      const uint64_t depth = data[8], samples = data[9] == 0 || data[9] == 3 ? 1 : data[9] == 4 ? 2 : data[9] == 2 ? 3 : 4;
      // rows of filter byte + packed samples; Adam7 interlacing adds at most a filter byte per pass row
      raw_bytes = height * (1 + (width * samples * depth + 7) / 8) + 7 * (height + 8);
    } else if (name == "IDAT") {
      deflated.insert(deflated.end(), data, data + length);
    }
    ended = name == "IEND";
    at += 12 + length;
  }
  if (!inflates_within(deflated, raw_bytes)) return "its image data does not inflate to the size its header gives";
  return "";
}

// Only PNG and JPEG, by signature; PNGs checked chunk by chunk (png_problem).
std::string container_problem(const std::vector<unsigned char>& bytes) {
  static const unsigned char kPng[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  static const unsigned char kJpeg[] = {0xff, 0xd8, 0xff};
  if (bytes.size() >= 8 && std::equal(kPng, kPng + 8, bytes.begin())) return png_problem(bytes);
  if (bytes.size() >= 3 && std::equal(kJpeg, kJpeg + 3, bytes.begin())) return "";
  return "not a PNG or JPEG file (the loader reads only those)";
}

}  // namespace

bool try_decode_image(const std::string& path, RgbImage& out, std::string& reason) {
  std::vector<unsigned char> bytes;
  if (!read_file_bytes(path, bytes, reason)) return false;
  if (const std::string problem = container_problem(bytes); !problem.empty()) {
    reason = fmt::format("not a decodable image ({})", problem);
    return false;
  }
  const int length = static_cast<int>(bytes.size());
  int width = 0, height = 0, channels_in_file = 0;
  // Header first, so that a huge image is refused before its buffer is allocated.
  if (stbi_info_from_memory(bytes.data(), length, &width, &height, &channels_in_file) == 0) {
    reason = fmt::format("not a decodable image ({}); the file is corrupt or not a JPEG/PNG", stbi_failure_reason());
    return false;
  }
  if (static_cast<int64_t>(width) * height > kMaxDecodePixels) {
    reason = fmt::format("{}x{} pixels is more than the {} the loader accepts", height, width, kMaxDecodePixels);
    return false;
  }
  unsigned char* pixels = stbi_load_from_memory(bytes.data(), length, &width, &height, &channels_in_file, 3);
  if (pixels == nullptr) {
    reason = fmt::format("not a decodable image ({}); the file is corrupt or truncated", stbi_failure_reason());
    return false;
  }
  out.height = height;
  out.width = width;
  out.pixels_VWC.assign(pixels, pixels + static_cast<size_t>(height) * static_cast<size_t>(width) * 3);
  stbi_image_free(pixels);
  return true;
}

RgbImage decode_image(const std::string& path) {
  RgbImage image;
  std::string reason;
  if (!try_decode_image(path, image, reason)) throw IoError(fmt::format("image '{}': {}", path, reason));
  return image;
}

void write_png(const std::string& path, const uint8_t* pixels_VWC, int64_t height, int64_t width, int64_t channels) {
  SMYRF_CHECK(channels >= 1 && channels <= 4, "write_png '{}': channels must be 1..4, got {}", path, channels);
  SMYRF_CHECK(height >= 1 && width >= 1 && height <= kMaxSide && width <= kMaxSide,
              "write_png '{}': height and width must be in 1..{}, got {}x{}", path, kMaxSide, height, width);
  SMYRF_CHECK(pixels_VWC != nullptr, "write_png '{}': pixels_VWC is null", path);
  const int stride_bytes = static_cast<int>(width * channels);
  if (stbi_write_png(path.c_str(), static_cast<int>(width), static_cast<int>(height), static_cast<int>(channels),
                     pixels_VWC, stride_bytes) == 0) {
    throw IoError(
        fmt::format("cannot write PNG '{}': check that its directory exists and is writable and that the "
                    "disk has space",
                    path));
  }
}

void write_png(const std::string& path, const RgbImage& image) {
  check_image(image, "write_png");
  write_png(path, image.pixels_VWC.data(), image.height, image.width, /*channels=*/3);
}

RgbImage resize_area(const RgbImage& image, int64_t out_h, int64_t out_w) {
  check_image(image, "resize_area");
  SMYRF_CHECK(out_h >= 1 && out_w >= 1 && out_h <= kMaxSide && out_w <= kMaxSide,
              "resize_area: output size must be in 1..{}, got {}x{}", kMaxSide, out_h, out_w);
  SMYRF_CHECK(image.height <= kMaxSide && image.width <= kMaxSide, "resize_area: input {}x{} is larger than {}",
              image.height, image.width, kMaxSide);
  const int64_t in_h = image.height, in_w = image.width;
  if (in_h == out_h && in_w == out_w) return image;

  const AxisFilter fx = make_axis_filter(in_w, out_w);
  const AxisFilter fy = make_axis_filter(in_h, out_h);

  // Pass 1, along x: rows_VWC[y][ox][c] = sum_x wx * in[y][x][c] (scaled by fx.denominator).
  std::vector<int64_t> rows_VWC(static_cast<size_t>(in_h * out_w * 3), 0);
  for (int64_t y = 0; y < in_h; ++y) {
    const uint8_t* src = image.pixels_VWC.data() + y * in_w * 3;
    int64_t* dst = rows_VWC.data() + y * out_w * 3;
    for (int64_t ox = 0; ox < out_w; ++ox) {
      int64_t acc[3] = {0, 0, 0};
      for (size_t t = fx.begin[ox]; t < fx.begin[ox + 1]; ++t) {
        const uint8_t* px = src + fx.taps[t].index * 3;
        for (int c = 0; c < 3; ++c) acc[c] += fx.taps[t].weight * px[c];
      }
      for (int c = 0; c < 3; ++c) dst[ox * 3 + c] = acc[c];
    }
  }

  // Pass 2, along y, then one round-half-up division by the product of the denominators.
  const int64_t denominator = fx.denominator * fy.denominator;
  RgbImage out;
  out.height = out_h;
  out.width = out_w;
  out.pixels_VWC.resize(static_cast<size_t>(out_h * out_w * 3));
  std::vector<int64_t> acc(static_cast<size_t>(out_w * 3));
  for (int64_t oy = 0; oy < out_h; ++oy) {
    std::fill(acc.begin(), acc.end(), 0);
    for (size_t t = fy.begin[oy]; t < fy.begin[oy + 1]; ++t) {
      const int64_t* row = rows_VWC.data() + fy.taps[t].index * out_w * 3;
      const int64_t w = fy.taps[t].weight;
      for (int64_t k = 0; k < out_w * 3; ++k) acc[k] += w * row[k];
    }
    uint8_t* dst = out.pixels_VWC.data() + oy * out_w * 3;
    for (int64_t k = 0; k < out_w * 3; ++k) {
      const int64_t rounded = (2 * acc[k] + denominator) / (2 * denominator);  // acc >= 0: floor(v + 1/2)
      dst[k] = static_cast<uint8_t>(std::min<int64_t>(rounded, 255));
    }
  }
  return out;
}

RgbImage center_crop_square(const RgbImage& image) {
  check_image(image, "center_crop_square");
  const int64_t side = std::min(image.height, image.width);
  if (image.height == image.width) return image;
  const int64_t top = (image.height - side) / 2, left = (image.width - side) / 2;
  RgbImage out;
  out.height = side;
  out.width = side;
  out.pixels_VWC.resize(static_cast<size_t>(side * side * 3));
  for (int64_t y = 0; y < side; ++y) {
    const uint8_t* src = image.pixels_VWC.data() + ((top + y) * image.width + left) * 3;
    std::copy(src, src + side * 3, out.pixels_VWC.data() + y * side * 3);
  }
  return out;
}

RgbImage flip_horizontal(const RgbImage& image) {
  check_image(image, "flip_horizontal");
  RgbImage out = image;
  for (int64_t y = 0; y < image.height; ++y) {
    const uint8_t* src = image.pixels_VWC.data() + y * image.width * 3;
    uint8_t* dst = out.pixels_VWC.data() + y * image.width * 3;
    for (int64_t x = 0; x < image.width; ++x) std::copy(src + x * 3, src + x * 3 + 3, dst + (image.width - 1 - x) * 3);
  }
  return out;
}

}  // namespace smyrf
