// collect_provenance(): harness version, git state, time and host for results files.
// git is run through popen with stderr discarded, so a missing git or a tarball checkout yields
// "unknown" instead of an error. Tested in tests/light/test_results_store.cpp.
#include "core/util/provenance.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <ctime>
#include <optional>
#include <utility>

#ifndef SMYRF_VERSION
#define SMYRF_VERSION "unknown"
#endif
#ifndef SMYRF_SOURCE_DIR
#define SMYRF_SOURCE_DIR "."
#endif

namespace smyrf {
namespace {

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

// stdout of a `git -C SMYRF_SOURCE_DIR ...` command, or nullopt when it cannot run or fails.
std::optional<std::string> run_git(const std::string& args) {
  const std::string command = "git -C " + shell_quote(SMYRF_SOURCE_DIR) + " " + args + " 2>/dev/null";
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return std::nullopt;
  std::string out;
  std::array<char, 512> buf{};
  size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) out.append(buf.data(), n);
  if (::pclose(pipe) != 0) return std::nullopt;
  return out;
}

std::string trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

std::string utc_now_iso8601() {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buf.data();
}

Provenance collect_provenance(std::string device, std::string torch_version) {
  Provenance p;
  p.harness_version = SMYRF_VERSION;
  p.device = std::move(device);
  p.torch_version = std::move(torch_version);
  p.created_utc = utc_now_iso8601();

  std::array<char, 256> host{};
  p.host = ::gethostname(host.data(), host.size() - 1) == 0 ? std::string(host.data()) : "unknown";

  auto sha = run_git("rev-parse HEAD");
  p.git_sha = sha && !trim(*sha).empty() ? trim(*sha) : "unknown";
  if (p.git_sha != "unknown") {
    auto status = run_git("status --porcelain --untracked-files=no");
    p.git_dirty = status.has_value() && !trim(*status).empty();
  }
  return p;
}

void write_provenance_attrs(H5File& file, const Provenance& p) {
  file.set_attr("/", "harness_version", p.harness_version);
  file.set_attr("/", "git_sha", p.git_sha);
  file.set_attr("/", "git_dirty", p.git_dirty);
  file.set_attr("/", "created_utc", p.created_utc);
  file.set_attr("/", "host", p.host);
  file.set_attr("/", "device", p.device);
  file.set_attr("/", "torch_version", p.torch_version);
}

}  // namespace smyrf
