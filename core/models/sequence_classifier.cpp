// SequenceClassifier: BERT / RoBERTa sequence-classification heads; see sequence_classifier.h.
#include "core/models/sequence_classifier.h"

#include <ATen/ATen.h>
#include <fmt/format.h>
#include <torch/utils.h>


#include "core/models/safetensors.h"
#include "core/util/check.h"

namespace smyrf {

SequenceClassifierImpl::SequenceClassifierImpl(const EncoderConfig& config, int64_t num_labels,
                                               std::optional<double> head_dropout, uint64_t init_seed)
    : num_labels_(num_labels) {
  const double classifier_dropout = head_dropout.value_or(config.classifier_dropout.value_or(config.hidden_dropout_prob));
  if (num_labels < 1)
    throw ConfigError(fmt::format("sequence classifier: num_labels must be >= 1 (1 = regression), got {}", num_labels));
  if (!(classifier_dropout >= 0.0 && classifier_dropout < 1.0))
    throw ConfigError(fmt::format("sequence classifier: dropout must lie in [0, 1), got {}", classifier_dropout));
  const bool roberta = config.model_type == "roberta";
  // RoBERTa's head ignores the pooler, so the encoder gets none (as RobertaForSequenceClassification).
  encoder_ = register_module(config.model_type, TransformerEncoder(config, /*with_pooler=*/!roberta, init_seed));
  dropout_ = register_module("dropout", torch::nn::Dropout(classifier_dropout));
  const int64_t C = config.hidden_size;
  if (roberta) {
    auto head = register_module("classifier", std::make_shared<torch::nn::Module>());
    head_dense_ = head->register_module("dense", torch::nn::Linear(C, C));
    head_out_ = head->register_module("out_proj", torch::nn::Linear(C, num_labels));
  } else {
    classifier_ = register_module("classifier", torch::nn::Linear(C, num_labels));
  }
  at::Generator generator = at::detail::createCPUGenerator(init_seed + 1);
  torch::NoGradGuard no_grad;
  for (auto* linear : {&classifier_, &head_dense_, &head_out_}) {
    if (!*linear) continue;
    (*linear)->weight.normal_(0.0, config.initializer_range, generator);
    (*linear)->bias.zero_();
  }
}

at::Tensor SequenceClassifierImpl::forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN,
                                           const std::optional<at::Tensor>& keep_BN, at::Generator& generator) {
  EncoderOutput encoded = encoder_->forward(ids_BN, type_ids_BN, keep_BN, generator);
  if (classifier_) return classifier_->forward(dropout_->forward(encoded.pooled_BC));
  at::Tensor first_BC = dropout_->forward(encoded.hidden_BNC.select(1, 0));
  return head_out_->forward(dropout_->forward(at::tanh(head_dense_->forward(first_BC))));
}

at::Tensor SequenceClassifierImpl::loss(const at::Tensor& logits_BK, const at::Tensor& labels_B) const {
  TORCH_CHECK(logits_BK.dim() == 2 && logits_BK.size(1) == num_labels_, "loss: logits_BK must be [B, ", num_labels_,
              "], got ", logits_BK.sizes());
  TORCH_CHECK(labels_B.dim() == 1 && labels_B.size(0) == logits_BK.size(0), "loss: labels_B must be [",
              logits_BK.size(0), "], got ", labels_B.sizes());
  if (num_labels_ == 1) return at::mse_loss(logits_BK.squeeze(1), labels_B.to(logits_BK.scalar_type()));
  TORCH_CHECK(labels_B.scalar_type() == at::kLong, "loss: labels_B must be int64 class ids for classification");
  TORCH_CHECK(labels_B.numel() == 0 || (labels_B.min().item<int64_t>() >= 0 && labels_B.max().item<int64_t>() < num_labels_),
              "loss: labels_B must lie in [0, ", num_labels_, ")");
  return at::cross_entropy_loss(logits_BK, labels_B);
}

PretrainedClassifier load_pretrained_classifier(const std::string& model_dir, int64_t num_labels,
                                                std::optional<double> classifier_dropout, uint64_t init_seed) {
  const CheckpointFiles checkpoint = open_checkpoint(model_dir);
  const SafetensorsFile& file = checkpoint.weights;
  PretrainedClassifier result;
  result.config = checkpoint.config;
  const bool roberta = result.config.model_type == "roberta";
  const std::string head_name = roberta ? "classifier.out_proj.weight" : "classifier.weight";
  result.head_loaded = file.contains(head_name);
  if (result.head_loaded) {
    const int64_t stored = file.entries().at(head_name).shape.empty() ? 0 : file.entries().at(head_name).shape[0];
    if (num_labels != 0 && num_labels != stored)
      throw ConfigError(fmt::format("model '{}' has a classification head of {} labels, but {} were asked for: set "
                                    "num_labels to {} (or 0), or start from an encoder-only checkpoint",
                                    model_dir, stored, num_labels, stored));
    num_labels = stored;
  } else if (num_labels < 1) {
    throw ConfigError(fmt::format("model '{}' has no classification head: give num_labels (>= 1; 1 = regression)",
                                  model_dir));
  }
  result.model = SequenceClassifier(result.config, num_labels, classifier_dropout, init_seed);
  const std::string prefix = encoder_prefix_in(file, result.config);
  result.report = load_module_weights(*result.model->encoder(), file, prefix, {"pooler."});
  if (result.head_loaded) {
    for (const auto& child : result.model->named_children())
      if (child.key() == "classifier") {
        WeightLoadReport head = load_module_weights(*child.value(), file, "classifier.");
        result.report.not_loaded.insert(result.report.not_loaded.end(), head.not_loaded.begin(), head.not_loaded.end());
      }
    // The encoder pass listed the head's tensors as unused; they were used by the head.
    std::vector<std::string> unused;
    for (const auto& name : result.report.unused)
      if (name.rfind("classifier.", 0) != 0) unused.push_back(name);
    result.report.unused = unused;
  }
  report_unused_tensors(result.report, model_dir);
  result.model->eval();
  return result;
}

}  // namespace smyrf
