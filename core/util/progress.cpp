// See progress.h.
#include "core/util/progress.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>

namespace smyrf {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(std::llround(seconds));
  if (s >= 3600) return fmt::format("{}:{:02}:{:02}", s / 3600, (s / 60) % 60, s % 60);
  return fmt::format("{}:{:02}", s / 60, s % 60);
}

ProgressBar::ProgressBar(std::string label, int64_t total, std::FILE* stream)
    : label_(std::move(label)), total_(total), stream_(stream), interactive_(isatty(fileno(stream)) != 0),
      start_(std::chrono::steady_clock::now()) {}

std::string ProgressBar::render(int64_t done, int64_t total, double elapsed_s, int width) {
  const double frac = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 1.0;
  const int filled = static_cast<int>(frac * width);
  std::string bar(static_cast<size_t>(width), ' ');
  for (int i = 0; i < filled && i < width; ++i) bar[static_cast<size_t>(i)] = '=';
  if (filled < width && done > 0) bar[static_cast<size_t>(filled)] = '>';
  const double rate = elapsed_s > 0 ? static_cast<double>(done) / elapsed_s : 0.0;
  const double eta = rate > 0 ? static_cast<double>(total - done) / rate : NAN;
  return fmt::format("{}/{} [{}] {:.2f} run/s  elapsed {}  ETA {}", done, total, bar, rate,
                     format_duration(elapsed_s), done == 0 ? "?" : format_duration(eta));
}

void ProgressBar::update(int64_t done, const std::string& note) {
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const std::string line = fmt::format("{} {}{}{}", label_, render(done, total_, elapsed), note.empty() ? "" : "  ", note);
  if (interactive_) {
    fmt::print(stream_, "\r\033[K{}", line);
  } else {
    fmt::print(stream_, "{}\n", line);
  }
  std::fflush(stream_);
}

void ProgressBar::finish(const std::string& note) {
  update(total_, note);
  if (interactive_) fmt::print(stream_, "\n");
  std::fflush(stream_);
}

}  // namespace smyrf
