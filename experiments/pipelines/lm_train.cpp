// lm_train: a small decoder-only language model (core/models/decoder.h) trained from scratch on real
// text with any causal attention method, scored by held-out perplexity: PolySketchFormer's
// experiment (perplexity against context length, training speed), at a size a CPU trains.
//
// Config sections:
//   "model": {"architecture": "llama" | "gpt2", "hidden_size": 128, "layers": 4, "heads": 4,
//             "kv_heads": 0 (= heads; Llama's grouped-query attention), "intermediate_size": 0
//             (= 4·hidden for GPT-2, 8/3·hidden rounded up to a multiple of 8 for Llama),
//             "dropout": 0 (GPT-2's residual dropout), "tokenizer": "bytes" | DIR,
//             "attention_layers": [..] (the layers that run `attention`; default all, others dense)}
//   "data":  files, held_out_fraction, max_documents (engines/language_model.h), "context": 256
//            (the tokens a model sees; sweep it for perplexity against context length)
//   "attention": any method that supports causal masks; memory_budget is resolved at the context
//   "train": {"steps": 1000, "batch": 8, "grad_accumulation": 1, "log_every": 10,
//             "checkpoint_every": 200, "keep_checkpoint": false, "save_model": true, and the AdamW
//             keys of engines/adamw_section.h with lr 1e-3, weight_decay 0.1, adam_betas
//             [0.9, 0.95], warmup_steps 0 or warmup_ratio 0.05, max_grad_norm 1}
//   "eval":  {"every": 0 (steps between held-out scores; 0 = at the end only), "max_windows": 64
//             (0 = the whole held-out stream), "batch": 8}
//   "output": checkpoints [<output.path without .h5>.checkpoints]
//
// Training windows (context + 1 ids) start at offsets drawn uniformly over the training stream from
// a generator seeded by (seed, step, micro-batch), so a resumed run reads the same windows. Training
// runs in the shared engine (engines/training_loop.h): checkpoints, resume after a kill, curves.
// `final/` in the run's folder is a Hugging Face directory of the trained model (config.json with
// "smyrf_lm": tokenizer, attention, context; model.safetensors), which lm_dropin and transformers
// read.
// Metrics: eval_loss, eval_ppl (per token), eval_bits_per_byte, eval_ppl_byte, eval_tokens;
// train_loss_final (the last log window's mean), train_steps, train_time_s (forward, backward and
// optimizer steps only), train_steps_per_s, train_tokens_per_s, eval_time_s, parameters,
// memory_fraction (attention entries vs dense at the context, mean over layers), peak memory,
// corpus sizes (train_corpus_tokens, held_out_tokens, documents, bytes_per_token).
// Curves: train_loss and lr against train_loss_step; eval_loss, eval_ppl_byte against eval_step and
// eval_train_time_s (perplexity at equal steps and at equal training time).
// Tested by tests/test_lm.cpp (smoke config, every causal method trains, resume after SIGKILL gives
// the uninterrupted result, bad input).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/models/module_state.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/file_writer.h"
#include "core/util/strings.h"
#include "experiments/engines/adamw_section.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/engines/language_model.h"
#include "experiments/engines/pretrained_text.h"
#include "experiments/engines/training_loop.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const EnumNames<DecoderArchitecture> kArchitectureNames = {{"llama", DecoderArchitecture::kLlama},
                                                          {"gpt2", DecoderArchitecture::kGpt2}};

struct LmModelSection {
  DecoderArchitecture architecture = DecoderArchitecture::kLlama;
  int64_t hidden_size = 128, layers = 4, heads = 4, kv_heads = 0, intermediate_size = 0;
  double dropout = 0.0;
  std::string tokenizer = "bytes";
  std::vector<int64_t> attention_layers;
};

struct LmTrainOptions {
  int64_t steps = 1000, batch = 8, grad_accumulation = 1, log_every = 10, checkpoint_every = 200;
  bool keep_checkpoint = false, save_model = true;
  AdamWSection optimizer;
};

struct LmEvalOptions {
  int64_t every = 0, max_windows = 64, batch = 8;
};

struct LmTrainPlan : RunPlan {
  LmModelSection model;
  LmCorpusOptions corpus;
  int64_t context = 256;
  json attention;
  LmTrainOptions train;
  LmEvalOptions eval;
  at::Device device = at::Device(at::kCPU);
  uint64_t seed = 0;
  std::string run_dir;
  json identity;
};

void positive(const JsonReader& r, const char* key, int64_t value, int64_t at_least = 1) {
  if (value < at_least)
    throw ConfigError(fmt::format("config '{}': '{}.{}' must be >= {}, got {}", r.source(), r.path(), key, at_least,
                                  value));
}

LmModelSection read_model(const json& config, const std::string& source) {
  LmModelSection m;
  JsonReader r(config.value("model", json::object()), "model", source);
  r.get_enum("architecture", m.architecture, kArchitectureNames).get("hidden_size", m.hidden_size);
  r.get("layers", m.layers).get("heads", m.heads).get("kv_heads", m.kv_heads);
  r.get("intermediate_size", m.intermediate_size).get("dropout", m.dropout).get("tokenizer", m.tokenizer);
  r.get("attention_layers", m.attention_layers);
  r.finish();
  positive(r, "hidden_size", m.hidden_size, 2);
  positive(r, "layers", m.layers);
  positive(r, "heads", m.heads);
  positive(r, "kv_heads", m.kv_heads, 0);
  positive(r, "intermediate_size", m.intermediate_size, 0);
  const int64_t kv = m.kv_heads == 0 ? m.heads : m.kv_heads;
  if (m.hidden_size % m.heads != 0 || (m.hidden_size / m.heads) % 2 != 0 || m.heads % kv != 0)
    throw ConfigError(fmt::format("config '{}': 'model.heads' ({}) must divide 'model.hidden_size' ({}) into an even "
                                  "head dimension, and 'model.kv_heads' ({}) must divide the heads", source, m.heads,
                                  m.hidden_size, kv));
  if (m.architecture == DecoderArchitecture::kGpt2 && kv != m.heads)
    throw ConfigError(fmt::format("config '{}': 'model.kv_heads' is for Llama; GPT-2 has one key/value head per "
                                  "query head", source));
  if (!(m.dropout >= 0 && m.dropout < 1))
    throw ConfigError(fmt::format("config '{}': 'model.dropout' must be in [0, 1), got {}", source, m.dropout));
  if (m.dropout > 0 && m.architecture == DecoderArchitecture::kLlama)
    throw ConfigError(fmt::format("config '{}': 'model.dropout' is GPT-2's residual dropout; Llama has none (set it "
                                  "to 0, or use an attention method's own dropout)", source));
  for (int64_t layer : m.attention_layers)
    if (layer < 0 || layer >= m.layers)
      throw ConfigError(fmt::format("config '{}': 'model.attention_layers' holds {}, but the model has {} layers (0..{})",
                                    source, layer, m.layers, m.layers - 1));
  return m;
}

DecoderConfig decoder_config(const LmModelSection& m, int64_t vocab_size, int64_t context) {
  DecoderConfig c;
  c.architecture = m.architecture;
  c.vocab_size = vocab_size;
  c.hidden_size = m.hidden_size;
  c.num_layers = m.layers;
  c.num_heads = m.heads;
  c.num_kv_heads = m.kv_heads == 0 ? m.heads : m.kv_heads;
  c.head_dim = m.hidden_size / m.heads;
  const bool llama = m.architecture == DecoderArchitecture::kLlama;
  c.intermediate_size = m.intermediate_size > 0 ? m.intermediate_size
                        : llama                 ? (8 * m.hidden_size / 3 + 7) / 8 * 8
                                                : 4 * m.hidden_size;
  c.max_positions = context;
  c.norm_eps = llama ? 1e-6 : 1e-5;
  c.tie_word_embeddings = true;
  c.hidden_dropout = m.dropout;
  return c;
}

LmTrainOptions read_train(const json& config, const std::string& source) {
  LmTrainOptions t;
  t.optimizer.lr = 1e-3;
  t.optimizer.weight_decay = 0.1;
  t.optimizer.adam_betas = {0.9, 0.95};
  JsonReader r(config.value("train", json::object()), "train", source);
  r.get("steps", t.steps).get("batch", t.batch).get("grad_accumulation", t.grad_accumulation);
  r.get("log_every", t.log_every).get("checkpoint_every", t.checkpoint_every);
  r.get("keep_checkpoint", t.keep_checkpoint).get("save_model", t.save_model);
  if (!r.has("warmup_steps") && !r.has("warmup_ratio")) t.optimizer.warmup_ratio = 0.05;
  t.optimizer.read(r);
  r.finish();
  positive(r, "steps", t.steps, 0);
  positive(r, "batch", t.batch);
  positive(r, "grad_accumulation", t.grad_accumulation);
  positive(r, "log_every", t.log_every);
  positive(r, "checkpoint_every", t.checkpoint_every, 0);
  return t;
}

LmEvalOptions read_eval(const json& config, const std::string& source) {
  LmEvalOptions e;
  JsonReader r(config.value("eval", json::object()), "eval", source);
  r.get("every", e.every).get("max_windows", e.max_windows).get("batch", e.batch);
  r.finish();
  positive(r, "every", e.every, 0);
  positive(r, "max_windows", e.max_windows, 0);
  positive(r, "batch", e.batch);
  return e;
}

LmTrainPlan make_lm_train_plan(const json& config, const RunContext& ctx) {
  LmTrainPlan plan;
  plan.model = read_model(config, ctx.source);
  JsonReader data(config.value("data", json::object()), "data", ctx.source);
  read_lm_corpus_options(data, plan.corpus);
  data.get("context", plan.context);
  data.finish();
  positive(data, "context", plan.context, 2);
  plan.attention = config.value("attention", json());
  plan.train = read_train(config, ctx.source);
  plan.eval = read_eval(config, ctx.source);
  plan.device = training_device(config, ctx.source, /*require_available=*/false);
  plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
  plan.run_dir = (fs::path(checkpoints_root(config, ctx)) / ctx.run_id).string();
  plan.identity = run_identity(config);
  if (plan.model.tokenizer != "bytes" && !fs::is_directory(plan.model.tokenizer))
    throw IoError(fmt::format("config '{}': 'model.tokenizer' is '{}', which is neither \"bytes\" nor a tokenizer "
                              "directory", ctx.source, plan.model.tokenizer));
  check_lm_files(plan.corpus, ctx.source);
  // vocab_size does not change what the attention can serve: a placeholder checks it here
  causal_attention(plan.attention, decoder_config(plan.model, 256, plan.context), plan.context, ctx.source, nullptr);
  return plan;
}

// ---- the training task ----------------------------------------------------------------------

struct LmSetup {
  LmTokenizer tokenizer;
  LmCorpus corpus;
  DecoderConfig mc;
  TransformerDecoder model{nullptr};
  std::shared_ptr<const AttentionMethod> method;
  BudgetChoice budget;
};

LmSetup set_up(const LmTrainPlan& plan, const RunContext& ctx) {
  LmSetup s{LmTokenizer::from_spec(plan.model.tokenizer), {}, {}, nullptr, nullptr, {}};
  s.corpus = load_lm_corpus(plan.corpus, s.tokenizer, fmt::format("config '{}': 'data.files'", ctx.source));
  if (static_cast<int64_t>(s.corpus.train.ids.size()) < plan.context + 1)
    throw ConfigError(fmt::format("config '{}': the training part holds {} tokens, fewer than one window of "
                                  "data.context + 1 = {}: add files or lower data.context", ctx.source,
                                  s.corpus.train.ids.size(), plan.context + 1));
  if (static_cast<int64_t>(s.corpus.held_out.ids.size()) < plan.context + 1)
    throw ConfigError(fmt::format("config '{}': the held-out part ({} document(s), {} tokens) is shorter than one "
                                  "window of {}: raise data.held_out_fraction or lower data.context", ctx.source,
                                  s.corpus.held_out.documents.size(), s.corpus.held_out.ids.size(), plan.context + 1));
  s.mc = decoder_config(plan.model, s.tokenizer.vocab_size(), plan.context);
  s.model = TransformerDecoder(s.mc, plan.seed);
  s.method = causal_attention(plan.attention, s.mc, plan.context, ctx.source, &s.budget);
  s.model->set_attention(s.method, plan.model.attention_layers);
  s.model->to(plan.device);
  return s;
}

class LmTrainTask : public TrainingTask {
 public:
  LmTrainTask(const LmTrainPlan& plan, const std::string& run_id, LmSetup& setup)
      : plan_(plan), run_id_(run_id), s_(setup), optimizer_(make_adamw(*setup.model, plan.train.optimizer)),
        parameters_(setup.model->parameters()), method_gen_(at::make_generator<at::CPUGeneratorImpl>(plan.seed)) {
    at::manual_seed(plan.seed);  // hidden dropout draws from LibTorch's default generators
  }

  TrainingSchedule schedule() const {
    TrainingSchedule schedule;
    schedule.total_steps = plan_.train.steps;
    schedule.accumulation = plan_.train.grad_accumulation;
    schedule.log_every = plan_.train.log_every;
    schedule.checkpoint_every = plan_.train.checkpoint_every;
    schedule.step_curve = "train_loss_step";
    schedule.device = plan_.device;
    return schedule;
  }

  MicroBatchLog accumulate(int64_t step) override {
    const auto t0 = std::chrono::steady_clock::now();
    micro_ = step == micro_step_ ? micro_ + 1 : 0;
    micro_step_ = step;
    s_.model->train();
    const at::Tensor ids_BN = window_batch(s_.corpus.train.ids, window_starts(step, micro_), plan_.context).to(plan_.device);
    const at::Tensor logits_BNV = s_.model->forward(ids_BN.slice(1, 0, plan_.context), std::nullopt, method_gen_).logits_BNV;
    const double scored = static_cast<double>(ids_BN.size(0) * plan_.context);
    const at::Tensor loss = next_token_loss_sum(logits_BNV, ids_BN) / scored;
    (loss / static_cast<double>(plan_.train.grad_accumulation)).backward();
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(fmt::format("run '{}': the training loss became {} at step {}; lower train.lr", run_id_, loss_value, step));
    train_tokens_ += static_cast<int64_t>(scored);
    train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {{{"train_loss", loss_value}}, false};
  }

  NamedValues optimizer_step(int64_t step) override {
    const auto t0 = std::chrono::steady_clock::now();
    const double lr = adamw_step(optimizer_, parameters_, plan_.train.optimizer, step, plan_.train.steps);
    train_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {{"lr", lr}};
  }

  std::string progress_label() const override { return "step"; }

  bool after_step(int64_t steps_done, bool last, Curves& curves) override {
    if (!last && plan_.eval.every > 0 && steps_done % plan_.eval.every == 0) record_eval(steps_done, curves);
    return false;
  }

  void finish(int64_t steps_done, Curves& curves) override { record_eval(steps_done, curves); }

  json position() const override { return {{"train_tokens", train_tokens_}, {"train_seconds", train_seconds_}}; }
  void set_position(const json& j) override {
    train_tokens_ = j.at("train_tokens");
    train_seconds_ = j.at("train_seconds");
  }
  TrainingParts parts() override { return {{{"model", s_.model.ptr().get()}}, {{"optimizer", &optimizer_}}, {method_gen_}}; }

  LmScore final_score;
  double eval_time_s = 0;
  int64_t train_tokens() const { return train_tokens_; }

 private:
  // Uniform offsets over the training stream, from (seed, step, micro-batch) alone.
  std::vector<int64_t> window_starts(int64_t step, int64_t micro) const {
    std::seed_seq seq{plan_.seed, static_cast<uint64_t>(step), static_cast<uint64_t>(micro)};
    std::mt19937_64 rng(seq);
    std::uniform_int_distribution<int64_t> offset(0, static_cast<int64_t>(s_.corpus.train.ids.size()) - plan_.context - 1);
    std::vector<int64_t> starts(static_cast<size_t>(plan_.train.batch));
    for (int64_t& start : starts) start = offset(rng);
    return starts;
  }

  void record_eval(int64_t steps_done, Curves& curves) {
    const auto t0 = std::chrono::steady_clock::now();
    final_score = score_held_out(s_.model, s_.corpus.held_out, plan_.context, plan_.eval.max_windows, plan_.eval.batch,
                                 plan_.seed + 1, plan_.device);
    eval_time_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    curves["eval_loss"].push_back(final_score.loss());
    curves["eval_ppl_byte"].push_back(std::exp(final_score.loss() / s_.corpus.held_out.bytes_per_token()));
    curves["eval_step"].push_back(static_cast<double>(steps_done));
    curves["eval_train_time_s"].push_back(train_seconds_);
  }

  const LmTrainPlan& plan_;
  const std::string run_id_;
  LmSetup& s_;
  torch::optim::AdamW optimizer_;
  std::vector<at::Tensor> parameters_;
  at::Generator method_gen_;
  int64_t micro_step_ = -1, micro_ = 0;
  int64_t train_tokens_ = 0;
  double train_seconds_ = 0;
};

// ---- results --------------------------------------------------------------------------------

// A Hugging Face directory: transformers reads config.json and model.safetensors; lm_dropin also
// reads "smyrf_lm" (the tokenizer and how the model was trained).
void export_lm(const fs::path& dir, const LmTrainPlan& plan, const LmSetup& s) {
  const fs::path tmp = dir.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  json hf = s.mc.to_hf_json();
  hf["smyrf_lm"] = {{"tokenizer", s.tokenizer.is_bytes() ? "bytes" : "."},
                    {"attention", s.method->options_json()},
                    {"attention_layers", plan.model.attention_layers},
                    {"context", plan.context}};
  write_whole_file((tmp / "config.json").string(), hf.dump(2) + "\n", "model config");
  write_safetensors((tmp / "model.safetensors").string(), module_state(*s.model.ptr()), {{"format", "pt"}});
  if (!s.tokenizer.is_bytes()) copy_tokenizer_files(plan.model.tokenizer, tmp.string());
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

void add_lm_train_metrics(const LmTrainPlan& plan, const LmSetup& s, const LmTrainTask& task,
                          TrainingOutcome& outcome, RunResult& result) {
  const auto metric = [&](const std::string& name, double value, const char* unit, bool higher = false) {
    result.metrics[name] = {value, unit, higher};
  };
  task.final_score.add_metrics("eval_", s.corpus.held_out.bytes_per_token(), result);
  const AttentionShape shape{1, s.mc.num_heads, plan.context, plan.context, s.mc.head_dim, s.mc.head_dim, 4, true};
  double fraction_sum = 0;
  for (int64_t l = 0; l < s.mc.num_layers; ++l)
    fraction_sum += &s.model->attention(l) == s.method.get() ? s.method->cost(shape).memory_fraction : 1.0;
  metric("memory_fraction", fraction_sum / static_cast<double>(s.mc.num_layers), "fraction");
  metric("train_steps", static_cast<double>(outcome.steps), "count");
  metric("resumed_from_step", static_cast<double>(outcome.resumed_from), "count");
  if (const auto it = outcome.curves.find("train_loss"); it != outcome.curves.end() && !it->second.empty())
    metric("train_loss_final", it->second.back(), "1");
  if (outcome.train_time_s > 0) {
    metric("train_time_s", outcome.train_time_s, "s");
    metric("train_steps_per_s", static_cast<double>(outcome.steps) / outcome.train_time_s, "1/s", true);
    metric("train_tokens_per_s", static_cast<double>(task.train_tokens()) / outcome.train_time_s, "1/s", true);
  }
  metric("eval_time_s", task.eval_time_s, "s");
  int64_t parameters = 0;
  for (const auto& p : s.model->parameters()) parameters += p.numel();
  metric("parameters", static_cast<double>(parameters), "count");
  metric("context", static_cast<double>(plan.context), "count");
  metric("train_corpus_tokens", static_cast<double>(s.corpus.train.ids.size()), "count");
  metric("held_out_tokens", static_cast<double>(s.corpus.held_out.ids.size()), "count");
  metric("documents", static_cast<double>(s.corpus.train.documents.size() + s.corpus.held_out.documents.size()), "count");
  metric("duplicate_documents", static_cast<double>(s.corpus.duplicate_documents), "count");
  metric("bytes_per_token", s.corpus.held_out.bytes_per_token(), "1");
  metric("threads", static_cast<double>(at::get_num_threads()), "count");
  outcome.memory.add_metrics(result);
  add_budget_metrics(s.budget, result);
}

class LmTrainPipeline : public TypedPipeline<LmTrainPlan> {
 public:
  std::string name() const override { return "lm_train"; }
  bool checkpoints() const override { return true; }

 protected:
  LmTrainPlan make_plan(const json& config, const RunContext& ctx) const override {
    return make_lm_train_plan(config, ctx);
  }

  RunResult run_plan(const LmTrainPlan& plan, const RunContext& ctx) const override {
    require_device_available(plan.device, ctx.source);
    LmSetup setup = set_up(plan, ctx);
    LmTrainTask task(plan, ctx.run_id, setup);
    TrainingOutcome outcome = run_training(task, task.schedule(), plan.run_dir, plan.identity, ctx);
    RunResult result;
    const fs::path run_dir = plan.run_dir;
    if (plan.train.steps > 0 && plan.train.save_model) export_lm(run_dir / "final", plan, setup);
    if (plan.train.steps > 0 && !plan.train.keep_checkpoint) remove_checkpoint(run_dir);
    add_lm_train_metrics(plan, setup, task, outcome, result);
    result.notes["documents_held_out"] = join(setup.corpus.held_out.documents, ", ");
    result.curves = outcome.curves;
    return result;
  }
};

}  // namespace

const Pipeline& lm_train_pipeline() {
  static const LmTrainPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
