// Model and text sections of the pretrained pipelines; see pretrained_text.h.
#include "experiments/engines/pretrained_text.h"

#include <ATen/ATen.h>
#include <fmt/format.h>

#include <filesystem>

#include "core/text/tokenizer.h"
#include "core/util/check.h"
#include "core/util/json_options.h"

namespace smyrf {

PretrainedModelSection PretrainedModelSection::from_json(const nlohmann::json& config, const std::string& source) {
  PretrainedModelSection m;
  JsonReader r(config.value("model", nlohmann::json::object()), "model", source);
  r.require("path", m.path).get("attention_layers", m.attention_layers);
  r.finish();
  for (int64_t layer : m.attention_layers)
    if (layer < 0)
      throw ConfigError(fmt::format("config '{}': 'model.attention_layers' holds {}; layers count from 0", source, layer));
  return m;
}

TextDataSection TextDataSection::from_json(const nlohmann::json& config, const std::string& source) {
  TextDataSection d;
  JsonReader r(config.value("data", nlohmann::json::object()), "data", source);
  int64_t max_tokens = 0, min_tokens = 16, max_windows = 16;
  r.require("files", d.windows.files).get("max_tokens", max_tokens).get("min_tokens", min_tokens);
  r.get("max_windows", max_windows).get("batch", d.batch);
  r.finish();
  const auto fail = [&](const char* key, int64_t value, const char* rule) {
    throw ConfigError(fmt::format("config '{}': 'data.{}' must be {}, got {}", source, key, rule, value));
  };
  if (max_tokens < 0) fail("max_tokens", max_tokens, ">= 0 (0 = the model's limit)");
  if (min_tokens < 1) fail("min_tokens", min_tokens, ">= 1");
  if (max_windows < 0) fail("max_windows", max_windows, ">= 0 (0 = all)");
  if (d.batch < 1) fail("batch", d.batch, ">= 1");
  if (d.windows.files.empty())
    throw ConfigError(fmt::format("config '{}': 'data.files' is empty; list text files (e.g. /usr/share/common-licenses/*)",
                                  source));
  d.windows.max_tokens = static_cast<size_t>(max_tokens);
  d.windows.min_tokens = static_cast<size_t>(min_tokens);
  d.windows.max_windows = static_cast<size_t>(max_windows);
  return d;
}

int64_t TokenBatch::real_tokens() const { return keep_BN.sum().item<int64_t>(); }

TokenBatch token_batch(const PaddedBatch& padded) {
  const std::vector<int64_t> shape{static_cast<int64_t>(padded.batch), static_cast<int64_t>(padded.length)};
  TokenBatch batch;
  batch.ids_BN = at::tensor(padded.ids_BN, at::kLong).view(shape);
  batch.type_ids_BN = at::tensor(padded.type_ids_BN, at::kLong).view(shape);
  batch.keep_BN = at::tensor(padded.mask_BN, at::kLong).view(shape).ne(0);
  return batch;
}

void validate_pretrained_text(const PretrainedModelSection& model, const TextDataSection& data, const std::string& source) {
  namespace fs = std::filesystem;
  if (!fs::is_regular_file(fs::path(model.path) / "config.json"))
    throw IoError(fmt::format("config '{}': 'model.path' is '{}', which holds no config.json; give a Hugging Face model "
                              "directory (scripts/setup.sh links models/all-MiniLM-L6-v2; scripts/fetch_models.sh "
                              "downloads bert-base-uncased and roberta-base)", source, model.path));
  for (const std::string& file : data.windows.files)
    if (!fs::is_regular_file(file))
      throw IoError(fmt::format("config '{}': 'data.files' names '{}', which does not exist", source, file));
}

PretrainedText load_pretrained_text(const PretrainedModelSection& model, const TextDataSection& data,
                                    const std::string& source) {
  validate_pretrained_text(model, data, source);
  PretrainedText text;
  text.model = load_pretrained_encoder(model.path);
  const int64_t limit = text.model.config.max_tokens();
  TextWindowOptions options = data.windows;
  if (options.max_tokens == 0) options.max_tokens = static_cast<size_t>(limit);
  if (static_cast<int64_t>(options.max_tokens) > limit)
    throw ConfigError(fmt::format("config '{}': 'data.max_tokens' is {}, but model '{}' takes at most {} tokens", source,
                                  options.max_tokens, model.path, limit));
  text.window_tokens = static_cast<int64_t>(options.max_tokens);
  const auto tokenizer = load_tokenizer(model.path);
  if (static_cast<int64_t>(tokenizer->vocab_size()) > text.model.config.vocab_size)
    throw ConfigError(fmt::format("model '{}': the tokenizer has {} ids but the model's vocabulary is {}: the tokenizer "
                                  "files belong to another model", model.path, tokenizer->vocab_size(),
                                  text.model.config.vocab_size));
  text.windows = text_windows(*tokenizer, options);
  for (size_t first = 0; first < text.windows.size(); first += static_cast<size_t>(data.batch)) {
    std::vector<Encoding> encodings;
    for (size_t i = first; i < std::min(text.windows.size(), first + static_cast<size_t>(data.batch)); ++i)
      encodings.push_back(text.windows[i].encoding);
    text.batches.push_back(token_batch(pad_batch(encodings, tokenizer->pad_id())));
  }
  return text;
}

void copy_tokenizer_files(const std::string& from_dir, const std::string& to_dir) {
  namespace fs = std::filesystem;
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt",
                           "vocab.json", "merges.txt"})
    if (fs::is_regular_file(fs::path(from_dir) / name))
      fs::copy_file(fs::path(from_dir) / name, fs::path(to_dir) / name, fs::copy_options::overwrite_existing);
}

}  // namespace smyrf
