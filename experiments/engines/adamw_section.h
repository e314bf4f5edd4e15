// The optimizer keys that the text-training pipelines (fine-tuning in finetune.h, lm_train) read from
// their `train` section, parsed and checked once, and the optimizer and learning-rate schedule they
// make:
//   lr, weight_decay (never on 1-D tensors: biases and norm weights), adam_betas [b1, b2], adam_eps,
//   warmup_steps or warmup_ratio (linear warm-up from 0, then linear decay to 0 at the last step),
//   max_grad_norm (0 = no clipping).
// Each pipeline sets its own defaults before read(). Tested through tests/test_finetune.cpp (bad
// values, resumed runs) and tests/test_lm.cpp.
#pragma once

#include <torch/optim/adamw.h>

#include <cstdint>
#include <vector>

#include "core/util/json_options.h"

namespace torch::nn {
class Module;
}

namespace smyrf {

struct AdamWSection {
  double lr = 5e-5, weight_decay = 0.0, adam_eps = 1e-8;
  std::vector<double> adam_betas{0.9, 0.999};
  int64_t warmup_steps = 0;
  double warmup_ratio = 0.0, max_grad_norm = 1.0;

  // Reads the keys above from the `train` reader and checks them (ConfigError naming train.<key>).
  void read(JsonReader& train);
  // The learning rate of optimizer step `step` (0-based) of `total_steps`.
  double lr_at(int64_t step, int64_t total_steps) const;
};

// AdamW over `model`'s parameters in two groups: with weight decay (matrices, embeddings) and without
// (1-D tensors).
torch::optim::AdamW make_adamw(torch::nn::Module& model, const AdamWSection& options);

// Sets every group's learning rate to lr_at(step), clips the gradient norm of `parameters`, steps and
// zeroes the gradients; returns the learning rate used.
double adamw_step(torch::optim::AdamW& optimizer, const std::vector<at::Tensor>& parameters,
                  const AdamWSection& options, int64_t step, int64_t total_steps);

}  // namespace smyrf
