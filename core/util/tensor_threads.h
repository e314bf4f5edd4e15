// LibTorch's intra-op thread count, set in one place. LibTorch starts with one thread on these
// machines, so every program that computes sets it: `requested` > 0 is taken as given, 0 means
// every core this process may run on (available_cores). Returns the count set. Used by the sweep
// worker, `smyrf fid-stats` and smyrf_bench.
#pragma once

namespace smyrf {

// The cores of this process's CPU affinity mask (what a Slurm task or a cpuset allows), or the
// machine's hardware threads when the mask cannot be read.
int available_cores();

int set_torch_threads(int requested);

}  // namespace smyrf
