// A progress bar for long jobs, with rate and ETA, on stderr. On a terminal it redraws one line;
// otherwise (logs, CI) it prints one line per step so nothing is lost. Torch-free.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace smyrf {

class ProgressBar {
 public:
  ProgressBar(std::string label, int64_t total, std::FILE* stream = stderr);
  // Marks `done` steps finished; `note` describes the step just finished (e.g. the run id).
  void update(int64_t done, const std::string& note = "");
  void finish(const std::string& note = "");
  // True on a terminal (one redrawn line); callers that update often throttle more when false.
  bool interactive() const { return interactive_; }
  // "12/33 [=====>      ]  0.84 run/s  ETA 0:25"
  static std::string render(int64_t done, int64_t total, double elapsed_s, int width = 24);

 private:
  std::string label_;
  int64_t total_;
  std::FILE* stream_;
  bool interactive_;
  std::chrono::steady_clock::time_point start_;
};

std::string format_duration(double seconds);  // "0:25", "1:02:03"

}  // namespace smyrf
