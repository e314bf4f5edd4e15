// Our programs' C++ standard library references bind to libstdc++, never to the private copies that
// a torch library exports (cmake/SmyrfLinkOrder.cmake says why and how). Two checks:
//   - in this process: the addresses of std::filesystem and exception functions that this binary
//     calls lie in libstdc++ (dladdr; data such as typeinfo is copied into a PIE program by copy
//     relocations, so only the loader's log below can say where it was bound from);
//   - in every program we ship (smyrf, smyrf_bench when built, this test binary): the dynamic
//     loader's own binding log (LD_DEBUG=bindings, LD_BIND_NOW=1) lists no symbol that libstdc++
//     defines bound from the program into a libtorch*/libc10* library. The log must show the
//     program binding to libstdc++ at all, so an empty log fails instead of passing.
// Fails on a build with SMYRF_LIBSTDCXX_FIRST=OFF against any torch that exports such copies
// (2.11 and 2.15 do).
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "tests/support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

std::string library_of(const void* address) {
  Dl_info info{};
  if (address == nullptr || dladdr(address, &info) == 0 || info.dli_fname == nullptr) return "(unknown)";
  return fs::path(info.dli_fname).filename().string();
}

bool is_libstdcxx(const std::string& library) { return library.rfind("libstdc++.so", 0) == 0; }
bool is_torch_library(const std::string& library) {
  return library.rfind("libtorch", 0) == 0 || library.rfind("libc10", 0) == 0;
}

// Whether libstdc++ itself defines `symbol` (not one of its dependencies such as libc).
bool libstdcxx_defines(const std::string& symbol) {
  static void* const handle = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_NOLOAD);
  if (handle == nullptr) return false;
  return is_libstdcxx(library_of(dlsym(handle, symbol.c_str())));
}

struct BindingLog {
  int to_libstdcxx = 0;                  // bindings from the program into libstdc++
  std::set<std::string> into_torch;      // libstdc++ symbols the program bound into a torch library
};

// Runs `program args` with the loader logging every binding, and reads what the program itself bound.
BindingLog bindings_of(const std::string& program, const std::string& args, const std::string& name) {
  const fs::path dir = test::fresh_dir("bindings_" + name);
  const std::string cmd = fmt::format("LD_BIND_NOW=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT='{}' '{}' {} >/dev/null 2>&1",
                                      (dir / "ld").string(), program, args);
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  // e.g.  1234: binding file /x/smyrf [0] to /y/libtorch_cpu.so [0]: normal symbol `_ZNSt10filesystem...'
  const std::regex line_re(R"(binding file (\S+) \[\d+\] to (\S+) \[\d+\]: \w+ symbol `([^']+)')");
  const std::string self = fs::canonical(program).string();
  const std::string self_name = fs::path(program).filename().string();
  BindingLog log;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::ifstream in(entry.path());
    for (std::string line; std::getline(in, line);) {
      std::smatch m;  // the log holds every library's bindings: skip the others' cheaply first
      if (line.find(self_name) == std::string::npos || !std::regex_search(line, m, line_re)) continue;
      std::error_code ec;
      if (fs::weakly_canonical(m[1].str(), ec).string() != self) continue;
      const std::string target = fs::path(m[2].str()).filename().string();
      if (is_libstdcxx(target)) ++log.to_libstdcxx;
      if (is_torch_library(target) && libstdcxx_defines(m[3].str())) log.into_torch.insert(m[3].str());
    }
  }
  fs::remove_all(dir);
  return log;
}

void expect_no_libstdcxx_symbol_bound_into_torch(const std::string& program, const std::string& args,
                                                 const std::string& name) {
  const BindingLog log = bindings_of(program, args, name);
  EXPECT_GT(log.to_libstdcxx, 10) << program << ": the loader logged no bindings to libstdc++ (LD_DEBUG ignored?)";
  std::string listed;
  for (const auto& symbol : log.into_torch) listed += "\n  " + symbol;
  EXPECT_TRUE(log.into_torch.empty()) << program << " binds " << log.into_torch.size()
                                      << " libstdc++ symbols into a torch library (link libstdc++ first: "
                                         "cmake/SmyrfLinkOrder.cmake):"
                                      << listed;
}

TEST(RuntimeBindings, StandardLibraryCallsOfThisProcessResolveToLibstdcxx) {
  using RemoveAll = std::uintmax_t (*)(const fs::path&);
  using RemoveAllNoThrow = std::uintmax_t (*)(const fs::path&, std::error_code&);
  using Rename = void (*)(const fs::path&, const fs::path&);
  using CreateDirectories = bool (*)(const fs::path&);
  const std::vector<std::pair<std::string, const void*>> functions = {
      {"std::filesystem::remove_all(path)", reinterpret_cast<const void*>(static_cast<RemoveAll>(&fs::remove_all))},
      {"std::filesystem::remove_all(path, error_code)",
       reinterpret_cast<const void*>(static_cast<RemoveAllNoThrow>(&fs::remove_all))},
      {"std::filesystem::rename", reinterpret_cast<const void*>(static_cast<Rename>(&fs::rename))},
      {"std::filesystem::create_directories",
       reinterpret_cast<const void*>(static_cast<CreateDirectories>(&fs::create_directories))},
      {"std::filesystem::temp_directory_path",
       reinterpret_cast<const void*>(static_cast<fs::path (*)()>(&fs::temp_directory_path))},
      {"std::rethrow_exception", reinterpret_cast<const void*>(&std::rethrow_exception)},
  };
  for (const auto& [what, address] : functions)
    EXPECT_TRUE(is_libstdcxx(library_of(address))) << what << " resolves to " << library_of(address);
  // and the library it found is the system one this binary names first, not a copy beside torch
  Dl_info info{};
  ASSERT_NE(dladdr(functions[0].second, &info), 0);
  EXPECT_EQ(fs::path(info.dli_fname).parent_path().string().find("torch"), std::string::npos) << info.dli_fname;
}

TEST(RuntimeBindings, NoProgramBindsStandardLibrarySymbolsIntoTorch) {
  expect_no_libstdcxx_symbol_bound_into_torch(SMYRF_CLI_PATH, "methods", "cli");
  expect_no_libstdcxx_symbol_bound_into_torch(fs::read_symlink("/proc/self/exe").string(), "--gtest_list_tests",
                                              "tests");
#ifdef SMYRF_BENCH_PATH
  expect_no_libstdcxx_symbol_bound_into_torch(SMYRF_BENCH_PATH, "--benchmark_list_tests", "bench");
#endif
}

}  // namespace
}  // namespace smyrf
