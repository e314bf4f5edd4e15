// Module state as safetensors; see module_state.h.
#include "core/models/module_state.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <set>
#include <vector>

#include "core/models/safetensors.h"
#include "core/util/check.h"

namespace smyrf {

std::map<std::string, at::Tensor> module_state(torch::nn::Module& module) {
  std::map<std::string, at::Tensor> state;
  for (const auto& item : module.named_parameters()) state[item.key()] = item.value().detach().to(at::kCPU).contiguous();
  for (const auto& item : module.named_buffers()) state[item.key()] = item.value().detach().to(at::kCPU).contiguous();
  return state;
}

void load_module_state(torch::nn::Module& module, const std::string& safetensors_path) {
  const SafetensorsFile file = SafetensorsFile::open(safetensors_path);
  std::set<std::string> expected;
  at::NoGradGuard no_grad;
  auto copy_in = [&](const std::string& key, at::Tensor& target) {
    expected.insert(key);
    if (!file.contains(key))
      throw IoError(fmt::format("'{}' lacks tensor '{}' (shape {}): it was saved from another architecture; check the "
                                "model section against the configuration saved beside the file",
                                safetensors_path, key, fmt::join(target.sizes(), "x")));
    const at::Tensor stored = file.tensor(key);
    if (stored.sizes() != target.sizes())
      throw IoError(fmt::format("'{}': tensor '{}' has shape [{}], the model expects [{}]", safetensors_path, key,
                                fmt::join(stored.sizes(), ", "), fmt::join(target.sizes(), ", ")));
    target.copy_(stored.to(target.scalar_type()));
  };
  for (auto& item : module.named_parameters()) copy_in(item.key(), item.value());
  for (auto& item : module.named_buffers()) copy_in(item.key(), item.value());
  std::vector<std::string> extra;
  for (const auto& entry : file.entries())
    if (!expected.count(entry.first)) extra.push_back(entry.first);
  if (!extra.empty()) {
    if (extra.size() > 5) extra.resize(5);
    throw IoError(fmt::format("'{}' holds tensors this model does not have ({}...): it was saved from another "
                              "architecture; check the model section",
                              safetensors_path, fmt::join(extra, ", ")));
  }
}

}  // namespace smyrf
