// Command family: text and text models.
//   smyrf tokenize --tokenizer DIR (--input FILE | --text STR) [--pair-input FILE2 | --pair-text STR]
//                  [--max-length N] [--no-special-tokens] [--tokens] -o OUT.jsonl|-
//       token ids of each input line (core/text), one JSON line each: {"ids": [...], "type_ids": [...]}
//       (+ "tokens" with --tokens). Lines split on '\n' with a trailing '\r' dropped; every line,
//       empty ones included, gives one output line.
//   smyrf encode --model DIR (--input TEXT | --ids JSONL) -o OUT.h5 [--attention JSON]
//                [--layers L,..] [--max-length N] [--seed S] [--float64]
//       a Hugging Face BERT/RoBERTa directory's outputs on text lines (tokenized by the directory's
//       tokenizer; empty lines skipped) or on ids as `smyrf tokenize` writes them. Output (shape
//       legend: B sequences, N longest sequence, C hidden, Y layers, K labels):
//         /ids [B,N], /keep [B,N] (1 = real token), /type_ids [B,N]
//         /hidden_states [Y+1,B,N,C]  embeddings then every layer (float32, or float64 with --float64)
//         /embedding [B,C]            mean over real tokens of the last layer (sentence-transformers pooling)
//         /pooled [B,C]               BERT pooler output, when the checkpoint has a pooler
//         /logits [B,K]               when the checkpoint has a sequence-classification head
//       Root attributes: model_path, attention_json, attention_layers.
//   smyrf lm --model DIR --ids JSONL -o OUT.h5 [--attention JSON] [--layers L,..] [--seed S] [--float64]
//       a Hugging Face Llama / GPT-2 causal LM directory (core/models/decoder.h) on ids (padded on
//       the right with 0). Output: /ids [B,N], /keep [B,N], /logits [B,N,V],
//       /hidden_states [Y+1,B,N,C] (embeddings, every layer, the last after the final norm).
// Tested by tests/python/test_tokenizers.py (against tokenizers), tests/python/test_bert_parity.py
// and tests/python/test_decoder_parity.py (against transformers).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <limits>
#include <iostream>
#include <memory>
#include <optional>

#include "core/attention/registry.h"
#include "core/models/decoder.h"
#include "core/models/safetensors.h"
#include "core/models/sequence_classifier.h"
#include "core/text/tokenizer.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/json_parse.h"
#include "core/util/text_file.h"
#include "experiments/cli/attention_argument.h"
#include "experiments/cli/command_table.h"
#include "experiments/engines/pretrained_text.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

struct TokenizeArgs {
  std::string tokenizer_dir, input, text, pair_input, pair_text, output;
  size_t max_length = 0;
  bool no_special_tokens = false, tokens = false;
  CLI::Option *input_option = nullptr, *text_option = nullptr, *pair_text_option = nullptr;
};

std::optional<std::vector<std::string>> pair_lines(const TokenizeArgs& args, size_t line_count) {
  std::optional<std::vector<std::string>> pairs;
  if (!args.pair_input.empty()) pairs = read_text_lines(args.pair_input, "input file");
  if (args.pair_text_option->count() > 0) pairs = std::vector<std::string>{args.pair_text};
  if (pairs && pairs->size() != line_count)
    throw ConfigError(fmt::format("--pair-input has {} lines but the input has {}; pairs are matched line by line",
                                  pairs->size(), line_count));
  return pairs;
}

int tokenize_command(const TokenizeArgs& args) {
  if (args.input_option->count() == 0 && args.text_option->count() == 0)
    throw ConfigError("smyrf tokenize needs --input FILE or --text STR");
  const auto tokenizer = load_tokenizer(args.tokenizer_dir);
  const std::vector<std::string> lines =
      args.input.empty() ? std::vector<std::string>{args.text} : read_text_lines(args.input, "input file");
  const std::optional<std::vector<std::string>> pairs = pair_lines(args, lines.size());
  std::ofstream file;
  if (args.output != "-") {
    file.open(args.output, std::ios::binary);
    if (!file) throw IoError(fmt::format("cannot write '{}'", args.output));
  }
  std::ostream& out = args.output == "-" ? std::cout : file;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::optional<std::vector<int64_t>> pair_ids;
    if (pairs) pair_ids = tokenizer->ids_of((*pairs)[i]);
    const Encoding e =
        tokenizer->post_process(tokenizer->ids_of(lines[i]), std::move(pair_ids), args.max_length, !args.no_special_tokens);
    // An id no token has (a post-processor's special id missing from the vocabulary) would index
    // past a model's embedding table: refuse it here, where the tokenizer's files can be named.
    for (int64_t id : e.ids)
      if (id < 0 || id >= static_cast<int64_t>(tokenizer->vocab_size()) || !tokenizer->id_to_token(id))
        throw IoError(fmt::format("tokenizer '{}' gave id {} for line {}, which no token of its vocabulary or added "
                                  "tokens has; fix the tokenizer files",
                                  tokenizer->source(), id, i + 1));
    nlohmann::json row = {{"ids", e.ids}, {"type_ids", e.type_ids}};
    if (args.tokens) {
      std::vector<std::string> tokens;
      for (int64_t id : e.ids) tokens.push_back(tokenizer->id_to_token(id).value_or(""));
      row["tokens"] = tokens;
    }
    out << row.dump() << '\n';
  }
  out.flush();
  if (!out) throw IoError(fmt::format("writing '{}' failed", args.output));
  return 0;
}

struct EncodeArgs {
  std::string model_dir, text_path, ids_path, output_path, attention;
  std::vector<int64_t> attention_layers;  // empty = all
  int64_t max_length = 0;                 // 0 = the model's limit
  uint64_t seed = 0;
  bool float64 = false;
};

// The integers of j[key]; a float (1.7 would silently become 1), or a number beyond int64, is an error.
std::vector<int64_t> integers_at(const nlohmann::json& j, const char* key, const std::string& where) {
  const nlohmann::json& values = j.at(key);
  if (!values.is_array()) throw IoError(fmt::format("{}: \"{}\" must be an array of integers", where, key));
  std::vector<int64_t> out;
  for (const auto& v : values) {
    const bool too_big = v.is_number_unsigned() && v.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max());
    if (!v.is_number_integer() || too_big)
      throw IoError(fmt::format("{}: \"{}\" must hold integers, got {}", where, key, v.dump()));
    out.push_back(v.get<int64_t>());
  }
  return out;
}

std::vector<Encoding> read_id_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw IoError(fmt::format("ids file '{}' cannot be read", path));
  std::vector<Encoding> encodings;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.empty()) continue;
    try {
      const nlohmann::json j =
          parse_json(line, {fmt::format("ids file '{}' line {}", path, number), "write one JSON object per line"});
      const std::string where = fmt::format("ids file '{}' line {}", path, number);
      Encoding e;
      e.ids = integers_at(j, "ids", where);
      e.type_ids = j.contains("type_ids") ? integers_at(j, "type_ids", where) : std::vector<int64_t>(e.ids.size(), 0);
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

// The sequences to encode, with the id that pads them.
std::vector<Encoding> encodings_of(const EncodeArgs& args, const EncoderConfig& config, int64_t& pad_id) {
  pad_id = config.pad_token_id;
  if (!args.ids_path.empty()) return read_id_lines(args.ids_path);
  const auto tokenizer = load_tokenizer(args.model_dir);
  pad_id = tokenizer->pad_id();
  std::ifstream in(args.text_path);
  if (!in) throw IoError(fmt::format("text file '{}' cannot be read", args.text_path));
  const size_t max_length = static_cast<size_t>(args.max_length > 0 ? args.max_length : config.max_tokens());
  std::vector<Encoding> encodings;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) encodings.push_back(tokenizer->encode(line, max_length));
  if (encodings.empty()) throw IoError(fmt::format("text file '{}' holds no non-empty line", args.text_path));
  return encodings;
}

void check_fits_model(const std::vector<Encoding>& encodings, const EncoderConfig& config, const std::string& model_dir) {
  for (size_t i = 0; i < encodings.size(); ++i) {
    const Encoding& e = encodings[i];
    if (static_cast<int64_t>(e.ids.size()) > config.max_tokens())
      throw ConfigError(fmt::format("sequence {} has {} tokens but model '{}' takes at most {}: truncate it (--max-length)",
                                    i + 1, e.ids.size(), model_dir, config.max_tokens()));
    for (int64_t id : e.ids)
      if (id < 0 || id >= config.vocab_size)
        throw ConfigError(fmt::format("sequence {} holds id {}, outside model '{}''s vocabulary [0, {})", i + 1, id,
                                      model_dir, config.vocab_size));
    for (int64_t type : e.type_ids)
      if (type < 0 || type >= config.type_vocab_size)
        throw ConfigError(fmt::format("sequence {} holds type id {}, but model '{}' has {} token types", i + 1, type,
                                      model_dir, config.type_vocab_size));
  }
}

struct Encoded {
  EncoderOutput encoder;
  at::Tensor logits;  // undefined without a classification head
};

Encoded run_model(const EncodeArgs& args, bool has_head, const std::shared_ptr<const AttentionMethod>& method,
                  const TokenBatch& batch) {
  const at::ScalarType dtype = args.float64 ? at::kDouble : at::kFloat;
  at::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(args.seed);
  Encoded out;
  if (has_head) {
    PretrainedClassifier classifier = load_pretrained_classifier(args.model_dir, 0, 0.0, args.seed);
    // A stored head over a randomly initialised pooler would give logits that mean nothing.
    if (!classifier.report.not_loaded.empty())
      throw IoError(fmt::format("model '{}' has a classification head but lacks {}: its logits cannot be reproduced",
                                args.model_dir, classifier.report.not_loaded.front()));
    classifier.model->to(dtype);
    classifier.model->encoder()->set_attention(method, args.attention_layers);
    out.encoder = classifier.model->encoder()->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, generator, {true, {}});
    generator = at::make_generator<at::CPUGeneratorImpl>(args.seed);
    out.logits = classifier.model->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, generator);
  } else {
    PretrainedEncoder model = load_pretrained_encoder(args.model_dir);
    model.encoder->to(dtype);
    model.encoder->set_attention(method, args.attention_layers);
    out.encoder = model.encoder->forward(batch.ids_BN, batch.type_ids_BN, batch.keep_BN, generator, {true, {}});
  }
  return out;
}

void write_encoded(const EncodeArgs& args, const AttentionMethod& method, const TokenBatch& batch, const Encoded& encoded) {
  const StoredPrecision precision = args.float64 ? StoredPrecision::kFloat64 : StoredPrecision::kFloat32;
  H5File file = H5File::create(args.output_path);
  file.set_attr("/", "model_path", args.model_dir);
  file.set_attr("/", "attention_json", method.options_json().dump());
  file.set_attr("/", "attention_layers", nlohmann::json(args.attention_layers).dump());
  write_tensor(file, "/ids", batch.ids_BN, StoredPrecision::kFloat64);
  write_tensor(file, "/type_ids", batch.type_ids_BN, StoredPrecision::kFloat64);
  write_tensor(file, "/keep", batch.keep_BN, StoredPrecision::kFloat64);
  write_tensor(file, "/hidden_states", at::stack(encoded.encoder.hidden_states), precision);
  const at::Tensor keep_BN1 = batch.keep_BN.unsqueeze(-1).to(args.float64 ? at::kDouble : at::kFloat);
  write_tensor(file, "/embedding", (encoded.encoder.hidden_BNC * keep_BN1).sum(1) / keep_BN1.sum(1), precision);
  if (encoded.encoder.pooled_BC.defined()) write_tensor(file, "/pooled", encoded.encoder.pooled_BC, precision);
  if (encoded.logits.defined()) write_tensor(file, "/logits", encoded.logits, precision);
  file.close();
}

int encode_command(const EncodeArgs& args) {
  namespace fs = std::filesystem;
  if (args.text_path.empty() == args.ids_path.empty())
    throw ConfigError("smyrf encode: give exactly one of --input (text lines) and --ids (JSONL ids)");
  const fs::path weights = fs::path(args.model_dir) / "model.safetensors";
  if (!fs::is_regular_file(weights))
    throw IoError(fmt::format("model directory '{}' has no model.safetensors", args.model_dir));
  const EncoderConfig config = EncoderConfig::load((fs::path(args.model_dir) / "config.json").string());
  const bool has_head = [&] {
    const SafetensorsFile file = SafetensorsFile::open(weights.string());
    return file.contains("classifier.weight") || file.contains("classifier.out_proj.weight");
  }();
  int64_t pad_id = 0;
  const std::vector<Encoding> encodings = encodings_of(args, config, pad_id);
  check_fits_model(encodings, config, args.model_dir);
  const TokenBatch batch = token_batch(pad_batch(encodings, pad_id));
  const std::shared_ptr<const AttentionMethod> method =
      make_attention(parse_attention_argument(args.attention, "--attention", {{"method", "dense"}}), "--attention");
  write_encoded(args, *method, batch, run_model(args, has_head, method, batch));
  fmt::print("{}: {} sequences -> {}\n", args.model_dir, batch.ids_BN.size(0), args.output_path);
  return 0;
}

struct LmArgs {
  std::string model_dir, ids_path, output_path, attention;
  std::vector<int64_t> attention_layers;  // empty = all
  uint64_t seed = 0;
  bool float64 = false;
};

int lm_command(const LmArgs& args) {
  const std::vector<Encoding> encodings = read_id_lines(args.ids_path);
  PretrainedDecoder model = load_pretrained_decoder(args.model_dir);
  for (size_t i = 0; i < encodings.size(); ++i)
    if (static_cast<int64_t>(encodings[i].ids.size()) > model.config.max_positions)
      throw ConfigError(fmt::format("sequence {} has {} tokens but model '{}' takes at most {}", i + 1,
                                    encodings[i].ids.size(), args.model_dir, model.config.max_positions));
  const TokenBatch batch = token_batch(pad_batch(encodings, 0));
  const std::shared_ptr<const AttentionMethod> method =
      make_attention(parse_attention_argument(args.attention, "--attention", {{"method", "dense"}}), "--attention");
  model.decoder->to(args.float64 ? at::kDouble : at::kFloat);
  model.decoder->eval();
  model.decoder->set_attention(method, args.attention_layers);
  at::NoGradGuard no_grad;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(args.seed);
  const DecoderOutput out = model.decoder->forward(batch.ids_BN, batch.keep_BN, generator, {true, {}});
  const StoredPrecision precision = args.float64 ? StoredPrecision::kFloat64 : StoredPrecision::kFloat32;
  H5File file = H5File::create(args.output_path);
  file.set_attr("/", "model_path", args.model_dir);
  file.set_attr("/", "attention_json", method->options_json().dump());
  file.set_attr("/", "attention_layers", nlohmann::json(args.attention_layers).dump());
  write_tensor(file, "/ids", batch.ids_BN, StoredPrecision::kFloat64);
  write_tensor(file, "/keep", batch.keep_BN, StoredPrecision::kFloat64);
  write_tensor(file, "/logits", out.logits_BNV, precision);
  write_tensor(file, "/hidden_states", at::stack(out.hidden_states), precision);
  file.close();
  fmt::print("{}: {} sequences -> {}\n", args.model_dir, batch.ids_BN.size(0), args.output_path);
  return 0;
}

void add_lm_command(CLI::App& app, CommandTable& table) {
  auto a = std::make_shared<LmArgs>();
  auto* lm = app.add_subcommand("lm", "Run a Llama/GPT-2 causal LM directory on ids; logits and hidden states to HDF5");
  lm->add_option("--model", a->model_dir, "Hugging Face directory: config.json, model.safetensors")->required();
  lm->add_option("--ids", a->ids_path, "JSONL of {\"ids\": [...]} (smyrf tokenize)")->required();
  lm->add_option("--output,-o", a->output_path, "output file (.h5)")->required();
  lm->add_option("--attention", a->attention, R"(causal attention object, e.g. '{"method": "smyrf"}' (default dense))");
  lm->add_option("--layers", a->attention_layers, "layers that use --attention (default all)")->delimiter(',');
  lm->add_option("--seed", a->seed, "generator seed");
  lm->add_flag("--float64", a->float64, "compute in float64 (default float32)");
  table.add(lm, [a] { return lm_command(*a); });
}

void add_tokenize_command(CLI::App& app, CommandTable& table) {
  auto t = std::make_shared<TokenizeArgs>();
  auto* tokenize = app.add_subcommand("tokenize", "Token ids of each input line (BERT WordPiece / RoBERTa BPE), as JSON lines");
  tokenize->add_option("--tokenizer", t->tokenizer_dir, "folder with tokenizer.json, vocab.txt or vocab.json + merges.txt")
      ->required();
  t->input_option = tokenize->add_option("--input", t->input, "text file, one sequence per line");
  t->text_option = tokenize->add_option("--text", t->text, "one sequence given inline");
  t->input_option->excludes(t->text_option);
  auto* pair_input = tokenize->add_option("--pair-input", t->pair_input, "second sequences, line by line")->needs(t->input_option);
  t->pair_text_option = tokenize->add_option("--pair-text", t->pair_text, "second sequence given inline")
                            ->needs(t->text_option)
                            ->excludes(pair_input);
  tokenize->add_option("--max-length", t->max_length, "truncate to N ids including special tokens (pairs: longest first); 0 = no limit");
  tokenize->add_flag("--no-special-tokens", t->no_special_tokens, "no [CLS]/[SEP] (<s>/</s>)");
  tokenize->add_flag("--tokens", t->tokens, "also write the token strings");
  tokenize->add_option("--output,-o", t->output, "output .jsonl file, or - for stdout")->required();
  table.add(tokenize, [t] { return tokenize_command(*t); });
}

}  // namespace

void add_text_commands(CLI::App& app, CommandTable& table) {
  add_tokenize_command(app, table);
  auto e = std::make_shared<EncodeArgs>();
  auto* encode = app.add_subcommand("encode", "Run a BERT/RoBERTa model directory on text or ids; hidden states etc. to HDF5");
  encode->add_option("--model", e->model_dir, "Hugging Face directory: config.json, model.safetensors, tokenizer")->required();
  auto* input = encode->add_option("--input", e->text_path, "text file, one sequence per line");
  encode->add_option("--ids", e->ids_path, "JSONL of {\"ids\": [...], \"type_ids\": [...]} (smyrf tokenize)")->excludes(input);
  encode->add_option("--output,-o", e->output_path, "output file (.h5)")->required();
  encode->add_option("--attention", e->attention, R"(attention object, e.g. '{"method": "smyrf"}' (default dense))");
  encode->add_option("--layers", e->attention_layers, "layers that use --attention (default all)")->delimiter(',');
  encode->add_option("--max-length", e->max_length, "truncate text lines to N tokens (default the model's limit)");
  encode->add_option("--seed", e->seed, "generator seed");
  encode->add_flag("--float64", e->float64, "compute in float64 (default float32)");
  table.add(encode, [e] { return encode_command(*e); });
  add_lm_command(app, table);
}

}  // namespace smyrf
