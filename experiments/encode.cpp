// `smyrf encode`; see encode.h.
#include "experiments/encode.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "core/attention/registry.h"
#include "core/models/safetensors.h"
#include "core/models/sequence_classifier.h"
#include "core/text/tokenizer.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "experiments/pipelines/pretrained_text.h"

namespace smyrf {
namespace {

std::vector<Encoding> read_id_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("ids file '{}' cannot be read", path));
  std::vector<Encoding> encodings;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j = nlohmann::json::parse(line);
      Encoding e;
      e.ids = j.at("ids").get<std::vector<int64_t>>();
      e.type_ids = j.contains("type_ids") ? j.at("type_ids").get<std::vector<int64_t>>()
                                          : std::vector<int64_t>(e.ids.size(), 0);
      if (e.type_ids.size() != e.ids.size() || e.ids.empty())
        throw IoError(fmt::format("ids file '{}' line {}: ids must be non-empty and type_ids as long", path, number));
      encodings.push_back(std::move(e));
    } catch (const nlohmann::json::exception& err) {
      throw IoError(fmt::format("ids file '{}' line {} is not {{\"ids\": [...], \"type_ids\": [...]}}: {}", path,
                                number, err.what()));
    }
  }
  if (encodings.empty()) throw IoError(fmt::format("ids file '{}' holds no sequence", path));
  return encodings;
}

void write_dataset(H5File& file, const std::string& path, const at::Tensor& t, bool float64) {
  const at::Tensor x = t.detach().to(float64 ? at::kDouble : at::kFloat).contiguous();
  if (float64)
    file.write_array(path, std::vector<double>(x.data_ptr<double>(), x.data_ptr<double>() + x.numel()), x.sizes().vec());
  else
    file.write_array(path, std::vector<float>(x.data_ptr<float>(), x.data_ptr<float>() + x.numel()), x.sizes().vec());
}

}  // namespace

int64_t encode_to_hdf5(const EncodeRequest& request) {
  namespace fs = std::filesystem;
  if (request.text_path.empty() == request.ids_path.empty())
    throw ConfigError("smyrf encode: give exactly one of --input (text lines) and --ids (JSONL ids)");
  const fs::path weights = fs::path(request.model_dir) / "model.safetensors";
  if (!fs::is_regular_file(weights))
    throw IoError(fmt::format("model directory '{}' has no model.safetensors", request.model_dir));
  const EncoderConfig config = EncoderConfig::load((fs::path(request.model_dir) / "config.json").string());
  const bool has_head = [&] {
    const SafetensorsFile file = SafetensorsFile::open(weights.string());
    return file.contains("classifier.weight") || file.contains("classifier.out_proj.weight");
  }();

  std::vector<Encoding> encodings;
  int64_t pad_id = config.pad_token_id;
  if (!request.ids_path.empty()) {
    encodings = read_id_lines(request.ids_path);
  } else {
    const auto tokenizer = load_tokenizer(request.model_dir);
    pad_id = tokenizer->pad_id();
    std::ifstream in(request.text_path);
    if (!in) throw IoError(fmt::format("text file '{}' cannot be read", request.text_path));
    const size_t max_length = static_cast<size_t>(request.max_length > 0 ? request.max_length : config.max_tokens());
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) encodings.push_back(tokenizer->encode(line, max_length));
    if (encodings.empty()) throw IoError(fmt::format("text file '{}' holds no non-empty line", request.text_path));
  }
  for (size_t i = 0; i < encodings.size(); ++i) {
    const Encoding& e = encodings[i];
    if (static_cast<int64_t>(e.ids.size()) > config.max_tokens())
      throw ConfigError(fmt::format("sequence {} has {} tokens but model '{}' takes at most {}: truncate it (--max-length)",
                                    i + 1, e.ids.size(), request.model_dir, config.max_tokens()));
    for (int64_t id : e.ids)
      if (id < 0 || id >= config.vocab_size)
        throw ConfigError(fmt::format("sequence {} holds id {}, outside model '{}''s vocabulary [0, {})", i + 1, id,
                                      request.model_dir, config.vocab_size));
    for (int64_t type : e.type_ids)
      if (type < 0 || type >= config.type_vocab_size)
        throw ConfigError(fmt::format("sequence {} holds type id {}, but model '{}' has {} token types", i + 1, type,
                                      request.model_dir, config.type_vocab_size));
  }
  const TokenBatch batch = token_batch(pad_batch(encodings, pad_id));
  const at::Tensor &ids = batch.ids_BN, &type_ids = batch.type_ids_BN, &keep = batch.keep_BN;

  nlohmann::json attention;
  try {
    attention = nlohmann::json::parse(request.attention_json);
  } catch (const nlohmann::json::parse_error& e) {
    throw ConfigError(fmt::format("--attention is not valid JSON ({}); write it like '{{\"method\": \"smyrf\"}}'", e.what()));
  }
  const std::shared_ptr<const AttentionMethod> method = make_attention(attention, "--attention");

  const at::ScalarType dtype = request.float64 ? at::kDouble : at::kFloat;
  at::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(request.seed);
  EncoderOutput encoded;
  at::Tensor logits;
  if (has_head) {
    PretrainedClassifier classifier = load_pretrained_classifier(request.model_dir, 0, 0.0, request.seed);
    // A stored head over a randomly initialised pooler would give logits that mean nothing.
    if (!classifier.report.not_loaded.empty())
      throw IoError(fmt::format("model '{}' has a classification head but lacks {}: its logits cannot be reproduced",
                                request.model_dir, classifier.report.not_loaded.front()));
    classifier.model->to(dtype);
    classifier.model->encoder()->set_attention(method, request.attention_layers);
    encoded = classifier.model->encoder()->forward(ids, type_ids, keep, generator, {true, {}});
    generator = at::make_generator<at::CPUGeneratorImpl>(request.seed);
    logits = classifier.model->forward(ids, type_ids, keep, generator);
  } else {
    PretrainedEncoder model = load_pretrained_encoder(request.model_dir);
    model.encoder->to(dtype);
    model.encoder->set_attention(method, request.attention_layers);
    encoded = model.encoder->forward(ids, type_ids, keep, generator, {true, {}});
  }

  H5File file = H5File::create(request.output_path);
  file.set_attr("/", "model_path", request.model_dir);
  file.set_attr("/", "attention_json", method->options_json().dump());
  file.set_attr("/", "attention_layers", nlohmann::json(request.attention_layers).dump());
  write_dataset(file, "/ids", ids, true);
  write_dataset(file, "/type_ids", type_ids, true);
  write_dataset(file, "/keep", keep, true);
  write_dataset(file, "/hidden_states", at::stack(encoded.hidden_states), request.float64);
  const at::Tensor keep_BN1 = keep.unsqueeze(-1).to(dtype);
  write_dataset(file, "/embedding", (encoded.hidden_BNC * keep_BN1).sum(1) / keep_BN1.sum(1), request.float64);
  if (encoded.pooled_BC.defined()) write_dataset(file, "/pooled", encoded.pooled_BC, request.float64);
  if (logits.defined()) write_dataset(file, "/logits", logits, request.float64);
  file.close();
  return ids.size(0);
}

}  // namespace smyrf
