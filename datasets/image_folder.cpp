// Image-folder loader (see image_folder.h for the listing order, bad-image rules and errors).
//
// load_all: workers take indices from one atomic counter and write image i into slot i of the
// output, so the bytes never depend on which thread decoded what; skipped slots are squeezed out
// afterwards in index order. With on_bad_image = "error" the first bad image stops the workers
// from taking new indices; every index below it was already taken and is finished, so the image
// reported is the first bad one in listing order whatever the thread count.
// Tested by tests/light/test_image_folder.cpp.
#include "datasets/image_folder.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string_view>
#include <system_error>
#include <thread>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"

namespace smyrf {

namespace {

namespace fs = std::filesystem;

const std::vector<std::string> kBadImageModes = {"error", "skip"};
constexpr const char* kFetchDoc = "scripts/fetch_celebahq.md";

bool is_image_name(const std::string& name) {
  const size_t dot = name.rfind('.');
  if (dot == std::string::npos || dot == 0) return false;
  std::string ext = name.substr(dot + 1);
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == "jpg" || ext == "jpeg" || ext == "png";
}

// The stem's digits without leading zeros ("000" becomes "0"), or "" when the stem is not all
// digits. Numbers compare as (length, digits), so no stem is too long to order.
std::string numeric_key(const std::string& name) {
  const std::string_view stem = std::string_view(name).substr(0, name.rfind('.'));
  if (stem.empty() || !std::all_of(stem.begin(), stem.end(), [](char c) { return c >= '0' && c <= '9'; })) return "";
  const size_t first = std::min(stem.find_first_not_of('0'), stem.size() - 1);
  return std::string(stem.substr(first));
}

bool listing_less(const std::string& a, const std::string& b) {
  const std::string ka = numeric_key(a), kb = numeric_key(b);
  if (ka.empty() != kb.empty()) return !ka.empty();  // numeric names first
  if (!ka.empty() && ka != kb) return ka.size() != kb.size() ? ka.size() < kb.size() : ka < kb;
  return a < b;
}

void check_options(const ImageFolderOptions& o) {
  if (o.path.empty())
    throw ConfigError(
        fmt::format("image folder: path is empty; set data.path to the folder of images (see {})", kFetchDoc));
  if (o.resolution < 1)
    throw ConfigError(fmt::format("image folder '{}': resolution must be >= 1, got {}", o.path, o.resolution));
  if (std::find(kBadImageModes.begin(), kBadImageModes.end(), o.on_bad_image) == kBadImageModes.end())
    throw ConfigError(fmt::format("image folder '{}': on_bad_image is '{}'{}; valid values: error, skip", o.path,
                                  o.on_bad_image, did_you_mean(o.on_bad_image, kBadImageModes)));
  if (o.max_images < 0)
    throw ConfigError(
        fmt::format("image folder '{}': max_images must be >= 0 (0 = all), got {}", o.path, o.max_images));
}

std::string bad_image_message(const std::string& file, const std::string& reason) {
  return fmt::format(
      "bad image '{}': {}; replace or remove the file, or set data.on_bad_image = \"skip\" to leave "
      "such images out",
      file, reason);
}

}  // namespace

ImageFolderOptions ImageFolderOptions::from_json(JsonReader& reader) {
  ImageFolderOptions o;
  reader.require("path", o.path)
      .require("resolution", o.resolution)
      .get_choice("on_bad_image", o.on_bad_image, kBadImageModes)
      .get("max_images", o.max_images)
      .get("center_crop", o.center_crop);
  const std::string where = reader.source().empty() ? "config" : fmt::format("config '{}'", reader.source());
  const std::string prefix = reader.path().empty() ? "" : reader.path() + ".";
  if (o.resolution < 1)
    throw ConfigError(fmt::format("{}: '{}resolution' must be >= 1, got {}", where, prefix, o.resolution));
  if (o.max_images < 0)
    throw ConfigError(fmt::format("{}: '{}max_images' must be >= 0 (0 = all), got {}", where, prefix, o.max_images));
  if (o.path.empty())
    throw ConfigError(
        fmt::format("{}: '{}path' is empty; give the folder of images (see {})", where, prefix, kFetchDoc));
  reader.finish();
  return o;
}

nlohmann::json ImageFolderOptions::to_json() const {
  return {{"path", path},
          {"resolution", resolution},
          {"on_bad_image", on_bad_image},
          {"max_images", max_images},
          {"center_crop", center_crop}};
}

ImageFolder ImageFolder::open(const ImageFolderOptions& options) {
  check_options(options);
  std::error_code ec;
  if (!fs::is_directory(options.path, ec)) {
    throw IoError(
        fmt::format("image folder '{}' not found{}: get CelebA-HQ as {} describes (the CelebA-HQ-img "
                    "folder goes to data/celeba_hq/CelebA-HQ-img/) or set data.path",
                    options.path, fs::exists(options.path, ec) ? " (it is not a directory)" : "", kFetchDoc));
  }
  std::vector<std::string> names;
  size_t ignored = 0;
  try {
    for (const fs::directory_entry& entry : fs::directory_iterator(options.path)) {
      const std::string name = entry.path().filename().string();
      if (!name.empty() && name[0] != '.' && entry.is_regular_file() && is_image_name(name)) {
        names.push_back(name);
      } else {
        ++ignored;
      }
    }
  } catch (const fs::filesystem_error& e) {
    throw IoError(fmt::format("cannot list image folder '{}': {}", options.path, e.what()));
  }
  if (names.empty()) {
    throw IoError(
        fmt::format("image folder '{}' holds no .jpg, .jpeg or .png files ({} other entries); put the "
                    "images there as {} describes, or set data.path",
                    options.path, ignored, kFetchDoc));
  }
  std::sort(names.begin(), names.end(), listing_less);
  if (options.max_images > 0 && names.size() > static_cast<size_t>(options.max_images))
    names.resize(static_cast<size_t>(options.max_images));

  ImageFolder folder;
  folder.options_ = options;
  folder.files_.reserve(names.size());
  for (const std::string& name : names) folder.files_.push_back((fs::path(options.path) / name).string());
  return folder;
}

std::string ImageFolder::file(size_t i) const {
  SMYRF_CHECK(i < files_.size(), "image index {} out of range: the folder has {} images", i, files_.size());
  return files_[i];
}

bool ImageFolder::try_load(size_t i, RgbImage& out, std::string& reason, bool* upscaled) const {
  SMYRF_CHECK(i < files_.size(), "image index {} out of range: the folder has {} images", i, files_.size());
  RgbImage image;
  if (!try_decode_image(files_[i], image, reason)) return false;
  if (image.height != image.width) {
    if (!options_.center_crop) {
      reason = fmt::format(
          "it is {}x{} (height x width), not square, and data.center_crop is false (set it to true "
          "to crop the central square)",
          image.height, image.width);
      return false;
    }
    image = center_crop_square(image);
  }
  if (upscaled != nullptr) *upscaled = image.height < options_.resolution;
  out = resize_area(image, options_.resolution, options_.resolution);
  return true;
}

RgbImage ImageFolder::load(size_t i) const {
  RgbImage image;
  std::string reason;
  if (!try_load(i, image, reason)) throw IoError(bad_image_message(files_[i], reason));
  return image;
}

LoadedImages load_all(const ImageFolder& folder, const std::function<void(size_t done, size_t total)>& progress,
                      size_t num_threads) {
  enum Status : char { kPending = 0, kGood = 1, kBad = 2 };
  const size_t n = folder.size();
  const int64_t resolution = folder.options().resolution;
  const size_t image_bytes = static_cast<size_t>(resolution * resolution * 3);
  const bool stop_on_bad = folder.options().on_bad_image == "error";

  LoadedImages result;
  result.resolution = resolution;
  result.pixels_BVWC.resize(n * image_bytes);
  std::vector<char> status(n, kPending), upscaled(n, 0);
  std::vector<std::string> reasons(n);

  // Step 1: decode on the workers; the calling thread reports progress.
  size_t threads = num_threads > 0 ? num_threads : std::max(1u, std::thread::hardware_concurrency());
  threads = std::max<size_t>(1, std::min(threads, n));
  std::atomic<size_t> next{0};
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::condition_variable changed;
  size_t done = 0, running = threads;
  std::exception_ptr failure;

  auto work = [&] {
    try {
      while (!stop.load()) {
        const size_t i = next.fetch_add(1);
        if (i >= n) break;
        RgbImage image;
        bool up = false;
        if (folder.try_load(i, image, reasons[i], &up)) {
          std::memcpy(result.pixels_BVWC.data() + i * image_bytes, image.pixels_VWC.data(), image_bytes);
          status[i] = kGood;
          upscaled[i] = up;
        } else {
          status[i] = kBad;
          if (stop_on_bad) stop.store(true);
        }
        {
          std::lock_guard<std::mutex> lock(mutex);
          ++done;
        }
        changed.notify_one();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex);
      if (!failure) failure = std::current_exception();
      stop.store(true);
    }
    {
      std::lock_guard<std::mutex> lock(mutex);
      --running;
    }
    changed.notify_one();
  };

  // Joins the workers on every exit path (a throwing progress callback included).
  struct Joiner {
    std::vector<std::thread> workers;
    std::atomic<bool>* stop;
    ~Joiner() {
      stop->store(true);
      for (std::thread& t : workers)
        if (t.joinable()) t.join();
    }
  } joiner{{}, &stop};
  for (size_t t = 0; t < threads; ++t) joiner.workers.emplace_back(work);
  {
    std::unique_lock<std::mutex> lock(mutex);
    size_t reported = 0;
    while (true) {
      changed.wait(lock, [&] { return done != reported || running == 0; });
      if (done != reported) {
        reported = done;
        lock.unlock();
        if (progress) progress(reported, n);
        lock.lock();
      } else {
        break;  // running == 0 and everything is reported
      }
    }
  }
  for (std::thread& t : joiner.workers) t.join();
  if (failure) std::rethrow_exception(failure);

  // Step 2: errors, then squeeze out the bad slots in index order.
  const auto first_bad = std::find(status.begin(), status.end(), kBad);
  if (stop_on_bad && first_bad != status.end()) {
    const size_t i = static_cast<size_t>(first_bad - status.begin());
    throw IoError(bad_image_message(folder.file(i), reasons[i]));
  }
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (status[i] != kGood) {
      result.skipped_images.push_back({folder.file(i), reasons[i]});
      continue;
    }
    if (kept != i)
      std::memmove(result.pixels_BVWC.data() + kept * image_bytes, result.pixels_BVWC.data() + i * image_bytes,
                   image_bytes);
    result.files.push_back(folder.file(i));
    result.upscaled += upscaled[i] ? 1 : 0;
    ++kept;
  }
  if (kept == 0) {
    throw IoError(fmt::format(
        "all {} images in '{}' are bad (first: '{}': {}); check that data.path is the image "
        "folder described in {}",
        n, folder.options().path, result.skipped_images[0].file, result.skipped_images[0].reason, kFetchDoc));
  }
  result.pixels_BVWC.resize(kept * image_bytes);
  result.count = static_cast<int64_t>(kept);
  result.skipped = result.skipped_images.size();
  return result;
}

}  // namespace smyrf
