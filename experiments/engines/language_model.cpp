// Shared parts of the causal-LM pipelines; see language_model.h.
#include "experiments/engines/language_model.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <cmath>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

void read_lm_corpus_options(JsonReader& r, LmCorpusOptions& out) {
  r.require("files", out.files).get("held_out_fraction", out.held_out_fraction).get("max_documents", out.max_documents);
  if (!(out.held_out_fraction > 0 && out.held_out_fraction < 1))
    throw ConfigError(fmt::format("config '{}': '{}.held_out_fraction' must be in (0, 1), got {}", r.source(), r.path(),
                                  out.held_out_fraction));
  if (out.max_documents < 0 || out.max_documents == 1)
    throw ConfigError(fmt::format("config '{}': '{}.max_documents' must be 0 (all) or >= 2, got {}", r.source(),
                                  r.path(), out.max_documents));
}

void check_lm_files(const LmCorpusOptions& options, const std::string& source) {
  expand_text_files(options.files, fmt::format("config '{}': 'data.files'", source));
}

std::vector<int64_t> held_out_window_starts(int64_t tokens, int64_t context, int64_t max_windows) {
  const int64_t available = tokens > context ? (tokens - 1) / context : 0;
  const int64_t kept = max_windows > 0 ? std::min(available, max_windows) : available;
  std::vector<int64_t> starts;
  for (int64_t i = 0; i < kept; ++i) starts.push_back(i * available / kept * context);
  return starts;
}

at::Tensor window_batch(const std::vector<int32_t>& ids, const std::vector<int64_t>& starts, int64_t context) {
  at::Tensor ids_BN = at::empty({static_cast<int64_t>(starts.size()), context + 1}, at::kLong);
  int64_t* out = ids_BN.data_ptr<int64_t>();
  for (size_t b = 0; b < starts.size(); ++b) {
    SMYRF_CHECK(starts[b] >= 0 && starts[b] + context + 1 <= static_cast<int64_t>(ids.size()),
                "window_batch: window at {} of {} ids runs past the stream of {}", starts[b], context + 1, ids.size());
    for (int64_t i = 0; i <= context; ++i) out[static_cast<int64_t>(b) * (context + 1) + i] = ids[starts[b] + i];
  }
  return ids_BN;
}

at::Tensor next_token_loss_sum(const at::Tensor& logits_BNV, const at::Tensor& ids_BN) {
  const int64_t V = logits_BNV.size(-1);
  return at::cross_entropy_loss(logits_BNV.reshape({-1, V}).to(at::kFloat),
                                ids_BN.slice(1, 1).reshape({-1}), {}, at::Reduction::Sum);
}

void LmScore::add_metrics(const std::string& prefix, double bytes_per_token, RunResult& result) const {
  const double nats = loss();
  result.metrics[prefix + "loss"] = {nats, "1", false};
  result.metrics[prefix + "ppl"] = {std::exp(nats), "1", false};
  if (bytes_per_token > 0) {
    result.metrics[prefix + "bits_per_byte"] = {nats / bytes_per_token / std::log(2.0), "1", false};
    result.metrics[prefix + "ppl_byte"] = {std::exp(nats / bytes_per_token), "1", false};
  }
  result.metrics[prefix + "tokens"] = {static_cast<double>(tokens), "count", false};
}

LmScore score_held_out(TransformerDecoder& model, const LmStream& stream, int64_t context, int64_t max_windows,
                       int64_t batch, uint64_t seed, const at::Device& device, const EncoderForwardOptions& options) {
  const std::vector<int64_t> starts =
      held_out_window_starts(static_cast<int64_t>(stream.ids.size()), context, max_windows);
  const bool was_training = model->is_training();
  model->eval();
  at::NoGradGuard no_grad;
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  LmScore score;
  for (size_t first = 0; first < starts.size(); first += static_cast<size_t>(batch)) {
    const std::vector<int64_t> part(starts.begin() + static_cast<std::ptrdiff_t>(first),
                                    starts.begin() + static_cast<std::ptrdiff_t>(
                                                         std::min(starts.size(), first + static_cast<size_t>(batch))));
    const at::Tensor ids_BN = window_batch(stream.ids, part, context).to(device);
    const at::Tensor logits_BNV = model->forward(ids_BN.slice(1, 0, context), std::nullopt, gen, options).logits_BNV;
    score.nll_sum += next_token_loss_sum(logits_BNV, ids_BN).item<double>();
    score.tokens += static_cast<int64_t>(part.size()) * context;
  }
  model->train(was_training);
  return score;
}

std::shared_ptr<const AttentionMethod> causal_attention(const nlohmann::json& attention, const DecoderConfig& mc,
                                                        int64_t context, const std::string& source, BudgetChoice* choice) {
  const AttentionShape shape{1, mc.num_heads, context, context, mc.head_dim, mc.head_dim, 4, true};
  BudgetChoice budget = resolve_memory_budget(
      attention.is_null() ? nlohmann::json{{"method", "dense"}} : attention, shape, "attention", source);
  std::shared_ptr<const AttentionMethod> method = make_attention(budget.attention, "attention", source);
  // the decoder supplies the learned feature maps a method asks for (core/models/decoder.h)
  const AttentionRequest request{shape, true, false, method->capabilities().learned_features};
  if (const auto reasons = method->unsupported_reasons(request); !reasons.empty())
    throw ConfigError(fmt::format("config '{}': 'attention' ({}) cannot serve a causal language model at a context of "
                                  "{} tokens: {}", source, method->name(), context, join(reasons, "; ")));
  if (choice) *choice = budget;
  return method;
}

}  // namespace smyrf
