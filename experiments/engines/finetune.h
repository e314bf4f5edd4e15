// Fine-tuning engine of the `glue` and `imdb` pipelines: a pretrained BERT/RoBERTa with a
// sequence-classification head (core/models/sequence_classifier.h), any registered attention in all
// layers or in model.attention_layers, trained on labelled text and scored on its dev/test splits.
//
// Config sections read here (the pipelines add their own `data` keys, see glue.cpp and imdb.cpp):
//   "model":     {"path": DIR (config.json, model.safetensors, tokenizer files), "attention_layers": [..]}
//                A directory with a classification head (a model this engine saved) keeps its head;
//                with train.epochs 0 it is only evaluated (e.g. dense-trained, evaluated with SMYRF).
//   "attention": the training attention (default dense); "dropout" defaults to config.json's
//                attention_probs_dropout_prob for methods that take one; memory_budget is resolved at
//                data.max_seq_len.
//   "data":      max_seq_len [128] (truncation; the BERT_64/BERT_32 baselines are 64/32),
//                max_train_examples, max_eval_examples [0 = all; else the first k of a seeded shuffle]
//   "train":     epochs [3], batch [8] (per forward pass), grad_accumulation [1], lr [5e-5],
//                weight_decay [0] (never on 1-D tensors: biases, LayerNorm weights), adam_betas [0.9, 0.999],
//                adam_eps [1e-8], warmup_steps [0] or warmup_ratio [0] (linear warmup, then linear
//                decay to 0), max_grad_norm [1.0] (0 = no clipping), classifier_dropout [config.json],
//                max_steps [0 = epochs decide], length_grouping [50] (batches drawn from shuffled
//                groups of batch x this many examples sorted by length: less padding; 1 = plain
//                shuffle), log_every [10] optimizer steps, checkpoint_every [1000] optimizer steps
//                (0 = epoch ends only), keep_checkpoint [false], save_model [true]
//   "eval":      batch [32], every_epoch [true], attention_variants {"dense": {"method": "dense"}, ..}
//                (after training, the fine-tuned model is also scored with each; metric names get
//                the suffix _with_<name>: train with SMYRF, evaluate with dense, or the reverse)
//   "output":    checkpoints [<output.path without .h5>.checkpoints]: one folder per run
//
// Training runs in the shared engine (experiments/engines/training_loop.h): the run's folder holds
// `ckpt/` (weights, optimizer and generator states, data position, curves so far), rewritten
// atomically every checkpoint_every steps and at epoch ends. A killed run is redone by the runner and
// continues from its last checkpoint when the config is unchanged (a changed config starts over),
// giving the same result as an uninterrupted run. `final/` is a Hugging Face directory (config.json
// with the labels, model.safetensors, tokenizer files) of the fine-tuned model.
//
// Metrics: the task's (experiments/metrics/task_metrics.h) on each eval split (MNLI: _matched, _mismatched),
// eval_loss, train_loss_final, memory_fraction (attention score entries vs dense at max_seq_len, mean
// over layers), train_tokens_per_s (real tokens), train_examples_per_s, train_time_s, eval_time_s,
// peak_rss_bytes / peak_rss_delta_bytes (CPU) or cuda_peak_allocated_bytes (CUDA), train/eval
// example counts, truncated_fraction. Curves: train_loss (mean over log_every steps) against
// train_loss_step, lr, and per epoch eval_<metric>[_<split>] and eval_loss.
// Tested by tests/test_finetune.cpp (MiniLM smoke runs on the fixtures, resume equals uninterrupted,
// interchangeability, errors).
#pragma once

#include <nlohmann/json.hpp>

#include <c10/core/Device.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/util/json_options.h"
#include "datasets/text_classification.h"
#include "experiments/engines/adamw_section.h"
#include "experiments/engines/pretrained_text.h"
#include "experiments/runner/pipeline.h"

namespace smyrf {

// The data keys every fine-tuning pipeline shares; read from the pipeline's own `data` reader.
struct FinetuneDataOptions {
  int64_t max_seq_len = 128;
  int64_t max_train_examples = 0, max_eval_examples = 0;
  void read(JsonReader& data_reader);  // and checks the values
};

struct FinetuneTrainOptions {
  int64_t epochs = 3, batch = 8, grad_accumulation = 1;
  AdamWSection optimizer;  // lr, weight_decay, adam_betas, adam_eps, warm-up, max_grad_norm
  std::optional<double> classifier_dropout;
  int64_t max_steps = 0, length_grouping = 50, log_every = 10, checkpoint_every = 1000;
  bool keep_checkpoint = false, save_model = true;
  static FinetuneTrainOptions from_json(const nlohmann::json& config, const std::string& source);
};

struct FinetuneEvalOptions {
  int64_t batch = 32;
  bool every_epoch = true;
  std::vector<std::pair<std::string, nlohmann::json>> variants;  // name -> attention object
  static FinetuneEvalOptions from_json(const nlohmann::json& config, const std::string& source);
};

// Everything a fine-tuning run reads from its config, parsed and checked once. Pipelines derive
// their plan from it and add their own data keys.
struct FinetunePlan : RunPlan {
  PretrainedModelSection model;
  nlohmann::json attention;  // checked against the model at data.max_seq_len
  FinetuneDataOptions data;
  FinetuneTrainOptions train;
  FinetuneEvalOptions eval;
  at::Device device = at::Device(at::kCPU);
  uint64_t seed = 0;
  std::string run_dir;      // <checkpoints root>/<run_id>: checkpoints and the exported model
  nlohmann::json identity;  // what a resumable checkpoint must have been made by
};

struct FinetuneSplits {
  std::string task;  // the metric set (task_metrics): "cola", ..., "imdb"
  TextSplit train;
  std::vector<std::pair<std::string, TextSplit>> evals;  // metric-name suffix ("" when only one) -> split
};

// Fills `plan` from everything but `data` (which the pipeline has read into plan.data): sections
// model/attention/train/eval/output, seed and device, checked against the model's config.json.
void plan_finetune(const nlohmann::json& config, const RunContext& context, FinetunePlan& plan);

// Loads the model, fine-tunes on splits.train (resuming from a checkpoint when there is one) and
// scores every eval split; see the header comment for what is logged.
RunResult run_finetune(const FinetunePlan& plan, const RunContext& context, const FinetuneSplits& splits);

}  // namespace smyrf
