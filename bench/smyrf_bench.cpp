// smyrf_bench: Google Benchmark suite of the attention methods.
//
//   build/bin/smyrf_bench [--benchmark_filter=...] [--threads=N]   (N defaults to all cores)
//
// B = 1, H = 8 heads, D = E = 64, float32, N = M in {1024, 4096, 16384} (65536 for the
// sub-quadratic peers); forward (no autograd) and forward+backward; causal and not. Methods: dense
// (ours, materialises the N x M scores), LibTorch's scaled_dot_product_attention, smyrf {1x32,
// 2x64, 4x128} (kernel 0: fused; 1: the LibTorch twin, forward+backward only), and BM_Peer: e2lsh 2x64 and every peer at its defaults (peer_configs()). Each method is checked against dense
// float64 once (at a small size) before anything is timed. Counters: tokens/s, analytic bytes,
// memory fraction, peak RSS growth of the timed calls, and the time ratio to dense and to SDPA of
// the same N and mode measured earlier in this run (they are registered first).
// A case whose dense score matrices would not fit in this machine's memory is skipped, saying so.
// BM_Encoder (encoder_bench.cpp): the whole pretrained MiniLM encoder at N = 128 and 512.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <thread>

#include "core/attention/dense.h"
#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/tensor_compare.h"
#include "core/util/tensor_threads.h"

namespace smyrf {
namespace {

constexpr int64_t kHeads = 8;
constexpr int64_t kHeadDim = 64;

enum class Mode { kForward = 0, kForwardBackward = 1 };

// (N, mode, causal) -> seconds per call of a baseline measured earlier in this run
using CaseKey = std::tuple<int64_t, int, bool>;
std::map<CaseKey, double>& baseline_seconds(const std::string& which) {
  static std::map<std::string, std::map<CaseKey, double>> table;
  return table[which];
}

AttentionInputs make_inputs(int64_t N, bool requires_grad) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  AttentionInputs in;
  in.q_BHND = at::normal(0, 1, {1, kHeads, N, kHeadDim}, gen, at::kFloat).requires_grad_(requires_grad);
  in.k_BHMD = at::normal(0, 1, {1, kHeads, N, kHeadDim}, gen, at::kFloat).requires_grad_(requires_grad);
  in.v_BHME = at::normal(0, 1, {1, kHeads, N, kHeadDim}, gen, at::kFloat).requires_grad_(requires_grad);
  return in;
}

// Times one call per iteration after a warm-up call; returns seconds per call, or 0 after
// SkipWithError when the case cannot fit in memory.
template <class Call>
double time_calls(benchmark::State& state, Call call, int64_t N, double needed_bytes) {
  if (needed_bytes > 0.85 * static_cast<double>(available_memory_bytes())) {
    state.SkipWithError(fmt::format("needs ~{:.1f} GiB of score buffers, {:.1f} GiB available",
                                    needed_bytes / (1 << 30), static_cast<double>(available_memory_bytes()) / (1 << 30)).c_str());
    return 0.0;
  }
  call();  // warm-up: thread pools, allocator
  reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) call();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                         static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
  const ProcessMemory after = read_process_memory();
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(N), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_growth_MiB"] = static_cast<double>(after.peak_rss_bytes - before.rss_bytes) / (1 << 20);
  state.counters["threads"] = at::get_num_threads();
  return seconds;
}

void report_ratios(benchmark::State& state, int64_t N, Mode mode, bool causal, double own_seconds) {
  for (const char* name : {"dense", "sdpa"}) {
    const auto& table = baseline_seconds(name);
    const auto it = table.find({N, static_cast<int>(mode), causal});
    if (it != table.end() && own_seconds > 0) state.counters[std::string("speedup_vs_") + name] = it->second / own_seconds;
  }
}

void run_method(benchmark::State& state, const nlohmann::json& options, const std::string& baseline_name,
                bool causal = false) {
  const int64_t N = state.range(0);
  const auto mode = static_cast<Mode>(state.range(1));
  const auto method = make_attention(options);
  const bool backward = mode == Mode::kForwardBackward;
  AttentionInputs in = make_inputs(N, backward);
  in.causal = causal;
  const AttentionCost cost = method->cost({1, kHeads, N, N, kHeadDim, kHeadDim, 4, causal});
  auto call = [&] {
    auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
    if (!backward) {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(method->forward(in, gen).out_BHNE.data_ptr());
      return;
    }
    method->forward(in, gen).out_BHNE.sum().backward();
    for (auto* t : {&in.q_BHND, &in.k_BHMD, &in.v_BHME}) t->mutable_grad().reset();
  };
  // dense keeps ~1 score matrix forward, ~4 for forward+backward (logits, probs, their grads)
  const double score_bytes = static_cast<double>(cost.score_entries) * 4.0;
  const double needed = method->capabilities().exact ? score_bytes * (backward ? 4.5 : 1.2)
                                                     : static_cast<double>(cost.analytic_bytes) * (backward ? 3.0 : 1.2);
  const double per_call = time_calls(state, call, N, needed);
  if (state.error_occurred()) return;
  if (!baseline_name.empty()) baseline_seconds(baseline_name)[{N, static_cast<int>(mode), causal}] = per_call;
  state.counters["analytic_MiB"] = static_cast<double>(cost.analytic_bytes) / (1 << 20);
  state.counters["memory_fraction"] = cost.memory_fraction;
  report_ratios(state, N, mode, causal, per_call);
}

void BM_Dense(benchmark::State& state) { run_method(state, {{"method", "dense"}}, "dense", state.range(2) != 0); }

void BM_SDPA(benchmark::State& state) {
  const int64_t N = state.range(0);
  const auto mode = static_cast<Mode>(state.range(1));
  const bool causal = state.range(2) != 0;
  const bool backward = mode == Mode::kForwardBackward;
  AttentionInputs in = make_inputs(N, backward);
  auto sdpa = [&] {
    return at::scaled_dot_product_attention(in.q_BHND, in.k_BHMD, in.v_BHME, std::nullopt, 0.0, causal);
  };
  auto call = [&] {
    if (!backward) {
      at::NoGradGuard no_grad;
      benchmark::DoNotOptimize(sdpa().data_ptr());
      return;
    }
    sdpa().sum().backward();
    for (auto* t : {&in.q_BHND, &in.k_BHMD, &in.v_BHME}) t->mutable_grad().reset();
  };
  const double per_call = time_calls(state, call, N, 0.0);
  baseline_seconds("sdpa")[{N, static_cast<int>(mode), causal}] = per_call;
  state.counters["memory_fraction"] = 1.0;
  report_ratios(state, N, mode, causal, per_call);
}

// kernel 0: the fused CPU kernels (forward and backward); 1: the LibTorch twin (`kernel: reference`)
void BM_Smyrf(benchmark::State& state) {
  run_method(state,
             {{"method", "smyrf"}, {"n_hashes", state.range(2)}, {"q_cluster_size", state.range(3)},
              {"kernel", state.range(4) == 0 ? "fused" : "reference"}},
             "");
}

void sequence_modes(benchmark::internal::Benchmark* b) {
  for (int causal : {0, 1})
    for (int mode : {0, 1})
      for (int64_t n : {1024, 4096, 16384}) b->Args({n, mode, causal});
}

// The peers at their defaults; hyper also with min_seq_len 1024, since with the
// default 4096 it is exact dense attention up to N = 4096 (and causal up to 8192).
const std::vector<nlohmann::json>& peer_configs() {
  static const std::vector<nlohmann::json> configs = {
      {{"method", "e2lsh"}, {"n_hashes", 2}, {"q_cluster_size", 64}},
      {{"method", "hyper"}},
      {{"method", "hyper"}, {"min_seq_len", 1024}},
      {{"method", "polysketch"}},
      {{"method", "reformer"}},
      {{"method", "performer"}},
      {{"method", "nystrom"}},
      {{"method", "local"}},
  };
  return configs;
}

void BM_Peer(benchmark::State& state) {
  const auto& options = peer_configs().at(static_cast<size_t>(state.range(3)));
  state.SetLabel(options.dump());
  run_method(state, options, "", state.range(2) != 0);
}

void peer_grid(benchmark::internal::Benchmark* b) {
  for (int64_t index = 0; index < static_cast<int64_t>(peer_configs().size()); ++index) {
    const bool causal_capable = make_attention(peer_configs()[static_cast<size_t>(index)])->capabilities().causal;
    for (int causal : {0, 1}) {
      if (causal && !causal_capable) continue;
      for (int mode : {0, 1})
        for (int64_t n : {1024, 4096, 16384, 65536}) {
          // autograd keeps every block's buffers: at 65536 that is tens of GiB for some peers
          if (mode == 1 && n > 16384) continue;
          b->Args({n, mode, causal, index});
        }
    }
  }
}

void smyrf_grid(benchmark::internal::Benchmark* b) {
  for (int mode : {0, 1})
    for (int64_t n : {1024, 4096, 16384})
      for (auto [h, c] : {std::pair<int64_t, int64_t>{1, 32}, {2, 64}, {4, 128}})
        for (int kernel : {0, 1})
          if (kernel == 0 || mode == 1) b->Args({n, mode, h, c, kernel});  // the twin only where it trains
}

BENCHMARK(BM_Dense)->Apply(sequence_modes)->ArgNames({"N", "backward", "causal"})->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(2);
BENCHMARK(BM_SDPA)->Apply(sequence_modes)->ArgNames({"N", "backward", "causal"})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Smyrf)->Apply(smyrf_grid)->ArgNames({"N", "backward", "hashes", "C", "kernel"})->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BM_Peer)->Apply(peer_grid)->ArgNames({"N", "backward", "causal", "config"})->Unit(benchmark::kMillisecond)->UseRealTime();

// Validate before timing: every method at its exactness limit must equal dense float64 (polysketch:
// polynomial attention); SDPA must equal dense.
void validate_or_die() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(3);
  AttentionInputs in;
  in.q_BHND = at::normal(0, 1, {1, 2, 256, kHeadDim}, gen, at::kDouble);
  in.k_BHMD = at::normal(0, 1, {1, 2, 256, kHeadDim}, gen, at::kDouble);
  in.v_BHME = at::normal(0, 1, {1, 2, 256, kHeadDim}, gen, at::kDouble);
  const at::Tensor exact = DenseAttention().forward(in, gen).out_BHNE;
  const at::Tensor one_cluster =
      make_attention({{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 256}})->forward(in, gen).out_BHNE;
  const at::Tensor sdpa = at::scaled_dot_product_attention(in.q_BHND, in.k_BHMD, in.v_BHME);
  const auto at_limit = [&](const nlohmann::json& options) { return make_attention(options)->forward(in, gen).out_BHNE; };
  const std::vector<std::pair<const char*, at::Tensor>> checks = {
      {"smyrf 1 cluster", one_cluster},
      {"sdpa", sdpa},
      {"hyper one block", at_limit({{"method", "hyper"}, {"block_size", 256}, {"min_seq_len", 0}})},
      {"reformer one bucket", at_limit({{"method", "reformer"}, {"n_buckets", 1}, {"chunk_size", 256}})},
      {"local window >= N", at_limit({{"method", "local"}, {"mode", "block"}, {"window", 256}})},
      {"nystrom landmarks = N", at_limit({{"method", "nystrom"}, {"landmarks", 256}, {"pinv_iterations", 0}})}};
  {
    // polysketch's exactness limit is polynomial attention, not softmax; the exact self-tensor has
    // D^4 entries per token pair summary, so this check runs at D = 4
    auto g1 = at::make_generator<at::CPUGeneratorImpl>(1);
    AttentionInputs small;
    small.q_BHND = at::normal(0, 1, {1, 2, 256, 4}, g1, at::kDouble);
    small.k_BHMD = at::normal(0, 1, {1, 2, 256, 4}, g1, at::kDouble);
    small.v_BHME = at::normal(0, 1, {1, 2, 256, 8}, g1, at::kDouble);
    const auto poly = make_attention({{"method", "polynomial"}})->forward(small, g1).out_BHNE;
    const auto sketch = make_attention({{"method", "polysketch"}, {"sketch", "exact"}})->forward(small, g1).out_BHNE;
    const auto cmp = compare_tensors(sketch, poly, 1e-10, 1e-9);
    if (!cmp.ok) {
      fmt::print(stderr, "validation failed for polysketch exact sketch: {}\n", cmp.message());
      std::exit(1);
    }
  }
  for (const auto& [name, t] : checks) {
    const auto cmp = compare_tensors(t, exact, 1e-10, 1e-9);
    if (!cmp.ok) {
      fmt::print(stderr, "validation failed for {}: {}\n", name, cmp.message());
      std::exit(1);
    }
  }
}

}  // namespace
}  // namespace smyrf

int main(int argc, char** argv) {
  int threads = 0;  // all cores
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    if (std::strncmp(argv[i], "--threads=", 10) == 0) {
      threads = std::atoi(argv[i] + 10);
    } else {
      args.push_back(argv[i]);
    }
  }
  smyrf::set_torch_threads(threads);
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  smyrf::validate_or_die();
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
