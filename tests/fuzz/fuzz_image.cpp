// Fuzz target: image decoding and resizing (datasets/image_io.h): the input is one image file.
#include "datasets/image_io.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const auto path = fuzz::fresh_scratch_dir() / "image";
  fuzz::write_file(path, std::string_view(reinterpret_cast<const char*>(data), size));
  fuzz::expect_clean([&] {
    const RgbImage image = decode_image(path.string());
    const RgbImage square = center_crop_square(image);
    resize_area(square, 7, 7);
    resize_area(image, 1 + image.height % 5, 3);
    flip_horizontal(image);
  });
  return 0;
}
