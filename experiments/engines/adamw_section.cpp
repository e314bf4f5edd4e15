// The shared AdamW section and schedule; see adamw_section.h.
#include "experiments/engines/adamw_section.h"

#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/nn/utils/clip_grad.h>

#include <algorithm>
#include <cmath>

#include "core/util/check.h"

namespace smyrf {

void AdamWSection::read(JsonReader& r) {
  r.get("lr", lr).get("weight_decay", weight_decay).get("adam_betas", adam_betas).get("adam_eps", adam_eps);
  r.get("warmup_steps", warmup_steps).get("warmup_ratio", warmup_ratio).get("max_grad_norm", max_grad_norm);
  const auto fail = [&](const char* key, const std::string& rule, const nlohmann::json& got) {
    throw ConfigError(fmt::format("config '{}': '{}.{}' must be {}, got {}", r.source(), r.path(), key, rule, got.dump()));
  };
  if (!(lr > 0)) fail("lr", "> 0", lr);
  if (!(weight_decay >= 0)) fail("weight_decay", ">= 0", weight_decay);
  if (adam_betas.size() != 2 || !(adam_betas[0] >= 0 && adam_betas[0] < 1) || !(adam_betas[1] >= 0 && adam_betas[1] < 1))
    fail("adam_betas", "two numbers in [0, 1)", adam_betas);
  if (!(adam_eps > 0)) fail("adam_eps", "> 0", adam_eps);
  if (warmup_steps < 0) fail("warmup_steps", ">= 0", warmup_steps);
  if (!(warmup_ratio >= 0 && warmup_ratio < 1)) fail("warmup_ratio", "in [0, 1)", warmup_ratio);
  if (warmup_steps > 0 && warmup_ratio > 0)
    throw ConfigError(fmt::format("config '{}': give '{}.warmup_steps' or '{}.warmup_ratio', not both", r.source(),
                                  r.path(), r.path()));
  if (!(max_grad_norm >= 0)) fail("max_grad_norm", ">= 0 (0 = no clipping)", max_grad_norm);
}

double AdamWSection::lr_at(int64_t step, int64_t total_steps) const {
  const int64_t warmup = warmup_steps > 0 ? warmup_steps
                                          : static_cast<int64_t>(std::ceil(warmup_ratio * static_cast<double>(total_steps)));
  if (step < warmup) return lr * static_cast<double>(step) / static_cast<double>(std::max<int64_t>(1, warmup));
  return lr * std::max(0.0, static_cast<double>(total_steps - step) /
                                static_cast<double>(std::max<int64_t>(1, total_steps - warmup)));
}

torch::optim::AdamW make_adamw(torch::nn::Module& model, const AdamWSection& options) {
  std::vector<at::Tensor> decay, no_decay;
  for (const auto& item : model.named_parameters()) (item.value().dim() <= 1 ? no_decay : decay).push_back(item.value());
  const auto adam = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options.lr)
                                                           .betas({options.adam_betas[0], options.adam_betas[1]})
                                                           .eps(options.adam_eps)
                                                           .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(decay, adam(options.weight_decay));
  groups.emplace_back(no_decay, adam(0.0));
  return torch::optim::AdamW(std::move(groups), torch::optim::AdamWOptions(options.lr));
}

double adamw_step(torch::optim::AdamW& optimizer, const std::vector<at::Tensor>& parameters,
                  const AdamWSection& options, int64_t step, int64_t total_steps) {
  const double lr = options.lr_at(step, total_steps);
  for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  if (options.max_grad_norm > 0) torch::nn::utils::clip_grad_norm_(parameters, options.max_grad_norm);
  optimizer.step();
  optimizer.zero_grad();
  return lr;
}

}  // namespace smyrf
