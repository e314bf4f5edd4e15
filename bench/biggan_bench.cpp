// BM_BigGanForward (part of smyrf_bench): the BigGAN generator of the paper's CelebA-HQ row
// (resolution 128, G_ch 96, dim_z 120, one class; random weights, eval mode, no autograd) with its
// attention at 128x128 — 16,384 queries, 4,096 max-pooled keys, head dim 12 — computed by BigGAN's
// dense softmax, LibTorch SDPA (scale 1), or SMYRF 4x2048 (keys 512 per cluster: 50% of dense),
// at batch 1 and 4 (the paper's per-core batch).
// Counters: images/s, peak RSS growth of the timed calls (run one case per process for its own
// peak: --benchmark_filter='BM_BigGanForward/batch:4/method:2/'), the attention's memory fraction,
// and speedup_vs_dense at the same batch measured earlier in this process. Before timing, SDPA and
// dense must give the same images (1e-4 max abs): a wrong generator is never timed.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>
#include <fmt/format.h>
#include <torch/torch.h>

#include <chrono>
#include <map>

#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/models/biggan.h"

namespace smyrf {
namespace {

BigGanConfig celeba_generator_config() {
  BigGanConfig c;
  c.resolution = 128;
  c.g_ch = 96;
  c.dim_z = 120;
  c.n_classes = 1;
  c.g_attn = 128;
  c.d_attn = 0;
  return c;
}

const std::vector<nlohmann::json>& gan_methods() {
  static const std::vector<nlohmann::json> methods = {
      {{"method", "dense"}},
      {{"method", "sdpa"}},
      {{"method", "smyrf"}, {"n_hashes", 4}, {"q_cluster_size", 2048}, {"k_cluster_size", 512}}};
  return methods;
}

// One generator for every case (its weights do not depend on the attention), gamma set to 1 so
// that the attention output matters for the validation.
BigGanGenerator& celeba_generator() {
  static BigGanGenerator g = [] {
    torch::manual_seed(0);
    BigGanGenerator made(celeba_generator_config());
    at::NoGradGuard no_grad;
    made->attention()->named_parameters()["gamma"].fill_(1.0);
    made->eval();
    return made;
  }();
  return g;
}

at::Tensor generate(int64_t batch, const nlohmann::json& attention) {
  BigGanGenerator& g = celeba_generator();
  const std::string method = attention.at("method");
  g->attention()->set_method(method == "dense" ? nullptr
                                               : std::shared_ptr<const AttentionMethod>(make_attention(attention)));
  at::Generator z_gen = at::make_generator<at::CPUGeneratorImpl>(1), attention_gen = at::make_generator<at::CPUGeneratorImpl>(2);
  at::NoGradGuard no_grad;
  return g->forward(at::randn({batch, 120}, z_gen), at::zeros({batch}, at::kLong), attention_gen);
}

void BM_BigGanForward(benchmark::State& state) {
  const int64_t batch = state.range(0);
  const nlohmann::json& attention = gan_methods().at(static_cast<size_t>(state.range(1)));
  static std::map<int64_t, double> dense_seconds;
  if (state.range(1) == 1) {  // validate once per batch, before SDPA is timed
    const double diff = (generate(batch, attention) - generate(batch, gan_methods()[0])).abs().max().item<double>();
    if (diff > 1e-4) {
      state.SkipWithError(fmt::format("SDPA and dense generators differ by {}", diff).c_str());
      return;
    }
  }
  generate(batch, attention);  // warm-up
  reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(generate(batch, attention).data_ptr());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                         static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
  const ProcessMemory after = read_process_memory();
  state.counters["images_per_s"] = benchmark::Counter(static_cast<double>(batch), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_growth_MiB"] = static_cast<double>(after.peak_rss_bytes - before.rss_bytes) / (1 << 20);
  const auto shape = celeba_generator()->attention_shape(batch);
  state.counters["memory_fraction"] = make_attention(attention)->cost(*shape).memory_fraction;
  if (state.range(1) == 0) dense_seconds[batch] = seconds;
  if (dense_seconds.count(batch)) state.counters["speedup_vs_dense"] = dense_seconds[batch] / seconds;
}

BENCHMARK(BM_BigGanForward)
    ->ArgsProduct({{1, 4}, {0, 1, 2}})
    ->ArgNames({"batch", "method"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

}  // namespace
}  // namespace smyrf
