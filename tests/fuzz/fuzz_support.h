// Shared by the fuzz targets (tests/fuzz/fuzz_*.cpp): a scratch folder per process, the fuzzer's
// bytes split into files, and the rule every target enforces: a reader given any bytes either
// succeeds or throws smyrf::Error (ConfigError, IoError) with a message. Anything else escaping
// (std::bad_alloc, a json or std::out_of_range exception), a crash, a hang or a sanitizer report
// is a bug. Built with libFuzzer under scripts/fuzz.sh, and as replay programs in every build
// (replay_main.cpp), which ctest runs over the committed corpus and regression inputs.
#pragma once

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "core/util/check.h"

namespace smyrf::fuzz {

// One folder per process, emptied for every input and removed when the process exits normally.
struct ScratchDir {
  ScratchDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "smyrf-fuzz-XXXXXX").string();
    if (mkdtemp(pattern.data()) == nullptr) std::abort();
    path = pattern;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};

inline std::filesystem::path scratch_dir() {
  static const ScratchDir dir;
  return dir.path;
}

inline std::filesystem::path fresh_scratch_dir() {
  const std::filesystem::path dir = scratch_dir();
  for (const auto& entry : std::filesystem::directory_iterator(dir)) std::filesystem::remove_all(entry.path());
  return dir;
}

inline void write_file(const std::filesystem::path& path, std::string_view bytes) {
  std::filesystem::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// The input cut at every separator line "\n----\n" (seed files stay readable text), at most `max` parts.
inline std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, size_t max) {
  std::string_view rest(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view kSeparator = "\n----\n";
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max) {
    const size_t at = rest.find(kSeparator);
    if (at == std::string_view::npos) break;
    parts.push_back(rest.substr(0, at));
    rest.remove_prefix(at + kSeparator.size());
  }
  parts.push_back(rest);
  return parts;
}

// The fuzzer's bytes read as a program of edits (the HDF5 targets): one byte at a time, 0 once
// they run out; pick() chooses from a table by the next byte.
struct Program {
  const uint8_t* data;
  size_t size, at = 0;
  bool more() const { return at < size; }
  uint8_t byte() { return at < size ? data[at++] : 0; }
  template <typename T, size_t N>
  T pick(T const (&table)[N]) { return table[byte() % N]; }
};

// Runs `body`; a smyrf::Error is the reader refusing bad input, which is fine.
template <typename Body>
void expect_clean(Body&& body) {
  try {
    body();
  } catch (const Error&) {
  }
}

}  // namespace smyrf::fuzz
