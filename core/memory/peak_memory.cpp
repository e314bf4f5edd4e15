// /proc-based process memory; see peak_memory.h.
#include "core/memory/peak_memory.h"

#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

namespace smyrf {

ProcessMemory read_process_memory() {
  ProcessMemory m;
  std::ifstream status("/proc/self/status");
  std::string key;
  while (status >> key) {
    int64_t kib = 0;
    if (key == "VmRSS:") {
      status >> kib;
      m.rss_bytes = kib * 1024;
    } else if (key == "VmHWM:") {
      status >> kib;
      m.peak_rss_bytes = kib * 1024;
    }
    status.ignore(1 << 20, '\n');
  }
  return m;
}

bool reset_peak_rss() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  if (!clear_refs) return false;
  clear_refs << "5";
  clear_refs.flush();
  return static_cast<bool>(clear_refs);
}

int64_t available_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    std::istringstream fields(line.substr(13));
    int64_t kib = 0;
    if (fields >> kib) return kib * 1024;
  }
  return static_cast<int64_t>(sysconf(_SC_AVPHYS_PAGES)) * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

}  // namespace smyrf
