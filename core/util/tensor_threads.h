// LibTorch's intra-op thread count, set in one place. LibTorch starts with one thread on these
// machines, so every program that computes sets it: `requested` > 0 is taken as given, 0 means
// every core. Returns the count set. Used by the sweep worker, `smyrf fid-stats` and smyrf_bench.
#pragma once

namespace smyrf {

int set_torch_threads(int requested);

}  // namespace smyrf
