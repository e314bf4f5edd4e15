// What the causal-LM pipelines (lm_train, lm_dropin) share: the text keys of their `data` section,
// the windows of ids a model is fed, and held-out perplexity.
//
//   "data": {"files": ["/usr/share/common-licenses/*", ...],  real text (datasets/lm_corpus.h)
//            "held_out_fraction": 0.1, "max_documents": 0, ...the pipeline's own keys}
//
// Shape legend: B windows in a batch, N tokens a model sees (the context), V vocabulary.
// A window is N + 1 consecutive ids: the model reads the first N and is scored on the last N (the
// next token at every position). Held-out windows follow each other without overlap (every scored
// token is scored once, with between 0 and N - 1 tokens of context), evenly spread over the
// held-out stream when eval.max_windows keeps only some.
// Metrics of an evaluation (prefix e.g. "eval_"): loss (mean nats per scored token), ppl
// (exp(loss), per token), bits_per_byte and ppl_byte (through the stream's bytes per token: the
// same numbers whatever the tokenizer), tokens (scored).
// Tested by tests/test_lm.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/models/decoder.h"
#include "core/util/json_options.h"
#include "datasets/lm_corpus.h"
#include "experiments/runner/results_store.h"

namespace smyrf {

// Reads files, held_out_fraction and max_documents from the `data` reader and checks them (not the
// files: see check_lm_files).
void read_lm_corpus_options(JsonReader& data, LmCorpusOptions& out);
// IoError naming data.files when a pattern matches nothing (plans check this; nothing is read).
void check_lm_files(const LmCorpusOptions& options, const std::string& source);

// Starts of up to max_windows (0 = all) non-overlapping windows of context + 1 ids in a stream of
// `tokens` ids; empty when the stream is shorter than one window.
std::vector<int64_t> held_out_window_starts(int64_t tokens, int64_t context, int64_t max_windows);

// ids_BN (int64, on the CPU) of the windows starting at `starts`, each context + 1 ids long.
at::Tensor window_batch(const std::vector<int32_t>& ids, const std::vector<int64_t>& starts, int64_t context);

// Summed next-token loss of logits_BNV (the model's output on ids_BN[:, :-1]) against ids_BN[:, 1:].
at::Tensor next_token_loss_sum(const at::Tensor& logits_BNV, const at::Tensor& ids_BN);

struct LmScore {
  double nll_sum = 0;  // nats
  int64_t tokens = 0;  // scored
  double loss() const { return tokens == 0 ? 0.0 : nll_sum / static_cast<double>(tokens); }
  // Adds <prefix>loss, ppl, bits_per_byte, ppl_byte, tokens.
  void add_metrics(const std::string& prefix, double bytes_per_token, RunResult& result) const;
};

// The model in eval mode, without gradients, on the held-out windows (batch windows per forward
// pass); the methods' random draws come from a generator seeded with `seed` at every call.
// `options` reaches every forward pass (an observer of each layer's attention, for example).
LmScore score_held_out(TransformerDecoder& model, const LmStream& stream, int64_t context, int64_t max_windows,
                       int64_t batch, uint64_t seed, const at::Device& device, const EncoderForwardOptions& options = {});

// The attention object with its memory budget resolved at the context, checked to serve a causal
// model of `mc`'s heads there (ConfigError naming 'attention' and the reasons otherwise).
struct BudgetChoice;
std::shared_ptr<const AttentionMethod> causal_attention(const nlohmann::json& attention, const DecoderConfig& mc,
                                                        int64_t context, const std::string& source, BudgetChoice* choice);

}  // namespace smyrf
