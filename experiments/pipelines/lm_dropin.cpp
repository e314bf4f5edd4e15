// lm_dropin: a trained causal language model with an attention method dropped into its last layers,
// without retraining, scored by held-out perplexity against the same model with dense attention:
// HyperAttention's experiment (perplexity and speed against context length as the last ℓ layers
// are replaced), on any model lm_train saved or any Llama/GPT-2 Hugging Face directory.
//
// Config sections:
//   "model": {"path": DIR (config.json, model.safetensors; the tokenizer is config.json's
//             smyrf_lm.tokenizer when lm_train saved it, else the directory's tokenizer files),
//             "last_layers": 1..layers | "half" | "all" (how many of the last layers get `attention`;
//             default 1)}
//   "data":  files, held_out_fraction, max_documents (engines/language_model.h; give lm_train's
//            values to score the text it held out), "context": 1024 (tokens per window; sweep it),
//            "max_windows": 4 (0 = the whole held-out stream), "batch": 1
//   "attention": any causal method; memory_budget is resolved at the context
//   "eval":  {"repeats": 1} (timed passes of the replaced model; the median is reported)
//
// Shape legend: Y layers. Metrics:
//   ppl, bits_per_byte (and loss, ppl_byte, tokens)   the model with the method (engines/language_model.h)
//   dense_ppl, dense_bits_per_byte                     the same model and windows, dense everywhere
//   ppl_ratio                                          ppl / dense_ppl
//   attention_rel_error_mean/_max                      over the replaced layers: ||o - o_dense|| /
//                                                      ||o_dense|| of the method on the dense model's
//                                                      own Q/K/V of that layer (the error the layer
//                                                      adds, not what it inherits); tensor
//                                                      attention_rel_error_Y (0 for dense layers)
//   forward_time_s, dense_forward_time_s, speedup      the scoring passes (median of eval.repeats)
//   tokens_per_s, peak_rss_bytes, peak_rss_delta_bytes (the method's passes), memory_fraction,
//   replaced_layers, context
// Tested by tests/test_lm.cpp (smoke config on a model lm_train saved, dense drop-in is exact, bad
// input).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <set>

#include "core/attention/memory_budget.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/text_file.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/engines/language_model.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct LmDropinPlan : RunPlan {
  std::string model_dir;
  DecoderConfig mc;
  std::string tokenizer;  // "bytes" or a directory
  std::vector<int64_t> layers;  // replaced, ascending
  LmCorpusOptions corpus;
  int64_t context = 1024, max_windows = 4, batch = 1, repeats = 1;
  json attention;
  at::Device device = at::Device(at::kCPU);
  uint64_t seed = 0;
};

// 1, "half" or "all" of the model's layers -> the replaced layers (the last ones).
std::vector<int64_t> last_layers(const json& value, int64_t layers, const std::string& source) {
  int64_t count = 0;
  if (value.is_string() && value == "half") count = std::max<int64_t>(1, layers / 2);
  else if (value.is_string() && value == "all") count = layers;
  else if (value.is_number_integer() && value.get<int64_t>() >= 1 && value.get<int64_t>() <= layers) count = value.get<int64_t>();
  else
    throw ConfigError(fmt::format("config '{}': 'model.last_layers' must be 1..{} (the model's layers), \"half\" or "
                                  "\"all\", got {}", source, layers, value.dump()));
  std::vector<int64_t> replaced;
  for (int64_t l = layers - count; l < layers; ++l) replaced.push_back(l);
  return replaced;
}

// The tokenizer lm_train recorded in config.json, else the directory's own files.
std::string tokenizer_of(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  const json hf = parse_json(read_text_file(path, "model config"), {fmt::format("model config '{}'", path),
                                                                    "re-save the model or download it again", true});
  if (hf.contains("smyrf_lm") && hf["smyrf_lm"].is_object() && hf["smyrf_lm"].value("tokenizer", "") == "bytes")
    return "bytes";
  return dir;
}

LmDropinPlan make_dropin_plan(const json& config, const RunContext& ctx) {
  LmDropinPlan plan;
  JsonReader model(config.value("model", json::object()), "model", ctx.source);
  model.require("path", plan.model_dir);
  const json last = model.raw("last_layers");
  model.finish();
  if (!fs::is_regular_file(fs::path(plan.model_dir) / "config.json"))
    throw IoError(fmt::format("config '{}': 'model.path' is '{}', which holds no config.json; give a directory that "
                              "lm_train saved (<checkpoints>/<run>/final) or a Llama/GPT-2 Hugging Face model (scripts/fetch_models.sh openai-community/gpt2 downloads one)",
                              ctx.source, plan.model_dir));
  plan.mc = DecoderConfig::load((fs::path(plan.model_dir) / "config.json").string());
  plan.tokenizer = tokenizer_of(plan.model_dir);
  plan.layers = last_layers(last.is_null() ? json(1) : last, plan.mc.num_layers, ctx.source);
  JsonReader data(config.value("data", json::object()), "data", ctx.source);
  read_lm_corpus_options(data, plan.corpus);
  data.get("context", plan.context).get("max_windows", plan.max_windows).get("batch", plan.batch);
  data.finish();
  JsonReader eval(config.value("eval", json::object()), "eval", ctx.source);
  eval.get("repeats", plan.repeats);
  eval.finish();
  if (plan.context < 2 || plan.max_windows < 0 || plan.batch < 1 || plan.repeats < 1)
    throw ConfigError(fmt::format("config '{}': 'data.context' must be >= 2, 'data.max_windows' >= 0, 'data.batch' and "
                                  "'eval.repeats' >= 1; got {}, {}, {} and {}", ctx.source, plan.context,
                                  plan.max_windows, plan.batch, plan.repeats));
  if (plan.mc.architecture == DecoderArchitecture::kGpt2 && plan.context > plan.mc.max_positions)
    throw ConfigError(fmt::format("config '{}': 'data.context' is {}, but GPT-2 model '{}' has {} learned positions; "
                                  "lower data.context (a Llama model's RoPE takes any length)", ctx.source,
                                  plan.context, plan.model_dir, plan.mc.max_positions));
  check_lm_files(plan.corpus, ctx.source);
  plan.attention = config.value("attention", json());
  causal_attention(plan.attention, plan.mc, plan.context, ctx.source, nullptr);
  plan.device = training_device(config, ctx.source, /*require_available=*/false);
  plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
  return plan;
}

struct TimedScore {
  LmScore score;
  double median_s = 0;
};

TimedScore timed_score(TransformerDecoder& model, const LmStream& stream, const LmDropinPlan& plan, int64_t repeats,
                       const EncoderForwardOptions& options = {}) {
  TimedScore out;
  std::vector<double> seconds;
  for (int64_t i = 0; i < repeats; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    out.score = score_held_out(model, stream, plan.context, plan.max_windows, plan.batch, plan.seed, plan.device, options);
    seconds.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(seconds.begin(), seconds.end());
  out.median_s = seconds[seconds.size() / 2];
  return out;
}

// The dense model, once, with each replaced layer's method output on that layer's own inputs.
TimedScore dense_pass(TransformerDecoder& model, const LmStream& stream, const LmDropinPlan& plan,
                      const AttentionMethod& method, at::Tensor& rel_error_Y) {
  const int64_t Y = plan.mc.num_layers;
  std::vector<double> err_sq(static_cast<size_t>(Y), 0.0), ref_sq(static_cast<size_t>(Y), 0.0);
  const std::set<int64_t> replaced(plan.layers.begin(), plan.layers.end());
  auto teacher_gen = at::make_generator<at::CPUGeneratorImpl>(plan.seed + 1);
  EncoderForwardOptions options;
  options.observer = [&](int64_t layer, const AttentionInputs& in, const AttentionOutput& dense_out) {
    if (!replaced.count(layer)) return;
    const at::Tensor reference = dense_out.out_BHNE.to(at::kDouble);
    const at::Tensor approx = method.forward(in, teacher_gen).out_BHNE.to(at::kDouble);
    ref_sq[static_cast<size_t>(layer)] += reference.square().sum().item<double>();
    err_sq[static_cast<size_t>(layer)] += (approx - reference).square().sum().item<double>();
  };
  TimedScore dense = timed_score(model, stream, plan, 1, options);  // timed below, without the observer's work
  dense.median_s = timed_score(model, stream, plan, plan.repeats).median_s;
  rel_error_Y = at::zeros({Y}, at::kDouble);
  for (int64_t l : plan.layers) rel_error_Y[l] = std::sqrt(err_sq[static_cast<size_t>(l)] / std::max(ref_sq[static_cast<size_t>(l)], 1e-300));
  return dense;
}

void add_dropin_metrics(const LmDropinPlan& plan, const AttentionMethod& method, const TimedScore& dense,
                        const TimedScore& replaced, const at::Tensor& rel_error_Y, double bytes_per_token,
                        RunResult& result) {
  const auto metric = [&](const std::string& name, double value, const char* unit, bool higher = false) {
    result.metrics[name] = {value, unit, higher};
  };
  replaced.score.add_metrics("", bytes_per_token, result);
  RunResult dense_metrics;
  dense.score.add_metrics("dense_", bytes_per_token, dense_metrics);
  for (const char* name : {"dense_ppl", "dense_bits_per_byte"}) result.metrics[name] = dense_metrics.metrics[name];
  metric("ppl_ratio", std::exp(replaced.score.loss() - dense.score.loss()), "1");
  const at::Tensor errors = rel_error_Y.index_select(0, at::tensor(plan.layers, at::kLong));
  metric("attention_rel_error_mean", errors.mean().item<double>(), "1");
  metric("attention_rel_error_max", errors.max().item<double>(), "1");
  result.tensors["attention_rel_error_Y"] = named_array_of(rel_error_Y);
  metric("forward_time_s", replaced.median_s, "s");
  metric("dense_forward_time_s", dense.median_s, "s");
  metric("speedup", dense.median_s / replaced.median_s, "1", true);
  metric("tokens_per_s", static_cast<double>(replaced.score.tokens) / replaced.median_s, "1/s", true);
  const AttentionShape shape{1, plan.mc.num_heads, plan.context, plan.context, plan.mc.head_dim, plan.mc.head_dim, 4, true};
  const double fraction = method.cost(shape).memory_fraction;
  metric("memory_fraction", (fraction * static_cast<double>(plan.layers.size()) +
                             static_cast<double>(plan.mc.num_layers - static_cast<int64_t>(plan.layers.size()))) /
                                static_cast<double>(plan.mc.num_layers), "fraction");
  metric("replaced_layers", static_cast<double>(plan.layers.size()), "count");
  metric("context", static_cast<double>(plan.context), "count");
  metric("threads", static_cast<double>(at::get_num_threads()), "count");
}

class LmDropinPipeline : public TypedPipeline<LmDropinPlan> {
 public:
  std::string name() const override { return "lm_dropin"; }

 protected:
  LmDropinPlan make_plan(const json& config, const RunContext& ctx) const override { return make_dropin_plan(config, ctx); }

  RunResult run_plan(const LmDropinPlan& plan, const RunContext& ctx) const override {
    require_device_available(plan.device, ctx.source);
    PretrainedDecoder loaded = load_pretrained_decoder(plan.model_dir);
    loaded.decoder->to(plan.device);
    const LmTokenizer tokenizer = LmTokenizer::from_spec(plan.tokenizer);
    const LmCorpus corpus = load_lm_corpus(plan.corpus, tokenizer, fmt::format("config '{}': 'data.files'", ctx.source));
    if (static_cast<int64_t>(corpus.held_out.ids.size()) < plan.context + 1)
      throw ConfigError(fmt::format("config '{}': the held-out text holds {} tokens, fewer than one window of "
                                    "data.context + 1 = {}: add files, raise data.held_out_fraction or lower "
                                    "data.context", ctx.source, corpus.held_out.ids.size(), plan.context + 1));
    BudgetChoice budget;
    const auto method = causal_attention(plan.attention, plan.mc, plan.context, ctx.source, &budget);
    at::Tensor rel_error_Y;
    const TimedScore dense = dense_pass(loaded.decoder, corpus.held_out, plan, *method, rel_error_Y);
    loaded.decoder->set_attention(method, plan.layers);
    PeakMemoryWindow memory(plan.device);
    const TimedScore replaced = timed_score(loaded.decoder, corpus.held_out, plan, plan.repeats);
    memory.close();
    RunResult result;
    add_dropin_metrics(plan, *method, dense, replaced, rel_error_Y, corpus.held_out.bytes_per_token(), result);
    memory.add_metrics(result);
    add_budget_metrics(budget, result);
    return result;
  }
};

}  // namespace

const Pipeline& lm_dropin_pipeline() {
  static const LmDropinPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
