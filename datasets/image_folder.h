// Image-folder loader for CelebA-HQ as distributed: one flat folder of numbered images, e.g.
// CelebAMask-HQ's CelebA-HQ-img/{0..29999}.jpg at 1024x1024, or a pre-resized copy in PNG or JPEG
// (scripts/fetch_celebahq.md says how to get it). Each image is decoded to RGB (image_io.h),
// centre-cropped to a square, and resized to resolution x resolution (area average when shrinking,
// bilinear when enlarging).
//
// Listing: regular files whose extension is .jpg, .jpeg or .png in any case; hidden files (".x")
// and subdirectories are skipped, other files ignored. Order: names whose stem is all digits first,
// by numeric value ("2.png" before "10.png"; equal values by full name), then the other names in
// byte-wise lexicographic order; so index i is the same on every machine and file system.
// max_images > 0 keeps the first max_images files of that order (before decoding).
//
// Bad images: a file that cannot be read or decoded, or a non-square image when center_crop is
// false. on_bad_image = "error": IoError naming the file, the reason, and the fix
// (data.on_bad_image = "skip"); "skip": left out and listed in LoadedImages::skipped. An image
// smaller than the resolution is not bad: it is upscaled (bilinear) and counted in `upscaled`.
// Missing or image-less folder: IoError naming the path and pointing at scripts/fetch_celebahq.md.
//
// load_all returns pixels_BVWC [N, R, R, 3] uint8 (N * R * R * 3 bytes: 30,000 images at R = 128
// are 1.47 GB), decoding on up to hardware_concurrency() threads; the result is identical for any
// thread count (each image goes to its own slot, skipped ones are removed in listing order).
// Tested by tests/light/test_image_folder.cpp on tests/data/celebahq_tiny and temporary folders.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "datasets/image_io.h"

namespace smyrf {

class JsonReader;

struct ImageFolderOptions {
  std::string path;                    // required: the folder of images
  int64_t resolution = 0;              // required: output side R (CelebA-HQ BigGAN: 128)
  std::string on_bad_image = "error";  // "error" | "skip"
  int64_t max_images = 0;              // 0 = all
  bool center_crop = true;             // false: a non-square image is bad

  // Reads "path", "resolution", "on_bad_image", "max_images", "center_crop" and then calls
  // reader.finish(), so any other key is a ConfigError with a suggestion. A pipeline with more
  // keys in the same object reads them from `reader` before calling this.
  static ImageFolderOptions from_json(JsonReader& reader);
  nlohmann::json to_json() const;
};

struct SkippedImage {
  std::string file;    // full path
  std::string reason;  // why it is bad
};

struct LoadedImages {
  int64_t resolution = 0;
  int64_t count = 0;                 // N, images kept
  std::vector<uint8_t> pixels_BVWC;  // N * R * R * 3
  std::vector<std::string> files;    // N full paths, in order
  size_t skipped = 0;                // == skipped_images.size()
  std::vector<SkippedImage> skipped_images;
  size_t upscaled = 0;  // kept images whose square side was below the resolution
};

class ImageFolder {
 public:
  // Checks the options (ConfigError) and lists the folder (IoError when missing or empty).
  static ImageFolder open(const ImageFolderOptions& options);

  size_t size() const { return files_.size(); }
  const ImageFolderOptions& options() const { return options_; }
  std::string file(size_t i) const;  // full path of image i
  // Image i decoded, centre-cropped and resized to resolution x resolution. A bad image is an
  // IoError (whatever on_bad_image says: skipping is load_all's job).
  RgbImage load(size_t i) const;
  // As load, but returns false and sets `reason` for a bad image; `upscaled` tells whether the
  // square side was below the resolution. Thread-safe.
  bool try_load(size_t i, RgbImage& out, std::string& reason, bool* upscaled = nullptr) const;

 private:
  ImageFolderOptions options_;
  std::vector<std::string> files_;
};

// All images of the folder (see the top of this file). progress(done, total) is called on the
// calling thread with done nondecreasing, ending with done == total (unless an error stops it).
// num_threads = 0: std::thread::hardware_concurrency(); always at most size() threads.
LoadedImages load_all(const ImageFolder& folder, const std::function<void(size_t done, size_t total)>& progress = {},
                      size_t num_threads = 0);

}  // namespace smyrf
