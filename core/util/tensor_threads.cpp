// See tensor_threads.h.
#include "core/util/tensor_threads.h"

#include <ATen/Parallel.h>
#include <sched.h>

#include <algorithm>
#include <thread>

namespace smyrf {

int available_cores() {
  cpu_set_t mask;
  CPU_ZERO(&mask);
  if (sched_getaffinity(0, sizeof mask, &mask) == 0 && CPU_COUNT(&mask) > 0) return CPU_COUNT(&mask);
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

int set_torch_threads(int requested) {
  const int threads = requested > 0 ? requested : available_cores();
  at::set_num_threads(threads);
  return threads;
}

}  // namespace smyrf
