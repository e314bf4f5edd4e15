// BM_Encoder (part of smyrf_bench): the whole pretrained all-MiniLM-L6-v2 encoder forward
// (6 layers, 12 heads, hidden 384; models/all-MiniLM-L6-v2, linked by scripts/setup.sh) on a batch
// of 8 windows of real text (/usr/share/common-licenses/GPL-3) at N = 128 and 512 tokens, inference
// (no autograd), with dense, LibTorch SDPA, or SMYRF 2x32 attention in every layer.
// Counters: tokens/s, peak RSS growth of the timed calls, the attention's memory fraction, and
// speedup_vs_dense of the same N measured earlier in this run. Before timing, the SDPA and dense
// encoders must agree (1e-4 max abs on the last hidden states): a wrong model is never timed.
// BM_TrainStep: one fine-tuning step of MiniLM with a 2-label classification head on the same
// batches (forward in training mode, cross-entropy, backward, gradient clipping at 1.0, AdamW step),
// with dense, SDPA, SMYRF 2x32 and SMYRF 8x32 (the paper's IMDB setting) attention in every layer,
// and 8x32 through the LibTorch twin (method 4, `kernel: reference`) for comparison;
// the same counters, except that peak_rss_growth_MiB includes the warm-up step (gradients, AdamW
// state): run one case per process for its own peak. What finetune.cpp does per optimizer step.
// A model, tokenizer or text that cannot be loaded skips every case with the reason.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <benchmark/benchmark.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <map>

#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/models/encoder.h"
#include "core/models/sequence_classifier.h"
#include "core/text/tokenizer.h"
#include "datasets/text_windows.h"

namespace smyrf {
namespace {

constexpr int64_t kEncoderBatch = 8;

const std::string& minilm_dir() {
  static const std::string dir = (std::filesystem::path(SMYRF_SOURCE_DIR) / "models" / "all-MiniLM-L6-v2").string();
  return dir;
}

struct EncoderBench {
  PretrainedEncoder model;
  std::map<int64_t, std::pair<at::Tensor, at::Tensor>> ids_and_keep;  // by N
};

// The loaded model and inputs, or the reason they could not be loaded (then every case is skipped).
EncoderBench* encoder_bench(std::string& why_not) {
  static std::string failure;
  static std::unique_ptr<EncoderBench> bench = []() -> std::unique_ptr<EncoderBench> {
   try {
    auto b = std::make_unique<EncoderBench>();
    b->model = load_pretrained_encoder(minilm_dir());
    const auto tokenizer = load_tokenizer(minilm_dir());
    for (int64_t n : {128, 512}) {
      TextWindowOptions options;
      options.files = {"/usr/share/common-licenses/GPL-3"};
      options.max_tokens = static_cast<size_t>(n);
      options.min_tokens = static_cast<size_t>(n);  // full windows only: every row is N tokens
      options.max_windows = kEncoderBatch;
      std::vector<Encoding> encodings;
      for (const TextWindow& w : text_windows(*tokenizer, options)) encodings.push_back(w.encoding);
      const PaddedBatch padded = pad_batch(encodings, tokenizer->pad_id());
      const std::vector<int64_t> shape{static_cast<int64_t>(padded.batch), static_cast<int64_t>(padded.length)};
      b->ids_and_keep[n] = {at::tensor(padded.ids_BN, at::kLong).view(shape),
                            at::tensor(padded.mask_BN, at::kLong).view(shape).ne(0)};
    }
    return b;
   } catch (const std::exception& e) {
    failure = fmt::format("{} (models/all-MiniLM-L6-v2 is linked by scripts/setup.sh)", e.what());
    return nullptr;
   }
  }();
  why_not = failure;
  return bench.get();
}

const std::vector<nlohmann::json>& encoder_methods() {
  static const std::vector<nlohmann::json> methods = {
      {{"method", "dense"}}, {{"method", "sdpa"}}, {{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 32}}};
  return methods;
}

at::Tensor run_encoder(EncoderBench& b, int64_t N, const nlohmann::json& attention) {
  b.model.encoder->set_attention(make_attention(attention));
  const auto& [ids, keep] = b.ids_and_keep.at(N);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  at::NoGradGuard no_grad;
  return b.model.encoder->forward(ids, std::nullopt, keep, gen).hidden_BNC;
}

// The loaded model and inputs, or nullptr after skipping the case with the reason.
EncoderBench* encoder_bench_or_skip(benchmark::State& state) {
  std::string why_not;
  EncoderBench* b = encoder_bench(why_not);
  if (b == nullptr) state.SkipWithError(why_not.c_str());
  return b;
}

// Counters of a finished timing loop that started at t0 (case arguments: N, then the method's
// index, 0 = dense): tokens/s, peak RSS growth since `before`, the method's memory fraction, and the
// speedup over dense at the same N when dense ran earlier in this process.
void set_counters(benchmark::State& state, std::chrono::steady_clock::time_point t0, const ProcessMemory& before,
                  const at::Tensor& keep_BN, const EncoderConfig& config, const nlohmann::json& attention,
                  std::map<int64_t, double>& dense_seconds) {
  const int64_t N = state.range(0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() /
                         static_cast<double>(std::max<benchmark::IterationCount>(1, state.iterations()));
  const ProcessMemory after = read_process_memory();
  const int64_t tokens = keep_BN.sum().item<int64_t>();
  state.counters["tokens_per_s"] = benchmark::Counter(static_cast<double>(tokens), benchmark::Counter::kIsIterationInvariantRate);
  state.counters["peak_rss_growth_MiB"] = static_cast<double>(after.peak_rss_bytes - before.rss_bytes) / (1 << 20);
  state.counters["memory_fraction"] =
      make_attention(attention)
          ->cost({keep_BN.size(0), config.num_attention_heads, N, N, config.head_dim(), config.head_dim(), 4})
          .memory_fraction;
  if (state.range(1) == 0) dense_seconds[N] = seconds;
  if (dense_seconds.count(N)) state.counters["speedup_vs_dense"] = dense_seconds[N] / seconds;
}

void BM_Encoder(benchmark::State& state) {
  EncoderBench* b = encoder_bench_or_skip(state);
  if (b == nullptr) return;
  const int64_t N = state.range(0);
  const nlohmann::json& attention = encoder_methods().at(static_cast<size_t>(state.range(1)));
  static std::map<int64_t, double> dense_seconds;
  if (state.range(1) == 1) {  // validate once per N, before SDPA is timed
    const double diff = (run_encoder(*b, N, attention) - run_encoder(*b, N, encoder_methods()[0])).abs().max().item<double>();
    if (diff > 1e-4) {
      state.SkipWithError(fmt::format("SDPA and dense encoders differ by {} at N = {}", diff, N).c_str());
      return;
    }
  }
  const auto& [ids, keep] = b->ids_and_keep.at(N);
  run_encoder(*b, N, attention);  // warm-up
  reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(run_encoder(*b, N, attention).data_ptr());
  set_counters(state, t0, before, keep, b->model.config, attention, dense_seconds);
}

BENCHMARK(BM_Encoder)
    ->ArgsProduct({{128, 512}, {0, 1, 2}})
    ->ArgNames({"N", "method"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

const std::vector<nlohmann::json>& train_methods() {
  static const std::vector<nlohmann::json> methods = {
      {{"method", "dense"}},
      {{"method", "sdpa"}},
      {{"method", "smyrf"}, {"n_hashes", 2}, {"q_cluster_size", 32}},
      {{"method", "smyrf"}, {"n_hashes", 8}, {"q_cluster_size", 32}},
      {{"method", "smyrf"}, {"n_hashes", 8}, {"q_cluster_size", 32}, {"kernel", "reference"}}};
  return methods;
}

void BM_TrainStep(benchmark::State& state) {
  EncoderBench* b = encoder_bench_or_skip(state);
  if (b == nullptr) return;
  const int64_t N = state.range(0);
  const nlohmann::json& attention = train_methods().at(static_cast<size_t>(state.range(1)));
  static std::map<int64_t, double> dense_seconds;
  PretrainedClassifier loaded = load_pretrained_classifier(minilm_dir(), 2, std::nullopt, 0);
  SequenceClassifier model = loaded.model;
  model->encoder()->set_attention(make_attention(attention));
  model->train();
  torch::optim::AdamW optimizer(model->parameters(), torch::optim::AdamWOptions(5e-5));
  const auto& [ids, keep] = b->ids_and_keep.at(N);
  const at::Tensor labels = at::arange(ids.size(0), at::kLong).remainder(2);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(0);
  const auto step = [&] {
    const at::Tensor loss = model->loss(model->forward(ids, std::nullopt, keep, gen), labels);
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
    optimizer.step();
    optimizer.zero_grad();
    return loss.item<double>();
  };
  // The peak counts from before the warm-up step, which allocates the gradients and AdamW's state:
  // run one case per process (--benchmark_filter) for a peak of its own.
  reset_peak_rss();
  const ProcessMemory before = read_process_memory();
  step();  // warm-up
  const auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) benchmark::DoNotOptimize(step());
  set_counters(state, t0, before, keep, loaded.config, attention, dense_seconds);
}

BENCHMARK(BM_TrainStep)  // SMYRF 8x32 only at 512 tokens: at 128 it would cost twice dense
    ->Args({128, 0})->Args({128, 1})->Args({128, 2})
    ->Args({512, 0})->Args({512, 1})->Args({512, 2})->Args({512, 3})->Args({512, 4})
    ->ArgNames({"N", "method"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace
}  // namespace smyrf
