// Fine-tuning engine; see finetune.h. Shape legend: B examples in a batch, N tokens, K labels.
#include "experiments/engines/finetune.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/optim/adamw.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/models/sequence_classifier.h"
#include "core/text/tokenizer.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/engines/pretrained_text.h"
#include "experiments/engines/training_loop.h"
#include "experiments/metrics/task_metrics.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// ---- data -----------------------------------------------------------------------------------

struct EncodedSplit {
  std::vector<Encoding> encodings;
  std::vector<double> labels;
  int64_t truncated = 0;  // examples cut at max_seq_len
  bool regression = false;
};

// The first `limit` examples of a seeded shuffle, in file order (all when limit is 0 or larger).
std::vector<size_t> subsample(size_t n, int64_t limit, uint64_t seed) {
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  if (limit <= 0 || static_cast<size_t>(limit) >= n) return order;
  std::mt19937_64 rng(seed);
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(static_cast<size_t>(limit));
  std::sort(order.begin(), order.end());
  return order;
}

EncodedSplit encode_split(const Tokenizer& tokenizer, const TextSplit& split, int64_t max_seq_len, int64_t limit,
                          uint64_t seed) {
  EncodedSplit out;
  out.regression = split.is_regression();
  for (size_t i : subsample(split.examples.size(), limit, seed)) {
    const TextExample& ex = split.examples[i];
    std::vector<int64_t> ids_a = tokenizer.ids_of(ex.text_a);
    std::optional<std::vector<int64_t>> ids_b;
    if (ex.text_b) ids_b = tokenizer.ids_of(*ex.text_b);
    const size_t full = ids_a.size() + (ids_b ? ids_b->size() : 0) + tokenizer.special_tokens_added(ids_b.has_value());
    if (full > static_cast<size_t>(max_seq_len)) ++out.truncated;
    out.encodings.push_back(
        tokenizer.post_process(std::move(ids_a), std::move(ids_b), static_cast<size_t>(max_seq_len), true));
    out.labels.push_back(ex.label);
  }
  return out;
}

struct DeviceBatch {
  at::Tensor ids_BN, type_ids_BN, keep_BN, labels_B;
  int64_t real_tokens = 0, padded_tokens = 0;
};

// Padded to the longest member, and to at least min_length (see min_servable_length).
DeviceBatch make_batch(const EncodedSplit& split, const std::vector<size_t>& members, int64_t pad_id,
                       int64_t min_length, const at::Device& device) {
  std::vector<Encoding> encodings;
  std::vector<double> labels;
  for (size_t i : members) {
    encodings.push_back(split.encodings[i]);
    labels.push_back(split.labels[i]);
  }
  const TokenBatch tokens = token_batch(pad_batch(encodings, pad_id, static_cast<size_t>(min_length)));
  DeviceBatch b;
  b.ids_BN = tokens.ids_BN.to(device);
  b.type_ids_BN = tokens.type_ids_BN.to(device);
  b.keep_BN = tokens.keep_BN.to(device);
  b.real_tokens = tokens.real_tokens();
  b.padded_tokens = tokens.keep_BN.numel();
  const at::Tensor labels_B = at::tensor(labels, at::kDouble);
  b.labels_B = (split.regression ? labels_B.to(at::kFloat) : labels_B.to(at::kLong)).to(device);
  return b;
}

// One epoch's batches: a seeded shuffle, cut into groups of batch x grouping examples, each sorted by
// length (longest first) and cut into batches, so that a batch pads little.
std::vector<std::vector<size_t>> epoch_batches(const EncodedSplit& split, int64_t batch, int64_t grouping,
                                               uint64_t seed, int64_t epoch) {
  std::vector<size_t> order(split.encodings.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(epoch) + 1);
  std::shuffle(order.begin(), order.end(), rng);
  const size_t group = static_cast<size_t>(batch * grouping);
  std::vector<std::vector<size_t>> batches;
  for (size_t first = 0; first < order.size(); first += group) {
    const auto begin = order.begin() + static_cast<std::ptrdiff_t>(first);
    const auto end = order.begin() + static_cast<std::ptrdiff_t>(std::min(order.size(), first + group));
    if (grouping > 1)
      std::stable_sort(begin, end, [&](size_t a, size_t b) {
        return split.encodings[a].ids.size() > split.encodings[b].ids.size();
      });
    for (auto it = begin; it < end; it += std::min<std::ptrdiff_t>(batch, end - it)) {
      batches.emplace_back(it, std::min(end, it + batch));
    }
  }
  return batches;
}

// ---- model ----------------------------------------------------------------------------------

// The attention object with its memory budget resolved at max_seq_len and, when the method takes a
// dropout and the config gives none, config.json's attention_probs_dropout_prob (as Hugging Face).
std::shared_ptr<const AttentionMethod> build_attention(const json& attention, const EncoderConfig& mc,
                                                       int64_t max_seq_len, const std::string& json_path,
                                                       const std::string& source, BudgetChoice* choice) {
  const AttentionShape shape{1, mc.num_attention_heads, max_seq_len, max_seq_len, mc.head_dim(), mc.head_dim(), 4};
  BudgetChoice budget = resolve_memory_budget(attention.is_null() ? json{{"method", "dense"}} : attention, shape,
                                              json_path, source);
  json resolved = budget.attention;
  std::shared_ptr<const AttentionMethod> method = make_attention(resolved, json_path, source);
  if (!resolved.contains("dropout") && method->capabilities().dropout) {
    resolved["dropout"] = mc.attention_probs_dropout_prob;
    method = make_attention(resolved, json_path, source);
  }
  const AttentionRequest request{shape, false, true};
  if (const auto reasons = method->unsupported_reasons(request); !reasons.empty())
    throw ConfigError(fmt::format("config '{}': '{}' ({}) cannot serve {} tokens with padding: {}", source, json_path,
                                  method->name(), max_seq_len, join(reasons, "; ")));
  if (choice) *choice = budget;
  return method;
}

std::vector<int64_t> layers_or_all(const std::vector<int64_t>& layers, int64_t count) {
  if (!layers.empty()) return layers;
  std::vector<int64_t> all(static_cast<size_t>(count));
  std::iota(all.begin(), all.end(), int64_t{0});
  return all;
}

// Batches are padded to their longest member, but some methods cannot serve short sequences (SMYRF
// needs at least one cluster of queries). The shortest padded length from which on every method
// serves every length up to max_seq_len (checked there by validation); shorter batches are padded
// up to it, masked, as the paper's fixed-length padding would.
int64_t min_servable_length(const std::vector<std::shared_ptr<const AttentionMethod>>& methods, const EncoderConfig& mc,
                            int64_t max_seq_len) {
  int64_t length = max_seq_len;
  while (length > 1) {
    const int64_t n = length - 1;
    const AttentionRequest request{{1, mc.num_attention_heads, n, n, mc.head_dim(), mc.head_dim(), 4}, false, true};
    const bool all_serve = std::all_of(methods.begin(), methods.end(), [&](const auto& m) {
      return m->unsupported_reasons(request).empty();
    });
    if (!all_serve) break;
    length = n;
  }
  return length;
}

std::map<std::string, at::Tensor> cpu_parameters(torch::nn::Module& module) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& item : module.named_parameters()) tensors[item.key()] = item.value().detach().to(at::kCPU).contiguous();
  return tensors;
}

// A Hugging Face directory of the fine-tuned model: transformers and this engine both load it.
void export_model(const fs::path& dir, const std::string& base_model_dir, torch::nn::Module& model,
                  const std::vector<std::string>& label_names, const std::string& task, const json& attention) {
  const fs::path tmp = dir.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  const std::string base_config = (fs::path(base_model_dir) / "config.json").string();
  json hf = parse_json(read_text_file(base_config, "model config"),
                       {fmt::format("model config '{}'", base_config), "re-save the model or download it again"});
  const bool roberta = hf.value("model_type", std::string("bert")) == "roberta";
  hf["architectures"] = {roberta ? "RobertaForSequenceClassification" : "BertForSequenceClassification"};
  hf["problem_type"] = label_names.empty() ? "regression" : "single_label_classification";
  json id2label = json::object(), label2id = json::object();
  const std::vector<std::string> names = label_names.empty() ? std::vector<std::string>{"score"} : label_names;
  for (size_t i = 0; i < names.size(); ++i) {
    id2label[std::to_string(i)] = names[i];
    label2id[names[i]] = i;
  }
  hf["id2label"] = id2label;
  hf["label2id"] = label2id;
  hf["smyrf_finetune"] = {{"task", task}, {"attention", attention}};
  std::ofstream(tmp / "config.json") << hf.dump(2) << "\n";
  write_safetensors((tmp / "model.safetensors").string(), cpu_parameters(model), {{"format", "pt"}});
  copy_tokenizer_files(base_model_dir, tmp.string());
  fs::remove_all(dir);
  fs::rename(tmp, dir);
}

// ---- evaluation -----------------------------------------------------------------------------

struct EvalOutcome {
  std::map<std::string, double> metrics;
  double loss = 0;
};

EvalOutcome evaluate(SequenceClassifier& model, const EncodedSplit& split, const std::string& task, int64_t batch,
                     int64_t pad_id, int64_t min_length, const at::Device& device, uint64_t seed) {
  model->eval();
  at::NoGradGuard no_grad;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);  // the same draws for every evaluation
  std::vector<size_t> order(split.encodings.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return split.encodings[a].ids.size() > split.encodings[b].ids.size();
  });
  std::vector<double> predictions(order.size());
  double loss_sum = 0;
  for (size_t first = 0; first < order.size(); first += static_cast<size_t>(batch)) {
    const std::vector<size_t> members(order.begin() + static_cast<std::ptrdiff_t>(first),
                                      order.begin() + static_cast<std::ptrdiff_t>(
                                                          std::min(order.size(), first + static_cast<size_t>(batch))));
    const DeviceBatch b = make_batch(split, members, pad_id, min_length, device);
    const at::Tensor logits_BK = model->forward(b.ids_BN, b.type_ids_BN, b.keep_BN, gen);
    loss_sum += model->loss(logits_BK, b.labels_B).item<double>() * static_cast<double>(members.size());
    const at::Tensor predicted_B =
        (split.regression ? logits_BK.squeeze(1) : logits_BK.argmax(1)).to(at::kCPU, at::kDouble).contiguous();
    const double* predicted = predicted_B.data_ptr<double>();
    for (size_t i = 0; i < members.size(); ++i) predictions[members[i]] = predicted[i];
  }
  EvalOutcome outcome;
  outcome.metrics = task_metrics(task, predictions, split.labels);
  outcome.loss = loss_sum / static_cast<double>(order.size());
  return outcome;
}

// Accuracy and F1 are fractions (the report prints %); correlations are not.
std::string metric_unit(const std::string& name) {
  for (const char* base : {"accuracy", "f1", "acc_and_f1"})
    if (name.rfind(base, 0) == 0) return "fraction";
  return "1";
}

std::string suffixed(const std::string& name, const std::string& split) { return split.empty() ? name : name + "_" + split; }

// ---- the training task ----------------------------------------------------------------------

// What a run holds before training: encoded data, the model with its attention, the eval variants.
struct FinetuneSetup {
  EncodedSplit train_data;
  std::vector<std::pair<std::string, EncodedSplit>> eval_data;  // metric-name suffix -> split
  int64_t pad_id = 0;
  EncoderConfig mc;
  SequenceClassifier model{nullptr};
  std::vector<int64_t> layers;  // the layers that run the configured attention
  BudgetChoice budget;
  std::shared_ptr<const AttentionMethod> method;
  std::vector<std::shared_ptr<const AttentionMethod>> variant_methods;  // as plan.eval.variants
  int64_t min_length = 0;                                               // see min_servable_length
};

FinetuneSetup set_up_finetune(const FinetunePlan& plan, const RunContext& ctx, const FinetuneSplits& splits) {
  FinetuneSetup s;
  const auto tokenizer = load_tokenizer(plan.model.path);
  s.train_data = encode_split(*tokenizer, splits.train, plan.data.max_seq_len, plan.data.max_train_examples, plan.seed);
  for (const auto& [suffix, split] : splits.evals)
    s.eval_data.emplace_back(
        suffix, encode_split(*tokenizer, split, plan.data.max_seq_len, plan.data.max_eval_examples, plan.seed + 1));
  if (plan.train.epochs > 0 && s.train_data.encodings.empty())
    throw ConfigError(fmt::format("config '{}': the training split '{}' has no examples", ctx.source, splits.train.source));
  s.pad_id = tokenizer->pad_id();

  const std::vector<std::string>& label_names = splits.train.label_names;
  const int64_t num_labels = label_names.empty() ? 1 : static_cast<int64_t>(label_names.size());
  PretrainedClassifier loaded =
      load_pretrained_classifier(plan.model.path, num_labels, plan.train.classifier_dropout, plan.seed);
  if (static_cast<int64_t>(tokenizer->vocab_size()) > loaded.config.vocab_size)
    throw ConfigError(fmt::format("model '{}': the tokenizer has {} ids but the model's vocabulary is {}",
                                  plan.model.path, tokenizer->vocab_size(), loaded.config.vocab_size));
  s.model = loaded.model;
  s.mc = loaded.config;
  s.layers = layers_or_all(plan.model.attention_layers, s.mc.num_hidden_layers);
  s.method = build_attention(plan.attention, s.mc, plan.data.max_seq_len, "attention", ctx.source, &s.budget);
  s.model->encoder()->set_attention(s.method, s.layers);
  s.model->to(plan.device);
  for (const auto& [name, attention] : plan.eval.variants)
    s.variant_methods.push_back(build_attention(attention, s.mc, plan.data.max_seq_len,
                                                "eval.attention_variants." + name, ctx.source, nullptr));
  std::vector<std::shared_ptr<const AttentionMethod>> all_methods = s.variant_methods;
  all_methods.push_back(s.method);
  s.min_length = min_servable_length(all_methods, s.mc, plan.data.max_seq_len);
  return s;
}

// Fine-tuning as a TrainingTask: one micro-batch is one batch of examples; an epoch's end closes an
// accumulation group, records the epoch's mean loss, evaluates (eval.every_epoch) and asks for a
// checkpoint; finish() scores the final weights (or, with no training, the model as loaded).
class FinetuneTask : public TrainingTask {
 public:
  FinetuneTask(const FinetunePlan& plan, const std::string& run_id, const std::string& task, FinetuneSetup& setup)
      : plan_(plan), run_id_(run_id), task_(task), s_(setup), optimizer_(make_adamw(*setup.model, plan.train.optimizer)),
        all_parameters_(setup.model->parameters()), method_gen_(at::make_generator<at::CPUGeneratorImpl>(plan.seed)) {
    const FinetuneTrainOptions& train = plan.train;
    batches_per_epoch_ = (static_cast<int64_t>(s_.train_data.encodings.size()) + train.batch - 1) / train.batch;
    const int64_t steps_per_epoch = (batches_per_epoch_ + train.grad_accumulation - 1) / train.grad_accumulation;
    total_steps_ = train.epochs * steps_per_epoch;
    if (train.max_steps > 0) total_steps_ = std::min(total_steps_, train.max_steps);
    // The methods' draws and attention dropout come from method_gen_; hidden dropout from LibTorch's
    // default generators, seeded here (the engine saves them in checkpoints).
    at::manual_seed(plan.seed);
  }

  TrainingSchedule schedule() const {
    TrainingSchedule schedule;
    schedule.total_steps = total_steps_;
    schedule.accumulation = plan_.train.grad_accumulation;
    schedule.log_every = plan_.train.log_every;
    schedule.checkpoint_every = plan_.train.checkpoint_every;
    schedule.step_curve = "train_loss_step";
    schedule.device = plan_.device;
    return schedule;
  }

  MicroBatchLog accumulate(int64_t step) override {
    if (batches_epoch_ != epoch_) {
      batches_ = epoch_batches(s_.train_data, plan_.train.batch, plan_.train.length_grouping, plan_.seed, epoch_);
      batches_epoch_ = epoch_;
    }
    s_.model->train();
    const DeviceBatch batch = make_batch(s_.train_data, batches_[static_cast<size_t>(next_batch_)], s_.pad_id,
                                         s_.min_length, plan_.device);
    const at::Tensor logits_BK = s_.model->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, method_gen_);
    const at::Tensor loss = s_.model->loss(logits_BK, batch.labels_B);
    (loss / static_cast<double>(plan_.train.grad_accumulation)).backward();
    const double loss_value = loss.item<double>();
    if (!std::isfinite(loss_value))
      throw Error(fmt::format("run '{}': the training loss became {} at step {}; lower train.lr", run_id_,
                              loss_value, step));
    epoch_loss_ += loss_value;
    ++epoch_count_;
    train_tokens_ += batch.real_tokens;
    train_padded_tokens_ += batch.padded_tokens;
    train_examples_ += batch.ids_BN.size(0);
    ++next_batch_;
    return {{{"train_loss", loss_value}}, next_batch_ >= batches_per_epoch_};
  }

  NamedValues optimizer_step(int64_t step) override {
    return {{"lr", adamw_step(optimizer_, all_parameters_, plan_.train.optimizer, step, total_steps_)}};
  }

  std::string progress_label() const override { return fmt::format("epoch {}, step", epoch_ + 1); }

  bool after_step(int64_t, bool last, Curves& curves) override {
    if (last || next_batch_ < batches_per_epoch_) return false;  // finish() handles the last epoch
    close_epoch_loss(curves);
    if (plan_.eval.every_epoch) record_eval(curves, static_cast<double>(epoch_ + 1));
    ++epoch_;
    next_batch_ = 0;
    return true;
  }

  // The final weights are always scored, whatever eval.every_epoch says.
  void finish(int64_t steps_done, Curves& curves) override {
    if (steps_done == 0) {
      record_eval(curves, 0.0);  // no training: the model as loaded
      return;
    }
    if (epoch_count_ > 0) close_epoch_loss(curves);
    record_eval(curves, next_batch_ >= batches_per_epoch_
                            ? static_cast<double>(epoch_ + 1)
                            : static_cast<double>(epoch_) +
                                  static_cast<double>(next_batch_) / static_cast<double>(batches_per_epoch_));
  }

  nlohmann::json position() const override {
    return {{"epoch", epoch_}, {"next_batch", next_batch_}, {"train_tokens", train_tokens_},
            {"train_padded_tokens", train_padded_tokens_}, {"train_examples", train_examples_},
            {"epoch_loss", epoch_loss_}, {"epoch_count", epoch_count_}};
  }
  void set_position(const nlohmann::json& j) override {
    epoch_ = j.at("epoch");
    next_batch_ = j.at("next_batch");
    train_tokens_ = j.at("train_tokens");
    train_padded_tokens_ = j.at("train_padded_tokens");
    train_examples_ = j.at("train_examples");
    epoch_loss_ = j.at("epoch_loss");
    epoch_count_ = j.at("epoch_count");
  }

  TrainingParts parts() override { return {{{"model", s_.model.ptr().get()}}, {{"optimizer", &optimizer_}}, {method_gen_}}; }

  // Every eval split scored with the model's current attention: metrics by name, the mean loss.
  std::pair<std::map<std::string, double>, double> run_eval() {
    const auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, double> metrics;
    double loss_sum = 0;
    for (const auto& [suffix, split] : s_.eval_data) {
      const EvalOutcome outcome = evaluate(s_.model, split, task_, plan_.eval.batch, s_.pad_id, s_.min_length,
                                           plan_.device, plan_.seed + 2);
      for (const auto& [name, value] : outcome.metrics) metrics[suffixed(name, suffix)] = value;
      loss_sum += outcome.loss;
    }
    eval_time_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {metrics, s_.eval_data.empty() ? 0.0 : loss_sum / static_cast<double>(s_.eval_data.size())};
  }

  int64_t total_steps() const { return total_steps_; }
  int64_t train_tokens() const { return train_tokens_; }
  int64_t train_padded_tokens() const { return train_padded_tokens_; }
  int64_t train_examples() const { return train_examples_; }

  std::map<std::string, double> final_metrics;  // the last evaluation's
  double final_eval_loss = 0;
  double eval_time_s = 0;

 private:
  void close_epoch_loss(Curves& curves) {
    curves["train_loss_epoch"].push_back(epoch_loss_ / static_cast<double>(epoch_count_));
    epoch_loss_ = 0;
    epoch_count_ = 0;
  }
  void record_eval(Curves& curves, double epoch_position) {
    auto [metrics, loss] = run_eval();
    for (const auto& [name, value] : metrics) curves["eval_" + name].push_back(value);
    curves["eval_loss"].push_back(loss);
    curves["eval_epoch"].push_back(epoch_position);
    final_metrics = metrics;
    final_eval_loss = loss;
  }

  const FinetunePlan& plan_;
  const std::string run_id_, task_;
  FinetuneSetup& s_;
  torch::optim::AdamW optimizer_;
  std::vector<at::Tensor> all_parameters_;  // what gradient clipping sees
  at::Generator method_gen_;
  int64_t batches_per_epoch_ = 0, total_steps_ = 0;
  std::vector<std::vector<size_t>> batches_;  // the batches of epoch batches_epoch_
  int64_t batches_epoch_ = -1;
  // The position a checkpoint carries.
  int64_t epoch_ = 0, next_batch_ = 0;
  int64_t train_tokens_ = 0, train_padded_tokens_ = 0, train_examples_ = 0;
  double epoch_loss_ = 0;
  int64_t epoch_count_ = 0;
};

// The fine-tuned weights scored with each eval.attention_variants entry (interchangeability).
void score_variants(const FinetunePlan& plan, FinetuneSetup& setup, FinetuneTask& task, RunResult& result) {
  for (size_t v = 0; v < plan.eval.variants.size(); ++v) {
    const std::string& name = plan.eval.variants[v].first;
    setup.model->encoder()->set_attention(setup.variant_methods[v], setup.layers);
    auto [metrics, loss] = task.run_eval();
    for (const auto& [metric, value] : metrics) result.metrics[metric + "_with_" + name] = {value, metric_unit(metric), true};
    result.metrics["eval_loss_with_" + name] = {loss, "1", false};
  }
  setup.model->encoder()->set_attention(setup.method, setup.layers);
}

// Counts, throughput, memory and the budget; see the header comment for the list.
void add_run_metrics(const FinetunePlan& plan, const FinetuneSetup& s, const FinetuneTask& task,
                     TrainingOutcome& outcome, RunResult& result) {
  const int64_t n = plan.data.max_seq_len;
  const AttentionShape shape{1, s.mc.num_attention_heads, n, n, s.mc.head_dim(), s.mc.head_dim(), 4};
  double fraction_sum = 0;
  for (int64_t l = 0; l < s.mc.num_hidden_layers; ++l)
    fraction_sum += std::count(s.layers.begin(), s.layers.end(), l) ? s.method->cost(shape).memory_fraction : 1.0;
  const auto metric = [&](const std::string& name, double value, const char* unit, bool higher = false) {
    result.metrics[name] = {value, unit, higher};
  };
  metric("memory_fraction", fraction_sum / static_cast<double>(s.mc.num_hidden_layers), "fraction");
  metric("train_steps", static_cast<double>(outcome.steps), "count");
  metric("resumed_from_step", static_cast<double>(outcome.resumed_from), "count");
  const auto train_examples = static_cast<double>(s.train_data.encodings.size());
  metric("train_examples", train_examples, "count");
  int64_t eval_examples = 0;
  for (const auto& [suffix, split] : s.eval_data) eval_examples += static_cast<int64_t>(split.encodings.size());
  metric("eval_examples", static_cast<double>(eval_examples), "count");
  metric("truncated_fraction", train_examples == 0 ? 0.0 : static_cast<double>(s.train_data.truncated) / train_examples,
         "fraction");
  if (outcome.train_time_s > 0) {
    metric("train_time_s", outcome.train_time_s, "s");
    metric("train_tokens_per_s", static_cast<double>(task.train_tokens()) / outcome.train_time_s, "1/s", true);
    metric("train_examples_per_s", static_cast<double>(task.train_examples()) / outcome.train_time_s, "1/s", true);
    metric("train_padding_fraction",
           1.0 - static_cast<double>(task.train_tokens()) /
                     static_cast<double>(std::max<int64_t>(1, task.train_padded_tokens())),
           "fraction");
  }
  if (const auto it = outcome.curves.find("train_loss_epoch"); it != outcome.curves.end() && !it->second.empty())
    metric("train_loss_final", it->second.back(), "1");
  metric("eval_time_s", task.eval_time_s, "s");
  outcome.memory.add_metrics(result);
  metric("threads", static_cast<double>(at::get_num_threads()), "count");
  metric("min_padded_length", static_cast<double>(s.min_length), "count");
  add_budget_metrics(s.budget, result);
}


}  // namespace

FinetuneTrainOptions FinetuneTrainOptions::from_json(const json& config, const std::string& source) {
  FinetuneTrainOptions t;
  JsonReader r(config.value("train", json::object()), "train", source);
  r.get("epochs", t.epochs).get("batch", t.batch).get("grad_accumulation", t.grad_accumulation);
  t.optimizer.read(r);
  r.get("classifier_dropout", t.classifier_dropout).get("max_steps", t.max_steps);
  r.get("length_grouping", t.length_grouping).get("log_every", t.log_every);
  r.get("checkpoint_every", t.checkpoint_every).get("keep_checkpoint", t.keep_checkpoint);
  r.get("save_model", t.save_model);
  r.finish();
  const auto fail = [&](const char* key, const std::string& rule, const json& got) {
    throw ConfigError(fmt::format("config '{}': 'train.{}' must be {}, got {}", source, key, rule, got.dump()));
  };
  if (t.epochs < 0) fail("epochs", ">= 0 (0 = evaluate only)", t.epochs);
  if (t.batch < 1) fail("batch", ">= 1", t.batch);
  if (t.grad_accumulation < 1) fail("grad_accumulation", ">= 1", t.grad_accumulation);
  if (t.classifier_dropout && !(*t.classifier_dropout >= 0 && *t.classifier_dropout < 1))
    fail("classifier_dropout", "in [0, 1)", *t.classifier_dropout);
  if (t.max_steps < 0) fail("max_steps", ">= 0 (0 = the epochs decide)", t.max_steps);
  if (t.length_grouping < 1) fail("length_grouping", ">= 1 (1 = plain shuffle)", t.length_grouping);
  if (t.log_every < 1) fail("log_every", ">= 1", t.log_every);
  if (t.checkpoint_every < 0) fail("checkpoint_every", ">= 0 (0 = at epoch ends only)", t.checkpoint_every);
  return t;
}

FinetuneEvalOptions FinetuneEvalOptions::from_json(const json& config, const std::string& source) {
  FinetuneEvalOptions e;
  JsonReader r(config.value("eval", json::object()), "eval", source);
  r.get("batch", e.batch).get("every_epoch", e.every_epoch);
  const json& variants = r.raw("attention_variants");
  r.finish();
  if (e.batch < 1) throw ConfigError(fmt::format("config '{}': 'eval.batch' must be >= 1, got {}", source, e.batch));
  if (!variants.is_null() && !variants.is_object())
    throw ConfigError(fmt::format("config '{}': 'eval.attention_variants' must be an object of name -> attention "
                                  "object, e.g. {{\"dense\": {{\"method\": \"dense\"}}}}, got {}", source,
                                  json_excerpt(variants)));
  if (variants.is_object())
    for (const auto& [name, attention] : variants.items()) {
      const bool plain = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
      });
      if (!plain)
        throw ConfigError(fmt::format("config '{}': 'eval.attention_variants' name '{}' must be letters, digits and "
                                      "'_' (it becomes a metric suffix _with_<name>)", source, name));
      e.variants.emplace_back(name, attention);
    }
  return e;
}

void FinetuneDataOptions::read(JsonReader& r) {
  r.get("max_seq_len", max_seq_len).get("max_train_examples", max_train_examples);
  r.get("max_eval_examples", max_eval_examples);
  if (max_seq_len < 8)
    throw ConfigError(fmt::format("config '{}': '{}.max_seq_len' must be >= 8, got {}", r.source(), r.path(), max_seq_len));
  if (max_train_examples < 0 || max_eval_examples < 0)
    throw ConfigError(fmt::format("config '{}': '{}.max_train_examples' and '{}.max_eval_examples' must be >= 0 (0 = "
                                  "all), got {} and {}", r.source(), r.path(), r.path(), max_train_examples,
                                  max_eval_examples));
}

void plan_finetune(const json& config, const RunContext& ctx, FinetunePlan& plan) {
  plan.model = PretrainedModelSection::from_json(config, ctx.source);
  plan.attention = config.value("attention", json());
  plan.train = FinetuneTrainOptions::from_json(config, ctx.source);
  plan.eval = FinetuneEvalOptions::from_json(config, ctx.source);
  plan.run_dir = (fs::path(checkpoints_root(config, ctx)) / ctx.run_id).string();
  plan.device = training_device(config, ctx.source, /*require_available=*/false);
  plan.seed = static_cast<uint64_t>(config.value("seed", int64_t{0}));
  plan.identity = run_identity(config);
  const PretrainedModelSection& model = plan.model;
  const FinetuneDataOptions& data = plan.data;
  const FinetuneEvalOptions& eval = plan.eval;
  if (!fs::is_regular_file(fs::path(model.path) / "config.json"))
    throw IoError(fmt::format("config '{}': 'model.path' is '{}', which holds no config.json; give a Hugging Face model "
                              "directory (scripts/setup.sh links models/all-MiniLM-L6-v2; scripts/fetch_models.sh "
                              "downloads bert-base-uncased and roberta-base)", ctx.source, model.path));
  const EncoderConfig mc = EncoderConfig::load((fs::path(model.path) / "config.json").string());
  if (data.max_seq_len > mc.max_tokens())
    throw ConfigError(fmt::format("config '{}': 'data.max_seq_len' is {}, but model '{}' takes at most {} tokens",
                                  ctx.source, data.max_seq_len, model.path, mc.max_tokens()));
  for (int64_t layer : model.attention_layers)
    if (layer >= mc.num_hidden_layers)
      throw ConfigError(fmt::format("config '{}': 'model.attention_layers' holds {}, but the model has {} layers (0..{})",
                                    ctx.source, layer, mc.num_hidden_layers, mc.num_hidden_layers - 1));
  build_attention(plan.attention, mc, data.max_seq_len, "attention", ctx.source, nullptr);
  for (const auto& [name, attention] : eval.variants)
    build_attention(attention, mc, data.max_seq_len, "eval.attention_variants." + name, ctx.source, nullptr);
}

RunResult run_finetune(const FinetunePlan& plan, const RunContext& ctx, const FinetuneSplits& splits) {
  require_device_available(plan.device, ctx.source);
  FinetuneSetup setup = set_up_finetune(plan, ctx, splits);
  FinetuneTask task(plan, ctx.run_id, splits.task, setup);
  TrainingOutcome outcome = run_training(task, task.schedule(), plan.run_dir, plan.identity, ctx);

  RunResult result;
  for (const auto& [name, value] : task.final_metrics) result.metrics[name] = {value, metric_unit(name), true};
  result.metrics["eval_loss"] = {task.final_eval_loss, "1", false};
  score_variants(plan, setup, task, result);
  const fs::path run_dir = plan.run_dir;
  if (task.total_steps() > 0 && plan.train.save_model)
    export_model(run_dir / "final", plan.model.path, *setup.model, splits.train.label_names, splits.task,
                 setup.method->options_json());
  if (task.total_steps() > 0 && !plan.train.keep_checkpoint) remove_checkpoint(run_dir);
  add_run_metrics(plan, setup, task, outcome, result);
  result.curves = outcome.curves;
  return result;
}

}  // namespace smyrf
