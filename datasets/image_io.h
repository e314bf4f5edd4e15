// Image I/O and resampling for the image datasets (torch-free): decode JPEG/PNG to 8-bit RGB, write
// PNG, crop, flip, and resize with an exact area (box) filter for downscaling.
//
// Pixels are uint8, row-major, channels last: pixels_VWC[(y * width + x) * 3 + c], c = R, G, B.
// Decoding is stb_image (Debian libstb-dev): baseline and progressive JPEG, 8/16-bit PNG. Grey
// images become R = G = B, an alpha channel is dropped (not composited: PIL's convert("RGB") does
// the same), 16-bit samples keep their high byte, EXIF orientation is ignored (CelebA-HQ has none).
//
// resize_area picks the filter per axis:
//   out < in   area (box) average: output pixel i covers input [i*in/out, (i+1)*in/out) and each
//              input pixel weighs by the length of its overlap with it (fractional coverage), the
//              filter of OpenCV's INTER_AREA when shrinking. PIL's Image.BOX is the same only when
//              in/out is an integer (1024 -> 128): at other ratios it gives each input pixel whose
//              centre lies in the span weight 1 instead of its overlap;
//   out > in   bilinear with half-pixel centres (src = (i + 0.5) * in/out - 0.5, clamped at the
//              edges), as PIL's BILINEAR and OpenCV's INTER_LINEAR when enlarging;
//   out == in  identity.
// Checked once against OpenCV 5.0 and Pillow 13 on the fixture images at sizes 7..97: within 1
// level of INTER_AREA / INTER_LINEAR / BILINEAR everywhere, and of BOX at integer ratios.
// All weights are integers over one denominator per axis, so the result is the exact rational
// weighted mean rounded half up (x.5 -> x+1) once, at the end: no float error, no intermediate
// rounding (PIL rounds between its two passes and may differ by one level).
// Tested by tests/light/test_image_folder.cpp (hand-computed cases, PNG round trip).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace smyrf {

struct RgbImage {
  int64_t height = 0;
  int64_t width = 0;
  std::vector<uint8_t> pixels_VWC;  // height * width * 3

  uint8_t at(int64_t y, int64_t x, int64_t c) const { return pixels_VWC[static_cast<size_t>((y * width + x) * 3 + c)]; }
};

// Decodes a JPEG or PNG file (stb_image also reads BMP, GIF, TGA, PSD, PNM) to RGB.
// IoError naming the file: missing or unreadable, empty, not decodable (with stb's reason), larger
// than kMaxDecodePixels.
RgbImage decode_image(const std::string& path);
// As decode_image, but returns false and sets `reason` (a phrase without the path) instead of
// throwing; out is only written on success. Safe to call from several threads at once.
bool try_decode_image(const std::string& path, RgbImage& out, std::string& reason);
constexpr int64_t kMaxDecodePixels = int64_t{1} << 26;  // 8192^2: a 192 MiB RGB buffer (CelebA-HQ is 1024^2)

// Writes a PNG with `channels` (1 grey, 2 grey+alpha, 3 RGB, 4 RGBA) interleaved channels per pixel,
// rows of width * channels bytes. IoError naming the file when it cannot be written (missing
// directory, no permission, disk full).
void write_png(const std::string& path, const uint8_t* pixels_VWC, int64_t height, int64_t width, int64_t channels);
void write_png(const std::string& path, const RgbImage& image);

// Resizes to out_h x out_w, area average when shrinking and bilinear when enlarging, each axis on
// its own (see the top of this file). out_h, out_w >= 1.
RgbImage resize_area(const RgbImage& image, int64_t out_h, int64_t out_w);

// The central min(h, w) square. When h - w (or w - h) is odd the extra row (column) is dropped at
// the bottom (right): the crop starts at floor((h - side) / 2), floor((w - side) / 2).
RgbImage center_crop_square(const RgbImage& image);

// Mirror left-right: out(y, x) = in(y, width - 1 - x).
RgbImage flip_horizontal(const RgbImage& image);

}  // namespace smyrf
