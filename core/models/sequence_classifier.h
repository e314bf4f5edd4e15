// SequenceClassifier: an encoder with Hugging Face's sequence-classification head, for fine-tuning
// (GLUE, IMDB) and for running fine-tuned checkpoints.
//
// Shape legend: B batch, N tokens, C hidden size, K labels (K = 1 means regression, e.g. STS-B).
//   BERT    logits_BK = classifier(dropout(pooler(hidden[:, 0])))             (BertForSequenceClassification)
//   RoBERTa logits_BK = out_proj(dropout(tanh(dense(dropout(hidden[:, 0])))))  (RobertaClassificationHead)
// Parameter names are transformers' ("bert.encoder...", "classifier.weight"; "roberta...",
// "classifier.dense.weight", "classifier.out_proj.weight"), so fine-tuned checkpoints load and save
// by name. Loss: cross-entropy over K classes, mean squared error when K = 1.
// Tested by tests/test_models.cpp (head shapes, loss, a few optimisation steps reduce the loss) and
// tests/python/test_bert_parity.py (logits of transformers' classifiers).
#pragma once

#include "core/models/encoder.h"

namespace smyrf {

class SequenceClassifierImpl : public torch::nn::Module {
 public:
  // A fresh head (drawn from init_seed as transformers initialises it) over a new encoder. Head
  // dropout: classifier_dropout, else config.json's (classifier_dropout, else hidden_dropout_prob).
  SequenceClassifierImpl(const EncoderConfig& config, int64_t num_labels, std::optional<double> classifier_dropout,
                         uint64_t init_seed);

  at::Tensor forward(const at::Tensor& ids_BN, const std::optional<at::Tensor>& type_ids_BN,
                     const std::optional<at::Tensor>& keep_BN, at::Generator& generator);  // logits_BK
  // labels_B: int64 class ids, or float targets when num_labels == 1.
  at::Tensor loss(const at::Tensor& logits_BK, const at::Tensor& labels_B) const;

  TransformerEncoder& encoder() { return encoder_; }
  int64_t num_labels() const { return num_labels_; }

 private:
  TransformerEncoder encoder_{nullptr};
  int64_t num_labels_;
  torch::nn::Dropout dropout_{nullptr};
  torch::nn::Linear classifier_{nullptr};  // BERT
  torch::nn::Linear head_dense_{nullptr}, head_out_{nullptr};  // RoBERTa
};
TORCH_MODULE(SequenceClassifier);

struct PretrainedClassifier {
  EncoderConfig config;
  SequenceClassifier model{nullptr};
  bool head_loaded = false;  // false: the checkpoint is an encoder only and the head is fresh
  WeightLoadReport report;
};
// Reads config.json + model.safetensors from `model_dir`. A checkpoint with a classification head
// (classifier.weight / classifier.out_proj.weight) brings its own label count: num_labels 0 takes it,
// another value is an error. An encoder-only checkpoint gets a fresh head and needs num_labels > 0.
PretrainedClassifier load_pretrained_classifier(const std::string& model_dir, int64_t num_labels,
                                                std::optional<double> classifier_dropout, uint64_t init_seed);

}  // namespace smyrf
