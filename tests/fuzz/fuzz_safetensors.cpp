// Fuzz target: the safetensors reader (core/util/safetensors_reader.h). An input with a separator
// (fuzz_support.h) is a header and a data buffer, joined with the 8-byte length that the format puts
// first, so that the fuzzer explores the header's JSON; an input without one is the whole file.
// What is read is then checked the way SafetensorsFile uses it: every entry lies inside the buffer.
#include <cstdlib>

#include "core/util/safetensors_reader.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const std::vector<std::string_view> parts = fuzz::split_parts(data, size, 2);
  std::string file;
  if (parts.size() == 2) {
    for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>(static_cast<uint64_t>(parts[0].size()) >> (8 * i)));
    file.append(parts[0]).append(parts[1]);
  } else {
    file.assign(parts[0]);
  }
  const auto path = fuzz::fresh_scratch_dir() / "model.safetensors";
  fuzz::write_file(path, file);
  fuzz::expect_clean([&] {
    const SafetensorsContents contents = read_safetensors(path.string());
    for (const auto& [name, entry] : contents.entries) {
      uint64_t elements = 1;
      for (int64_t d : entry.shape) elements *= static_cast<uint64_t>(d);
      if (entry.end > contents.data.size() || entry.end - entry.begin != elements * safetensors_dtype_bytes(entry.dtype))
        std::abort();  // the reader let through an entry that does not fit its bytes
    }
  });
  return 0;
}
