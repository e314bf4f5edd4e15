// Fine-tuning engine; see finetune.h. Shape legend: B examples in a batch, N tokens, L labels.
#include "experiments/engines/finetune.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/nn/utils/clip_grad.h>
#include <torch/optim/adamw.h>
#include <torch/serialize/archive.h>

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
#include "core/util/strings.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/engines/pretrained_text.h"
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
  if (!resolved.contains("dropout") && make_attention(resolved, json_path, source)->options_json().contains("dropout"))
    resolved["dropout"] = mc.attention_probs_dropout_prob;
  auto method = std::shared_ptr<const AttentionMethod>(make_attention(resolved, json_path, source));
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

void copy_parameters_from(torch::nn::Module& module, const std::string& safetensors_path) {
  const SafetensorsFile file = SafetensorsFile::open(safetensors_path);
  at::NoGradGuard no_grad;
  for (auto& item : module.named_parameters()) {
    const at::Tensor stored = file.tensor(item.key());
    TORCH_CHECK(stored.sizes() == item.value().sizes(), "checkpoint '", safetensors_path, "': ", item.key(), " has shape ",
                stored.sizes(), ", the model expects ", item.value().sizes());
    item.value().copy_(stored);
  }
}

// ---- checkpoints ----------------------------------------------------------------------------

// What a run needs to continue where it stopped; everything else is in the files beside it.
struct TrainState {
  int64_t step = 0, epoch = 0, next_batch = 0;  // optimizer steps done; position in the data
  double train_time_s = 0;
  int64_t train_tokens = 0, train_padded_tokens = 0, train_examples = 0;
  double window_loss = 0, epoch_loss = 0;  // sums over the current log window / epoch
  int64_t window_count = 0, epoch_count = 0;
  std::map<std::string, std::vector<double>> curves;
  bool final_eval_current = false;  // the last eval was of the final weights (nothing to redo)

  json to_json() const {
    return {{"step", step}, {"epoch", epoch}, {"next_batch", next_batch}, {"train_time_s", train_time_s},
            {"train_tokens", train_tokens}, {"train_padded_tokens", train_padded_tokens},
            {"train_examples", train_examples}, {"window_loss", window_loss}, {"window_count", window_count},
            {"epoch_loss", epoch_loss}, {"epoch_count", epoch_count}, {"curves", curves}};
  }
  static TrainState from_json(const json& j) {
    TrainState s;
    s.step = j.at("step");
    s.epoch = j.at("epoch");
    s.next_batch = j.at("next_batch");
    s.train_time_s = j.at("train_time_s");
    s.train_tokens = j.at("train_tokens");
    s.train_padded_tokens = j.at("train_padded_tokens");
    s.train_examples = j.at("train_examples");
    s.window_loss = j.at("window_loss");
    s.window_count = j.at("window_count");
    s.epoch_loss = j.at("epoch_loss");
    s.epoch_count = j.at("epoch_count");
    s.curves = j.at("curves").get<std::map<std::string, std::vector<double>>>();
    return s;
  }
};

std::vector<at::Generator> generators_to_save(at::Generator& method_gen, const at::Device& device) {
  std::vector<at::Generator> gens{method_gen, at::detail::getDefaultCPUGenerator()};
  if (device.is_cuda()) gens.push_back(at::globalContext().defaultGenerator(device));
  return gens;
}

void save_checkpoint(const fs::path& run_dir, const json& identity, const TrainState& state, torch::nn::Module& model,
                     torch::optim::Optimizer& optimizer, std::vector<at::Generator> generators) {
  write_checkpoint(run_dir, identity, state.to_json(), [&](const fs::path& dir) {
    write_safetensors((dir / "model.safetensors").string(), cpu_parameters(model));
    torch::serialize::OutputArchive archive;
    optimizer.save(archive);
    save_generators(archive, std::move(generators));
    archive.save_to((dir / "optimizer.pt").string());
  });
}

TrainState load_checkpoint(const fs::path& dir, torch::nn::Module& model, torch::optim::Optimizer& optimizer,
                           std::vector<at::Generator> generators) {
  copy_parameters_from(model, (dir / "model.safetensors").string());
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "optimizer.pt").string());
  optimizer.load(archive);
  load_generators(archive, std::move(generators));
  return TrainState::from_json(checkpoint_state(dir));
}

// A Hugging Face directory of the fine-tuned model: transformers and this engine both load it.
void export_model(const fs::path& dir, const std::string& base_model_dir, torch::nn::Module& model,
                  const std::vector<std::string>& label_names, const std::string& task, const json& attention) {
  const fs::path tmp = dir.string() + ".tmp";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  std::ifstream in(fs::path(base_model_dir) / "config.json");
  json hf = json::parse(in);
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
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                           "vocab.json", "merges.txt"})
    if (fs::is_regular_file(fs::path(base_model_dir) / name))
      fs::copy_file(fs::path(base_model_dir) / name, tmp / name, fs::copy_options::overwrite_existing);
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
    const at::Tensor logits_BL = model->forward(b.ids_BN, b.type_ids_BN, b.keep_BN, gen);
    loss_sum += model->loss(logits_BL, b.labels_B).item<double>() * static_cast<double>(members.size());
    const at::Tensor predicted_B =
        (split.regression ? logits_BL.squeeze(1) : logits_BL.argmax(1)).to(at::kCPU, at::kDouble).contiguous();
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

double linear_schedule(int64_t step, int64_t warmup, int64_t total) {
  if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(std::max<int64_t>(1, total - warmup)));
}

}  // namespace

FinetuneTrainOptions FinetuneTrainOptions::from_json(const json& config, const std::string& source) {
  FinetuneTrainOptions t;
  JsonReader r(config.value("train", json::object()), "train", source);
  r.get("epochs", t.epochs).get("batch", t.batch).get("grad_accumulation", t.grad_accumulation).get("lr", t.lr);
  r.get("weight_decay", t.weight_decay).get("adam_betas", t.adam_betas).get("adam_eps", t.adam_eps);
  r.get("warmup_steps", t.warmup_steps).get("warmup_ratio", t.warmup_ratio).get("max_grad_norm", t.max_grad_norm);
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
  if (!(t.lr > 0)) fail("lr", "> 0", t.lr);
  if (!(t.weight_decay >= 0)) fail("weight_decay", ">= 0", t.weight_decay);
  if (t.adam_betas.size() != 2 || !(t.adam_betas[0] >= 0 && t.adam_betas[0] < 1) ||
      !(t.adam_betas[1] >= 0 && t.adam_betas[1] < 1))
    fail("adam_betas", "two numbers in [0, 1)", t.adam_betas);
  if (!(t.adam_eps > 0)) fail("adam_eps", "> 0", t.adam_eps);
  if (t.warmup_steps < 0) fail("warmup_steps", ">= 0", t.warmup_steps);
  if (!(t.warmup_ratio >= 0 && t.warmup_ratio < 1)) fail("warmup_ratio", "in [0, 1)", t.warmup_ratio);
  if (t.warmup_steps > 0 && t.warmup_ratio > 0)
    throw ConfigError(fmt::format("config '{}': give 'train.warmup_steps' or 'train.warmup_ratio', not both", source));
  if (!(t.max_grad_norm >= 0)) fail("max_grad_norm", ">= 0 (0 = no clipping)", t.max_grad_norm);
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
  const PretrainedModelSection& model_section = plan.model;
  const FinetuneTrainOptions& train = plan.train;
  const FinetuneEvalOptions& eval = plan.eval;
  const FinetuneDataOptions& data = plan.data;
  const at::Device device = plan.device;
  require_device_available(device, ctx.source);
  const uint64_t seed = plan.seed;
  const fs::path run_dir = plan.run_dir;

  // Data.
  const auto tokenizer = load_tokenizer(model_section.path);
  const EncodedSplit train_data = encode_split(*tokenizer, splits.train, data.max_seq_len, data.max_train_examples, seed);
  std::vector<std::pair<std::string, EncodedSplit>> eval_data;
  for (const auto& [suffix, split] : splits.evals)
    eval_data.emplace_back(suffix, encode_split(*tokenizer, split, data.max_seq_len, data.max_eval_examples, seed + 1));
  if (train.epochs > 0 && train_data.encodings.empty())
    throw ConfigError(fmt::format("config '{}': the training split '{}' has no examples", ctx.source, splits.train.source));
  const int64_t pad_id = tokenizer->pad_id();
  const std::vector<std::string>& label_names = splits.train.label_names;

  // Model.
  const int64_t num_labels = label_names.empty() ? 1 : static_cast<int64_t>(label_names.size());
  PretrainedClassifier loaded = load_pretrained_classifier(model_section.path, num_labels, train.classifier_dropout, seed);
  if (static_cast<int64_t>(tokenizer->vocab_size()) > loaded.config.vocab_size)
    throw ConfigError(fmt::format("model '{}': the tokenizer has {} ids but the model's vocabulary is {}",
                                  model_section.path, tokenizer->vocab_size(), loaded.config.vocab_size));
  SequenceClassifier model = loaded.model;
  const EncoderConfig& mc = loaded.config;
  const std::vector<int64_t> layers = layers_or_all(model_section.attention_layers, mc.num_hidden_layers);
  BudgetChoice budget;
  const auto method = build_attention(plan.attention, mc, data.max_seq_len, "attention", ctx.source, &budget);
  model->encoder()->set_attention(method, layers);
  model->to(device);
  std::vector<std::shared_ptr<const AttentionMethod>> variant_methods;
  for (const auto& [name, attention] : eval.variants)
    variant_methods.push_back(
        build_attention(attention, mc, data.max_seq_len, "eval.attention_variants." + name, ctx.source, nullptr));
  std::vector<std::shared_ptr<const AttentionMethod>> all_methods = variant_methods;
  all_methods.push_back(method);
  const int64_t min_length = min_servable_length(all_methods, mc, data.max_seq_len);

  // Optimizer: no weight decay on biases and LayerNorm weights (as BERT's recipe).
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const bool exempt = name.size() >= 5 && (name.compare(name.size() - 5, 5, ".bias") == 0 ||
                                             name.find("LayerNorm.weight") != std::string::npos);
    (exempt ? no_decay : decay).push_back(item.value());
  }
  const auto adam = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(train.lr)
                                                           .betas({train.adam_betas[0], train.adam_betas[1]})
                                                           .eps(train.adam_eps)
                                                           .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adam(train.weight_decay));
  groups.emplace_back(no_decay, adam(0.0));
  torch::optim::AdamW optimizer(std::move(groups), torch::optim::AdamWOptions(train.lr));
  std::vector<at::Tensor> all_parameters = model->parameters();

  // Schedule.
  const int64_t batches_per_epoch =
      (static_cast<int64_t>(train_data.encodings.size()) + train.batch - 1) / train.batch;
  const int64_t steps_per_epoch = (batches_per_epoch + train.grad_accumulation - 1) / train.grad_accumulation;
  int64_t total_steps = train.epochs * steps_per_epoch;
  if (train.max_steps > 0) total_steps = std::min(total_steps, train.max_steps);
  const int64_t warmup = train.warmup_steps > 0
                             ? train.warmup_steps
                             : static_cast<int64_t>(std::ceil(train.warmup_ratio * static_cast<double>(total_steps)));

  // Randomness: the methods' draws and attention dropout come from method_gen; hidden dropout from
  // LibTorch's default generators, seeded here and saved in checkpoints.
  auto method_gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  at::manual_seed(seed);
  const json& identity = plan.identity;
  TrainState state;
  int64_t resumed_from = 0;
  if (total_steps > 0) {
    if (const auto ckpt = usable_checkpoint(run_dir, identity)) {
      state = load_checkpoint(*ckpt, *model, optimizer, generators_to_save(method_gen, device));
      resumed_from = state.step;
      fmt::print(stderr, "resuming '{}' from step {} of {} ({})\n", ctx.run_id, state.step, total_steps, ckpt->string());
    }
  }

  PeakMemoryWindow memory(device);
  double eval_time_s = 0;
  std::map<std::string, double> final_metrics;
  double final_eval_loss = 0;
  const auto run_eval = [&](SequenceClassifier& m) {
    const auto t0 = std::chrono::steady_clock::now();
    std::map<std::string, double> metrics;
    double loss_sum = 0;
    for (const auto& [suffix, split] : eval_data) {
      const EvalOutcome outcome = evaluate(m, split, splits.task, eval.batch, pad_id, min_length, device, seed + 2);
      for (const auto& [name, value] : outcome.metrics) metrics[suffixed(name, suffix)] = value;
      loss_sum += outcome.loss;
    }
    eval_time_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return std::make_pair(metrics, eval_data.empty() ? 0.0 : loss_sum / static_cast<double>(eval_data.size()));
  };
  const auto record_eval = [&](double epoch_position) {
    auto [metrics, loss] = run_eval(model);
    for (const auto& [name, value] : metrics) state.curves["eval_" + name].push_back(value);
    state.curves["eval_loss"].push_back(loss);
    state.curves["eval_epoch"].push_back(epoch_position);
    final_metrics = metrics;
    final_eval_loss = loss;
  };

  // Training.
  bool evaluated_final_weights = false;
  while (state.step < total_steps) {
    const auto batches = epoch_batches(train_data, train.batch, train.length_grouping, seed, state.epoch);
    model->train();
    int64_t in_group = 0;
    auto t0 = std::chrono::steady_clock::now();
    for (int64_t b = state.next_batch; b < batches_per_epoch && state.step < total_steps; ++b) {
      const DeviceBatch batch = make_batch(train_data, batches[static_cast<size_t>(b)], pad_id, min_length, device);
      const at::Tensor logits_BL = model->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, method_gen);
      const at::Tensor loss = model->loss(logits_BL, batch.labels_B);
      (loss / static_cast<double>(train.grad_accumulation)).backward();
      const double loss_value = loss.item<double>();
      if (!std::isfinite(loss_value))
        throw Error(fmt::format("run '{}': the training loss became {} at step {}; lower train.lr", ctx.run_id,
                                loss_value, state.step));
      state.window_loss += loss_value;
      ++state.window_count;
      state.epoch_loss += loss_value;
      ++state.epoch_count;
      state.train_tokens += batch.real_tokens;
      state.train_padded_tokens += batch.padded_tokens;
      state.train_examples += batch.ids_BN.size(0);
      if (++in_group < train.grad_accumulation && b + 1 < batches_per_epoch) continue;
      in_group = 0;
      const double lr = train.lr * linear_schedule(state.step, warmup, total_steps);
      for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
      if (train.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(all_parameters, train.max_grad_norm);
      optimizer.step();
      optimizer.zero_grad();
      ++state.step;
      state.next_batch = b + 1;
      if (state.step % train.log_every == 0 || state.step == total_steps) {
        state.curves["train_loss"].push_back(state.window_loss / static_cast<double>(state.window_count));
        state.curves["train_loss_step"].push_back(static_cast<double>(state.step));
        state.curves["lr"].push_back(lr);
        state.window_loss = 0;
        state.window_count = 0;
      }
      if (ctx.progress) ctx.progress(state.step, total_steps, fmt::format("epoch {}, step", state.epoch + 1));
      const bool epoch_done = state.next_batch >= batches_per_epoch;
      const bool due = train.checkpoint_every > 0 && state.step % train.checkpoint_every == 0;
      if ((due || epoch_done) && state.step < total_steps) {
        const auto now = std::chrono::steady_clock::now();
        state.train_time_s += std::chrono::duration<double>(now - t0).count();
        if (epoch_done) {
          state.curves["train_loss_epoch"].push_back(state.epoch_loss / static_cast<double>(state.epoch_count));
          state.epoch_loss = 0;
          state.epoch_count = 0;
          if (eval.every_epoch) record_eval(static_cast<double>(state.epoch + 1));
          state.epoch += 1;
          state.next_batch = 0;
        }
        save_checkpoint(run_dir, identity, state, *model, optimizer, generators_to_save(method_gen, device));
        model->train();
        t0 = std::chrono::steady_clock::now();
        if (epoch_done) break;
      }
    }
    if (state.step >= total_steps) {
      state.train_time_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const bool epoch_done = state.next_batch >= batches_per_epoch;
      if (state.epoch_count > 0)
        state.curves["train_loss_epoch"].push_back(state.epoch_loss / static_cast<double>(state.epoch_count));
      // The final weights are always scored, whatever eval.every_epoch says.
      record_eval(epoch_done ? static_cast<double>(state.epoch + 1)
                             : static_cast<double>(state.epoch) +
                                   static_cast<double>(state.next_batch) / static_cast<double>(batches_per_epoch));
      evaluated_final_weights = true;
    }
  }
  if (!evaluated_final_weights) record_eval(0.0);  // no training: the model as loaded
  memory.close();

  RunResult result;
  for (const auto& [name, value] : final_metrics) result.metrics[name] = {value, metric_unit(name), true};
  result.metrics["eval_loss"] = {final_eval_loss, "1", false};

  // Interchangeability: the fine-tuned weights scored with other attentions.
  for (size_t v = 0; v < eval.variants.size(); ++v) {
    const std::string& name = eval.variants[v].first;
    model->encoder()->set_attention(variant_methods[v], layers);
    auto [metrics, loss] = run_eval(model);
    for (const auto& [metric, value] : metrics) result.metrics[metric + "_with_" + name] = {value, metric_unit(metric), true};
    result.metrics["eval_loss_with_" + name] = {loss, "1", false};
  }
  model->encoder()->set_attention(method, layers);

  if (total_steps > 0 && train.save_model)
    export_model(run_dir / "final", model_section.path, *model, label_names, splits.task,
                 method->options_json());
  if (total_steps > 0 && !train.keep_checkpoint) {
    fs::remove_all(run_dir / "ckpt");
    fs::remove_all(run_dir / "ckpt.old");
  }

  const AttentionShape shape{1, mc.num_attention_heads, data.max_seq_len, data.max_seq_len, mc.head_dim(), mc.head_dim(), 4};
  double fraction_sum = 0;
  for (int64_t l = 0; l < mc.num_hidden_layers; ++l)
    fraction_sum += std::count(layers.begin(), layers.end(), l) ? method->cost(shape).memory_fraction : 1.0;
  result.metrics["memory_fraction"] = {fraction_sum / static_cast<double>(mc.num_hidden_layers), "fraction", false};
  result.metrics["train_steps"] = {static_cast<double>(state.step), "count", false};
  result.metrics["resumed_from_step"] = {static_cast<double>(resumed_from), "count", false};
  result.metrics["train_examples"] = {static_cast<double>(train_data.encodings.size()), "count", false};
  int64_t eval_examples = 0;
  for (const auto& [suffix, split] : eval_data) eval_examples += static_cast<int64_t>(split.encodings.size());
  result.metrics["eval_examples"] = {static_cast<double>(eval_examples), "count", false};
  result.metrics["truncated_fraction"] = {
      train_data.encodings.empty() ? 0.0
                                   : static_cast<double>(train_data.truncated) / static_cast<double>(train_data.encodings.size()),
      "fraction", false};
  if (state.train_time_s > 0) {
    result.metrics["train_time_s"] = {state.train_time_s, "s", false};
    result.metrics["train_tokens_per_s"] = {static_cast<double>(state.train_tokens) / state.train_time_s, "1/s", true};
    result.metrics["train_examples_per_s"] = {static_cast<double>(state.train_examples) / state.train_time_s, "1/s", true};
    result.metrics["train_padding_fraction"] = {
        1.0 - static_cast<double>(state.train_tokens) / static_cast<double>(std::max<int64_t>(1, state.train_padded_tokens)),
        "fraction", false};
  }
  if (const auto it = state.curves.find("train_loss_epoch"); it != state.curves.end() && !it->second.empty())
    result.metrics["train_loss_final"] = {it->second.back(), "1", false};
  result.metrics["eval_time_s"] = {eval_time_s, "s", false};
  memory.add_metrics(result);
  result.metrics["threads"] = {static_cast<double>(at::get_num_threads()), "count", false};
  result.metrics["min_padded_length"] = {static_cast<double>(min_length), "count", false};
  add_budget_metrics(budget, result);
  result.curves = state.curves;
  return result;
}

}  // namespace smyrf
