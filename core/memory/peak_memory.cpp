// /proc-based process memory; see peak_memory.h.
#include "core/memory/peak_memory.h"

#include <unistd.h>

#ifdef SMYRF_WITH_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#include <torch/cuda.h>
#endif

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

std::optional<int64_t> cuda_peak_allocated_bytes(int device) {
#ifdef SMYRF_WITH_CUDA
  if (!torch::cuda::is_available()) return std::nullopt;
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(static_cast<c10::DeviceIndex>(device));
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingAllocator::StatType::AGGREGATE)].peak;
#else
  (void)device;
  return std::nullopt;
#endif
}

void reset_cuda_peak(int device) {
#ifdef SMYRF_WITH_CUDA
  if (torch::cuda::is_available()) c10::cuda::CUDACachingAllocator::resetPeakStats(static_cast<c10::DeviceIndex>(device));
#else
  (void)device;
#endif
}

}  // namespace smyrf
