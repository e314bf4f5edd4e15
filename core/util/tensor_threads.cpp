// See tensor_threads.h.
#include "core/util/tensor_threads.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <thread>

namespace smyrf {

int set_torch_threads(int requested) {
  const int threads = requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  at::set_num_threads(threads);
  return threads;
}

}  // namespace smyrf
