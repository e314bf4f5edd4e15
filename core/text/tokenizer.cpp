// load_tokenizer (tokenizer.json, or the classic vocab.txt / vocab.json + merges.txt files),
// pad_batch and truncate_longest_first; see tokenizer.h. Tested in tests/light/test_text.cpp
// (every loading error) and tests/python/test_tokenizers.py (ids equal to `tokenizers`).
#include "core/text/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <utility>

#include "core/text/pipeline.h"
#include "core/text/unicode.h"
#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/json_parse.h"
#include "core/util/strings.h"
#include "core/util/text_file.h"

namespace smyrf {

namespace fs = std::filesystem;
using nlohmann::json;
using text::AddedToken;
using text::NormalizerStep;
using text::MetaspaceOptions;
using text::PipelineParts;
using text::PostProcessor;
using text::PreTokenizer;

namespace {

std::string read_file(const fs::path& path) { return read_text_file(path.string(), "tokenizer file"); }

json read_json(const fs::path& path) {
  return parse_json(read_file(path), {fmt::format("tokenizer file '{}'", path.string()),
                                      "the file is corrupt or truncated: re-download or re-save it"});
}

text::Vocab vocab_from_json(const json& object, const std::string& where) {
  if (!object.is_object()) {
    throw IoError(fmt::format("{} must be a JSON object of token -> id, got {}", where, json_kind_name(object)));
  }
  text::Vocab vocab;
  for (const auto& item : object.items()) {
    const json& id = item.value();
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > (int64_t{1} << 31)) {
      throw IoError(fmt::format("{}: the id of token '{}' must be a non-negative integer, got {}", where, item.key(),
                                json_excerpt(id)));
    }
    vocab.add(item.key(), id.get<int64_t>());
  }
  return vocab;
}

// A token given as "[CLS]" or as an AddedToken object {"content": "[CLS]", "lstrip": ..., ...}.
std::optional<AddedToken> token_setting(const json& value, const std::string& where, const std::string& file) {
  if (value.is_null()) return std::nullopt;
  AddedToken t;
  if (value.is_string()) {
    t.content = value.get<std::string>();
    return t;
  }
  JsonReader r(value, where, file);
  r.require("content", t.content)
      .get("lstrip", t.lstrip)
      .get("rstrip", t.rstrip)
      .get("single_word", t.single_word)
      .get("normalized", t.normalized)
      .get("special", t.special);
  return t;
}

// ---------------------------------------------------------------------------------------------
// tokenizer.json

std::vector<NormalizerStep> read_normalizer(const json& j, const std::string& file, const std::string& path) {
  std::vector<NormalizerStep> steps;
  if (j.is_null()) return steps;
  JsonReader r(j, path, file);
  std::string type;
  r.require("type", type);
  NormalizerStep step;
  if (type == "BertNormalizer") {
    step.kind = NormalizerStep::Kind::kBert;
    r.get("clean_text", step.bert.clean_text)
        .get("handle_chinese_chars", step.bert.handle_chinese_chars)
        .get("strip_accents", step.bert.strip_accents)
        .get("lowercase", step.bert.lowercase);
  } else if (type == "Lowercase") {
    step.kind = NormalizerStep::Kind::kLowercase;
  } else if (type == "NFD") {
    step.kind = NormalizerStep::Kind::kNfd;
  } else if (type == "StripAccents") {
    step.kind = NormalizerStep::Kind::kStripAccents;
  } else if (type == "Prepend") {
    step.kind = NormalizerStep::Kind::kPrepend;
    std::string prepend;
    r.require("prepend", prepend);
    step.text = text::utf8_decode(prepend, file);
  } else if (type == "Replace") {
    step.kind = NormalizerStep::Kind::kReplace;
    const json& pattern = r.raw("pattern");
    std::string content;
    r.require("content", content);
    if (!pattern.is_object() || !pattern.contains("String") || !pattern["String"].is_string() || pattern["String"] == "")
      throw ConfigError(fmt::format("{}: '{}.pattern' is {}; this harness replaces plain strings only "
                                    "({{\"String\": \"...\"}}), not regular expressions", file, path,
                                    json_excerpt(pattern)));
    step.pattern = text::utf8_decode(pattern["String"].get<std::string>(), file);
    step.text = text::utf8_decode(content, file);
  } else if (type == "Sequence") {
    const json& list = r.raw("normalizers");
    if (!list.is_array()) throw ConfigError(fmt::format("{}: '{}.normalizers' must be an array", file, path));
    for (std::size_t i = 0; i < list.size(); ++i) {
      for (const NormalizerStep& s : read_normalizer(list[i], file, fmt::format("{}.normalizers[{}]", path, i)))
        steps.push_back(s);
    }
    return steps;
  } else {
    throw ConfigError(fmt::format("{}: '{}.type' is \"{}\", which this harness does not implement; supported "
                                  "normalizers: BertNormalizer, Lowercase, NFD, StripAccents, Prepend, Replace, Sequence, null",
                                  file, path, type));
  }
  steps.push_back(step);
  return steps;
}

MetaspaceOptions read_metaspace(JsonReader& r, const std::string& file) {
  MetaspaceOptions m;
  std::string replacement = "\u2581", scheme;
  r.get("replacement", replacement).get("split", m.split).get("prepend_scheme", scheme);
  const std::u32string chars = text::utf8_decode(replacement, file);
  if (chars.size() != 1)
    throw ConfigError(fmt::format("{}: 'pre_tokenizer.replacement' must be one character, got \"{}\"", file, replacement));
  m.replacement = chars[0];
  if (scheme.empty()) {  // files older than prepend_scheme say add_prefix_space
    bool add_prefix_space = true;
    r.get("add_prefix_space", add_prefix_space);
    scheme = add_prefix_space ? "always" : "never";
  }
  if (scheme == "always") m.prepend = MetaspaceOptions::Prepend::kAlways;
  else if (scheme == "first") m.prepend = MetaspaceOptions::Prepend::kFirst;
  else if (scheme == "never") m.prepend = MetaspaceOptions::Prepend::kNever;
  else
    throw ConfigError(fmt::format("{}: 'pre_tokenizer.prepend_scheme' is \"{}\"; expected always, first or never", file,
                                  scheme));
  return m;
}

PreTokenizer read_pre_tokenizer(const json& j, const std::string& file) {
  const char* supported = "supported pre_tokenizers: BertPreTokenizer, ByteLevel, Metaspace, null, Sequence [Digits, one of these]";
  PreTokenizer p;
  if (j.is_null()) {
    p.kind = PreTokenizer::Kind::kNone;
    return p;
  }
  JsonReader r(j, "pre_tokenizer", file);
  std::string type;
  r.require("type", type);
  if (type == "Sequence") {
    const json& list = r.raw("pretokenizers");
    const bool digits_first = list.is_array() && list.size() == 2 && list[0].is_object() &&
                              list[0].value("type", "") == "Digits" && list[1].is_object() &&
                              list[1].value("type", "") != "Sequence";
    if (!digits_first)
      throw ConfigError(fmt::format("{}: 'pre_tokenizer' is a Sequence {}; the one Sequence this harness implements is "
                                    "[Digits, one of BertPreTokenizer, ByteLevel, Metaspace]", file, json_excerpt(list)));
    p = read_pre_tokenizer(list[1], file);
    p.digits = list[0].value("individual_digits", false);
    return p;
  }
  if (type == "BertPreTokenizer") {
    p.kind = PreTokenizer::Kind::kBert;
  } else if (type == "ByteLevel") {
    p.kind = PreTokenizer::Kind::kByteLevel;
    r.get("add_prefix_space", p.byte_level.add_prefix_space).get("use_regex", p.byte_level.use_regex);
  } else if (type == "Metaspace") {
    p.kind = PreTokenizer::Kind::kMetaspace;
    p.metaspace = read_metaspace(r, file);
  } else {
    throw ConfigError(fmt::format("{}: 'pre_tokenizer.type' is \"{}\", which this harness does not implement; {}",
                                  file, type, supported));
  }
  return p;
}

// A BertProcessing/RobertaProcessing ["token", id] pair.
int64_t special_pair_id(const json& j, const std::string& file, const std::string& path) {
  if (!j.is_array() || j.size() != 2 || !j[0].is_string() || !j[1].is_number_integer()) {
    throw IoError(fmt::format("{}: '{}' must be [\"token\", id], got {}", file, path, json_excerpt(j)));
  }
  return j[1].get<int64_t>();
}

PostProcessor read_post_processor(const json& j, const std::string& file, const std::string& path) {
  if (j.is_null()) return {};
  JsonReader r(j, path, file);
  std::string type;
  r.require("type", type);
  if (type == "ByteLevel") return {};  // only trims offsets; ids as without a post-processor
  if (type == "BertProcessing" || type == "RobertaProcessing") {
    const int64_t sep = special_pair_id(r.raw("sep"), file, path + ".sep");
    const int64_t cls = special_pair_id(r.raw("cls"), file, path + ".cls");
    return type == "BertProcessing" ? PostProcessor::bert(cls, sep) : PostProcessor::roberta(cls, sep);
  }
  if (type == "Sequence") {
    // e.g. [ByteLevel, TemplateProcessing]: ByteLevel changes no ids, so at most one other may remain.
    const json& list = r.raw("processors");
    if (!list.is_array()) throw ConfigError(fmt::format("{}: '{}.processors' must be an array", file, path));
    std::optional<PostProcessor> chosen;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].is_object() && list[i].value("type", "") == "ByteLevel") continue;
      if (chosen) {
        throw ConfigError(fmt::format("{}: '{}' chains several id-changing post-processors; only one (plus ByteLevel) "
                                      "is supported",
                                      file, path));
      }
      chosen = read_post_processor(list[i], file, fmt::format("{}.processors[{}]", path, i));
    }
    return chosen.value_or(PostProcessor{});
  }
  if (type != "TemplateProcessing") {
    throw ConfigError(fmt::format("{}: '{}.type' is \"{}\", which this harness does not implement; supported "
                                  "post_processors: TemplateProcessing, BertProcessing, RobertaProcessing, ByteLevel, "
                                  "Sequence, null",
                                  file, path, type));
  }
  const json& specials = r.raw("special_tokens");
  const auto read_template = [&](const char* key) {
    const json& pieces = r.raw(key);
    if (!pieces.is_array()) throw IoError(fmt::format("{}: '{}.{}' must be an array", file, path, key));
    std::vector<text::TemplatePiece> out;
    for (std::size_t i = 0; i < pieces.size(); ++i) {
      const std::string where = fmt::format("{}.{}[{}]", path, key, i);
      const json& piece = pieces[i];
      text::TemplatePiece p;
      if (piece.is_object() && piece.contains("Sequence")) {
        JsonReader pr(piece["Sequence"], where + ".Sequence", file);
        std::string id;
        pr.get_choice("id", id, {"A", "B"}).get("type_id", p.type_id);
        p.is_sequence = true;
        p.sequence = id == "B" ? 1 : 0;
      } else if (piece.is_object() && piece.contains("SpecialToken")) {
        JsonReader pr(piece["SpecialToken"], where + ".SpecialToken", file);
        std::string id;
        pr.require("id", id).get("type_id", p.type_id);
        if (!specials.is_object() || !specials.contains(id)) {
          throw IoError(fmt::format("{}: '{}' names special token '{}', which '{}.special_tokens' does not define",
                                    file, where, id, path));
        }
        JsonReader sr(specials[id], fmt::format("{}.special_tokens.{}", path, id), file);
        sr.require("ids", p.ids);
      } else {
        throw IoError(fmt::format("{}: '{}' must be {{\"Sequence\": ...}} or {{\"SpecialToken\": ...}}, got {}", file,
                                  where, json_excerpt(piece)));
      }
      out.push_back(std::move(p));
    }
    return out;
  };
  PostProcessor p;
  p.single = read_template("single");
  p.pair = read_template("pair");
  return p;
}

std::unique_ptr<Tokenizer> load_tokenizer_json(const fs::path& path) {
  const std::string file = path.string();
  const json j = read_json(path);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) {
    throw IoError(fmt::format("'{}' has no \"model\" object: not a Hugging Face tokenizers file (save one with "
                              "tokenizer.save(\"tokenizer.json\"))",
                              file));
  }
  PipelineParts parts;
  parts.source = file;
  const json& model = j["model"];
  JsonReader mr(model, "model", file);
  std::string type;
  if (mr.has("type")) {
    mr.get("type", type);
  } else {  // older files leave the type out; HF tells the models apart by their fields
    type = model.contains("merges") ? "BPE" : model.contains("max_input_chars_per_word") ? "WordPiece" : "";
  }
  if (type == "WordPiece") {
    text::WordPieceOptions o;
    int64_t max_chars = static_cast<int64_t>(o.max_input_chars_per_word);
    mr.get("unk_token", o.unk_token)
        .get("continuing_subword_prefix", o.continuing_subword_prefix)
        .get("max_input_chars_per_word", max_chars);
    o.max_input_chars_per_word = static_cast<std::size_t>(std::max<int64_t>(0, max_chars));
    parts.model = std::make_unique<text::WordPieceModel>(vocab_from_json(mr.raw("vocab"), file + ": model.vocab"),
                                                         std::move(o), file);
  } else if (type == "BPE") {
    text::BpeOptions o;
    std::optional<std::string> prefix, suffix;
    std::optional<double> dropout;
    mr.get("unk_token", o.unk_token)
        .get("continuing_subword_prefix", prefix)
        .get("end_of_word_suffix", suffix)
        .get("fuse_unk", o.fuse_unk)
        .get("byte_fallback", o.byte_fallback)
        .get("ignore_merges", o.ignore_merges)
        .get("dropout", dropout);
    o.continuing_subword_prefix = prefix.value_or("");
    o.end_of_word_suffix = suffix.value_or("");
    if (dropout && *dropout > 0) {
      throw ConfigError(fmt::format("{}: model.dropout is {}; BPE dropout (random merges, for training) is not "
                                    "supported: set it to null",
                                    file, *dropout));
    }
    const json& merges_json = mr.raw("merges");
    if (!merges_json.is_array()) throw IoError(fmt::format("{}: model.merges must be an array", file));
    std::vector<text::MergeRule> merges;
    merges.reserve(merges_json.size());
    for (std::size_t i = 0; i < merges_json.size(); ++i) {
      const json& m = merges_json[i];
      text::MergeRule rule;
      rule.line = i;
      // "a b" (tokenizers < 0.20) or ["a", "b"] (newer, allows spaces inside tokens)
      if (m.is_string()) {
        const std::string s = m.get<std::string>();
        const std::size_t space = s.find(' ');
        if (space == std::string::npos || space == 0 || space + 1 == s.size() || s.find(' ', space + 1) != std::string::npos) {
          throw IoError(fmt::format("{}: model.merges[{}] is \"{}\"; a merge must be two tokens separated by one space",
                                    file, i, s));
        }
        rule.left = s.substr(0, space);
        rule.right = s.substr(space + 1);
      } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
        rule.left = m[0].get<std::string>();
        rule.right = m[1].get<std::string>();
      } else {
        throw IoError(fmt::format("{}: model.merges[{}] must be \"a b\" or [\"a\", \"b\"], got {}", file, i,
                                  json_excerpt(m)));
      }
      merges.push_back(std::move(rule));
    }
    parts.model = std::make_unique<text::BpeModel>(vocab_from_json(mr.raw("vocab"), file + ": model.vocab"), merges,
                                                   std::move(o), file, "model.merges entry");
  } else {
    throw ConfigError(fmt::format("{}: model type \"{}\" is not supported; supported: WordPiece (BERT), BPE "
                                  "(RoBERTa/GPT-2 byte-level)",
                                  file, type.empty() ? "(missing)" : type));
  }

  parts.normalizer = read_normalizer(j.value("normalizer", json()), file, "normalizer");
  parts.pre_tokenizer = read_pre_tokenizer(j.value("pre_tokenizer", json()), file);
  parts.post_processor = read_post_processor(j.value("post_processor", json()), file, "post_processor");

  const json added = j.value("added_tokens", json::array());
  if (!added.is_array()) throw IoError(fmt::format("{}: added_tokens must be an array", file));
  for (std::size_t i = 0; i < added.size(); ++i) {
    const std::string where = fmt::format("added_tokens[{}]", i);
    const std::optional<AddedToken> t = token_setting(added[i], where, file);
    if (!t || !added[i].is_object()) throw IoError(fmt::format("{}: '{}' must be an object", file, where));
    AddedToken token = *t;
    JsonReader(added[i], where, file).require("id", token.id);
    parts.added_tokens.push_back(std::move(token));
  }

  // Padding: the file's own setting, else the pad token the config files name, else the
  // conventional one of the model family.
  const json padding = j.value("padding", json());
  if (padding.is_object() && padding.contains("pad_id") && padding["pad_id"].is_number_integer()) {
    parts.pad_id = padding["pad_id"].get<int64_t>();
  } else {
    std::string pad_token = type == "WordPiece" ? "[PAD]" : "<pad>";
    for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
      const fs::path config = path.parent_path() / name;
      if (!fs::exists(config)) continue;
      const json c = read_json(config);
      if (!c.is_object() || !c.contains("pad_token")) continue;
      if (const auto t = token_setting(c["pad_token"], "pad_token", config.string())) pad_token = t->content;
    }
    for (const AddedToken& t : parts.added_tokens) {
      if (t.content == pad_token) parts.pad_id = t.id;
    }
    if (!parts.pad_id) parts.pad_id = parts.model->vocab().find(pad_token);
  }
  return std::make_unique<text::PipelineTokenizer>(std::move(parts));
}

// ---------------------------------------------------------------------------------------------
// classic files

// The special-token settings of tokenizer_config.json, overridden by special_tokens_map.json (as
// transformers does), else the defaults given.
struct ClassicConfig {
  json config = json::object();
  std::map<std::string, AddedToken> tokens;  // "unk_token" -> token
  std::vector<AddedToken> added_tokens_decoder;
};

ClassicConfig read_classic_config(const fs::path& dir, const std::map<std::string, AddedToken>& defaults) {
  ClassicConfig c;
  c.tokens = defaults;
  const fs::path config_path = dir / "tokenizer_config.json", map_path = dir / "special_tokens_map.json";
  std::vector<std::pair<fs::path, json>> sources;
  if (fs::exists(config_path)) {
    c.config = read_json(config_path);
    if (!c.config.is_object()) throw IoError(fmt::format("'{}' must be a JSON object", config_path.string()));
    sources.emplace_back(config_path, c.config);
  }
  if (fs::exists(map_path)) {
    json map = read_json(map_path);
    if (!map.is_object()) throw IoError(fmt::format("'{}' must be a JSON object", map_path.string()));
    sources.emplace_back(map_path, std::move(map));
  }
  for (const auto& [path, object] : sources) {
    for (auto& [key, token] : c.tokens) {
      if (!object.contains(key)) continue;
      const std::optional<AddedToken> t = token_setting(object[key], key, path.string());
      if (t) token = *t;
    }
  }
  if (c.config.contains("added_tokens_decoder") && c.config["added_tokens_decoder"].is_object()) {
    for (const auto& item : c.config["added_tokens_decoder"].items()) {
      const std::string where = fmt::format("added_tokens_decoder.{}", item.key());
      std::optional<AddedToken> t = token_setting(item.value(), where, config_path.string());
      if (!t) continue;
      try {
        t->id = std::stoll(item.key());
      } catch (const std::exception&) {
        throw IoError(fmt::format("'{}': the key of '{}' must be a token id", config_path.string(), where));
      }
      c.added_tokens_decoder.push_back(*t);
    }
  }
  return c;
}

// Added tokens of a classic tokenizer: added_tokens_decoder when the config has it, else its
// special tokens that the vocabulary contains (as transformers' slow-to-fast conversion does).
std::vector<AddedToken> classic_added_tokens(const ClassicConfig& c, const text::Vocab& vocab) {
  if (!c.added_tokens_decoder.empty()) return c.added_tokens_decoder;
  std::vector<AddedToken> out;
  for (const auto& entry : c.tokens) {
    const AddedToken& token = entry.second;  // a structured binding cannot be captured before C++20
    const auto id = vocab.find(token.content);
    if (!id) continue;
    if (std::any_of(out.begin(), out.end(), [&](const AddedToken& t) { return t.content == token.content; })) continue;
    AddedToken t = token;
    t.id = *id;
    t.special = true;
    out.push_back(t);
  }
  std::sort(out.begin(), out.end(), [](const AddedToken& a, const AddedToken& b) { return a.id < b.id; });
  return out;
}

int64_t required_token(const ClassicConfig& c, const text::Vocab& vocab, const std::string& key,
                       const std::string& file) {
  const std::string& content = c.tokens.at(key).content;
  const auto id = vocab.find(content);
  if (!id) {
    throw ConfigError(fmt::format("{} has no token '{}' ({}); name the right one with \"{}\" in "
                                  "tokenizer_config.json",
                                  file, content, key, key));
  }
  return *id;
}

template <class T>
T config_value(const ClassicConfig& c, const char* key, T fallback, const fs::path& dir) {
  T value = fallback;
  JsonReader(c.config, "", (dir / "tokenizer_config.json").string()).get(key, value);
  return value;
}

std::unique_ptr<Tokenizer> load_wordpiece_classic(const fs::path& dir) {
  const fs::path vocab_path = dir / "vocab.txt";
  const std::string file = vocab_path.string();
  // Python reads vocab.txt in text mode: "\r\n" and a lone "\r" end lines too.
  std::string content = read_file(vocab_path);
  std::string unified;
  unified.reserve(content.size());
  for (std::size_t i = 0; i < content.size(); ++i) {
    if (content[i] == '\r') {
      unified.push_back('\n');
      if (i + 1 < content.size() && content[i + 1] == '\n') ++i;
    } else {
      unified.push_back(content[i]);
    }
  }
  text::Vocab vocab;
  const std::vector<std::string> lines = split_lines(unified);
  for (std::size_t i = 0; i < lines.size(); ++i) vocab.add(lines[i], static_cast<int64_t>(i));
  if (vocab.size() == 0) throw IoError(fmt::format("'{}' is empty: expected one WordPiece token per line", file));

  AddedToken unk, sep, pad, cls, mask;
  unk.content = "[UNK]", sep.content = "[SEP]", pad.content = "[PAD]", cls.content = "[CLS]", mask.content = "[MASK]";
  const ClassicConfig c = read_classic_config(
      dir, {{"unk_token", unk}, {"sep_token", sep}, {"pad_token", pad}, {"cls_token", cls}, {"mask_token", mask}});
  NormalizerStep bert;
  bert.kind = NormalizerStep::Kind::kBert;
  bert.bert.lowercase = config_value(c, "do_lower_case", true, dir);
  bert.bert.handle_chinese_chars = config_value(c, "tokenize_chinese_chars", true, dir);
  bert.bert.strip_accents = config_value(c, "strip_accents", std::optional<bool>(), dir);

  PipelineParts parts;
  parts.source = file;
  parts.normalizer = {bert};
  parts.pre_tokenizer.kind = PreTokenizer::Kind::kBert;
  parts.post_processor = PostProcessor::bert(required_token(c, vocab, "cls_token", file),
                                             required_token(c, vocab, "sep_token", file));
  parts.added_tokens = classic_added_tokens(c, vocab);
  parts.pad_id = vocab.find(c.tokens.at("pad_token").content);
  text::WordPieceOptions o;
  o.unk_token = c.tokens.at("unk_token").content;
  parts.model = std::make_unique<text::WordPieceModel>(std::move(vocab), std::move(o), file);
  return std::make_unique<text::PipelineTokenizer>(std::move(parts));
}

std::unique_ptr<Tokenizer> load_bpe_classic(const fs::path& dir) {
  const fs::path vocab_path = dir / "vocab.json", merges_path = dir / "merges.txt";
  if (!fs::exists(merges_path)) {
    throw IoError(fmt::format("'{}' has vocab.json but no merges.txt: a byte-level BPE tokenizer needs both (or a "
                              "tokenizer.json)",
                              dir.string()));
  }
  text::Vocab vocab = vocab_from_json(read_json(vocab_path), vocab_path.string());
  const std::string merges_file = merges_path.string();
  const std::vector<std::string> lines = split_lines(read_file(merges_path));
  std::vector<text::MergeRule> merges;
  merges.reserve(lines.size());
  for (std::size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    if (line.rfind("#version", 0) == 0) continue;
    const std::size_t space = line.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == line.size() ||
        line.find(' ', space + 1) != std::string::npos) {
      throw IoError(fmt::format("'{}' line {} is \"{}\"; every merge line must be two tokens separated by one space "
                                "(the file is corrupt: re-save it)",
                                merges_file, i + 1, line.size() > 60 ? line.substr(0, 60) + "..." : line));
    }
    merges.push_back({line.substr(0, space), line.substr(space + 1), i + 1});
  }

  AddedToken bos, eos, unk, sep, pad, cls, mask;
  bos.content = cls.content = "<s>", eos.content = sep.content = "</s>";
  unk.content = "<unk>", pad.content = "<pad>", mask.content = "<mask>";
  mask.lstrip = true;  // RoBERTa: "<mask>" takes the space before it
  const ClassicConfig c = read_classic_config(dir, {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk},
                                                    {"sep_token", sep}, {"pad_token", pad}, {"cls_token", cls},
                                                    {"mask_token", mask}});
  PipelineParts parts;
  parts.source = vocab_path.string();
  parts.pre_tokenizer.kind = PreTokenizer::Kind::kByteLevel;
  parts.pre_tokenizer.byte_level.add_prefix_space = config_value(c, "add_prefix_space", false, dir);
  parts.post_processor = PostProcessor::roberta(required_token(c, vocab, "cls_token", parts.source),
                                                required_token(c, vocab, "sep_token", parts.source));
  parts.added_tokens = classic_added_tokens(c, vocab);
  parts.pad_id = vocab.find(c.tokens.at("pad_token").content);
  // RoBERTa's conversion to the fast tokenizer gives the BPE model no unk token.
  parts.model = std::make_unique<text::BpeModel>(std::move(vocab), merges, text::BpeOptions{}, merges_file, "line");
  return std::make_unique<text::PipelineTokenizer>(std::move(parts));
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir_name) {
  const fs::path dir(dir_name);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw IoError(fmt::format("tokenizer directory '{}' does not exist (or is not a directory); pass the model "
                              "folder that holds tokenizer.json, vocab.txt or vocab.json + merges.txt",
                              dir_name));
  }
  std::unique_ptr<Tokenizer> tokenizer;
  if (fs::exists(dir / "tokenizer.json")) {
    tokenizer = load_tokenizer_json(dir / "tokenizer.json");
  } else if (fs::exists(dir / "vocab.txt")) {
    tokenizer = load_wordpiece_classic(dir);
  } else if (fs::exists(dir / "vocab.json")) {
    tokenizer = load_bpe_classic(dir);
  } else {
    throw IoError(fmt::format("tokenizer directory '{}' has no tokenizer.json, vocab.txt (BERT WordPiece) or "
                              "vocab.json + merges.txt (byte-level BPE); copy the tokenizer files of the model there",
                              dir_name));
  }
  return tokenizer;
}

// ---------------------------------------------------------------------------------------------

PaddedBatch pad_batch(const std::vector<Encoding>& encodings, int64_t pad_id, size_t min_length) {
  PaddedBatch b;
  b.batch = encodings.size();
  b.length = encodings.empty() ? 0 : min_length;
  for (const Encoding& e : encodings) {
    SMYRF_CHECK(e.type_ids.size() == e.ids.size(), "pad_batch: an encoding has {} ids but {} type ids", e.ids.size(),
                e.type_ids.size());
    b.length = std::max(b.length, e.ids.size());
  }
  b.ids_BN.assign(b.batch * b.length, pad_id);
  b.type_ids_BN.assign(b.batch * b.length, 0);
  b.mask_BN.assign(b.batch * b.length, 0);
  for (size_t i = 0; i < b.batch; ++i) {
    const Encoding& e = encodings[i];
    std::copy(e.ids.begin(), e.ids.end(), b.ids_BN.begin() + static_cast<std::ptrdiff_t>(i * b.length));
    std::copy(e.type_ids.begin(), e.type_ids.end(), b.type_ids_BN.begin() + static_cast<std::ptrdiff_t>(i * b.length));
    std::fill_n(b.mask_BN.begin() + static_cast<std::ptrdiff_t>(i * b.length), e.ids.size(), 1);
  }
  return b;
}

void truncate_longest_first(std::vector<int64_t>& a, std::vector<int64_t>& b, size_t max_length) {
  // HF's truncate_encodings, LongestFirst with a pair.
  if (max_length == 0) {
    a.clear();
    b.clear();
    return;
  }
  if (a.size() + b.size() <= max_length) return;
  size_t n1 = a.size(), n2 = b.size();
  const bool swapped = n1 > n2;
  if (swapped) std::swap(n1, n2);  // n1: the shorter
  n2 = n1 > max_length ? n1 : std::max(n1, max_length - n1);
  if (n1 + n2 > max_length) {
    n1 = max_length / 2;
    n2 = n1 + max_length % 2;
  }
  if (swapped) std::swap(n1, n2);
  if (a.size() > n1) a.resize(n1);
  if (b.size() > n2) b.resize(n2);
}

}  // namespace smyrf
