// Measured memory of this process on the CPU (Linux /proc/self/status: VmRSS, VmHWM).
// The runner measures each sweep point in its own process and resets the high-water mark right
// before the measured call, so peak_rss - rss_before is the call's own peak; on CUDA the
// allocator's peak statistics play that role. Tested by tests/attention/test_method_contract.cpp (a 256 MiB
// allocation moves the peak by at least that much).
#pragma once

#include <cstdint>
#include <optional>

namespace smyrf {

struct ProcessMemory {
  int64_t rss_bytes = 0;
  int64_t peak_rss_bytes = 0;
};

ProcessMemory read_process_memory();

// Resets VmHWM to the current RSS (writes "5" to /proc/self/clear_refs, Linux >= 4.0).
// Returns false when the kernel does not allow it; the peak then counts from process start.
bool reset_peak_rss();

// Memory the process could still get: MemAvailable (free pages plus reclaimable page cache) from
// /proc/meminfo; free pages alone (_SC_AVPHYS_PAGES, the fallback) would refuse runs that fit on a
// machine whose page cache is warm.
int64_t available_memory_bytes();

// The CUDA caching allocator's peak of allocated bytes on `device` since the last reset; nullopt in
// a build without CUDA kernels (SMYRF_WITH_CUDA) or when CUDA is unusable.
std::optional<int64_t> cuda_peak_allocated_bytes(int device = 0);
void reset_cuda_peak(int device = 0);

}  // namespace smyrf
