// fresh_dir(name): an empty directory under the system's temporary directory, named by test and
// pid so that parallel ctest processes never share one. Every directory made here is removed when
// the test process ends with no test failed, and kept (its path printed) when one failed, for
// inspection: left behind, the checkpoints of the end-to-end tests fill a disk within a few suites.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <gtest/gtest.h>

namespace smyrf::test {

class FreshDirCleanup : public ::testing::Environment {
 public:
  static std::vector<std::filesystem::path>& dirs() {
    static std::vector<std::filesystem::path> made;
    return made;
  }
  void TearDown() override {
    const bool failed = ::testing::UnitTest::GetInstance()->Failed();
    for (const auto& dir : dirs()) {
      if (failed) {
        std::fprintf(stderr, "kept for inspection: %s\n", dir.c_str());
      } else {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
      }
    }
  }
};

// Registered once per test binary, before main runs (gtest keeps and deletes the environment).
inline ::testing::Environment* const fresh_dir_cleanup = ::testing::AddGlobalTestEnvironment(new FreshDirCleanup);

inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("smyrf_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  auto& made = FreshDirCleanup::dirs();
  if (std::find(made.begin(), made.end(), dir) == made.end()) made.push_back(dir);
  return dir;
}

}  // namespace smyrf::test
