// Helpers of the tests that drive the `smyrf` CLI (SMYRF_CLI_PATH) end to end: run it and capture
// its exit code and output, fresh temporary directories, small files.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace smyrf::test {

struct CliResult {
  int exit_code;
  std::string output;
};

inline CliResult run_cli(const std::string& args) {
  const std::string cmd = std::string(SMYRF_CLI_PATH) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// `smyrf run --no-progress CONFIG --output OUT` in the background with its output discarded, for
// tests that kill it mid-sweep; returns its pid (-1 when fork failed).
inline pid_t start_run_in_background(const std::string& config, const std::string& out) {
  const pid_t pid = fork();
  if (pid == 0) {
    const int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    dup2(devnull, 2);
    execl(SMYRF_CLI_PATH, SMYRF_CLI_PATH, "run", "--no-progress", config.c_str(), "--output", out.c_str(), nullptr);
    _exit(127);
  }
  return pid;
}

inline std::filesystem::path fresh_dir(const std::string& name) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / fmt::format("smyrf_test_{}_{}", name, getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

inline std::string write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace smyrf::test
