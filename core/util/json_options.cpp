// JsonReader: typed, strict reading of a component's JSON options; see json_options.h.
// Tested in tests/light/test_json_options.cpp.
#include "core/util/json_options.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/util/check.h"
#include "core/util/strings.h"

namespace smyrf {

namespace {

std::string prefix(const std::string& source) {
  return source.empty() ? std::string() : fmt::format("config '{}': ", source);
}

std::string in_source(const std::string& source) {
  return source.empty() ? std::string() : fmt::format(" in '{}'", source);
}

// An integer-valued JSON number as int64; 2.0 counts, 2.5 and out-of-range values do not.
std::optional<std::int64_t> as_integer(const nlohmann::json& v) {
  if (v.is_number_integer() && !v.is_number_unsigned()) return v.get<std::int64_t>();
  if (v.is_number_unsigned()) {
    const auto u = v.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) return std::nullopt;
    return static_cast<std::int64_t>(u);
  }
  if (v.is_number_float()) {
    const double d = v.get<double>();
    // 2^63 is exactly representable; anything at or beyond it does not fit.
    if (!std::isfinite(d) || d != std::floor(d) || d < -9223372036854775808.0 || d >= 9223372036854775808.0) {
      return std::nullopt;
    }
    return static_cast<std::int64_t>(d);
  }
  return std::nullopt;
}

}  // namespace

const char* json_kind_name(const nlohmann::json& v) {
  if (v.is_object()) return "an object";
  if (v.is_array()) return "an array";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_null()) return "null";
  return "a number";
}

std::string json_excerpt(const nlohmann::json& value, std::size_t max_chars) {
  std::string text = value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > max_chars) text = text.substr(0, max_chars) + "...";
  return text;
}

JsonReader::JsonReader(const nlohmann::json& obj, std::string path, std::string source)
    : obj_(obj.is_null() ? nlohmann::json::object() : obj), path_(std::move(path)), source_(std::move(source)) {
  if (!obj_.is_object()) {
    throw ConfigError(fmt::format("{}'{}' must be a JSON object, got {}: {}", prefix(source_),
                                  path_.empty() ? "<top level>" : path_, json_kind_name(obj_), json_excerpt(obj_)));
  }
}

const nlohmann::json* JsonReader::lookup(const char* key) const {
  if (std::find(asked_.begin(), asked_.end(), key) == asked_.end()) asked_.emplace_back(key);
  const auto it = obj_.find(key);
  return it == obj_.end() ? nullptr : &*it;
}

std::string JsonReader::key_path(const char* key) const {
  return path_.empty() ? std::string(key) : path_ + "." + key;
}

void JsonReader::throw_missing(const char* key) const {
  throw ConfigError(fmt::format("missing required key '{}'{}: add \"{}\": <value> to the {} object", key_path(key),
                                in_source(source_), key, path_.empty() ? "top-level" : "'" + path_ + "'"));
}

void JsonReader::throw_type(const std::string& key_path, const char* expected, const nlohmann::json& v) const {
  throw ConfigError(fmt::format("{}'{}' must be {}, got {}", prefix(source_), key_path, expected, json_excerpt(v)));
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, bool& out) const {
  if (!v.is_boolean()) throw_type(key_path, "a boolean (true or false)", v);
  out = v.get<bool>();
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, int& out) const {
  const auto i = as_integer(v);
  if (!i) throw_type(key_path, "an integer", v);
  if (*i < std::numeric_limits<int>::min() || *i > std::numeric_limits<int>::max()) {
    throw_type(key_path, "an integer in the 32-bit range", v);
  }
  out = static_cast<int>(*i);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, std::int64_t& out) const {
  const auto i = as_integer(v);
  if (!i) throw_type(key_path, "an integer", v);
  out = *i;
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, float& out) const {
  if (!v.is_number()) throw_type(key_path, "a number", v);
  const double d = v.get<double>();
  if (std::abs(d) > std::numeric_limits<float>::max()) throw_type(key_path, "a number in the float range", v);
  out = static_cast<float>(d);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, double& out) const {
  if (!v.is_number()) throw_type(key_path, "a number", v);
  out = v.get<double>();
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, std::string& out) const {
  if (!v.is_string()) throw_type(key_path, "a string", v);
  out = v.get<std::string>();
}

template <class E>
void JsonReader::read_array(const nlohmann::json& v, const std::string& key_path, const char* expected,
                            std::vector<E>& out) const {
  if (!v.is_array()) throw_type(key_path, expected, v);
  std::vector<E> values(v.size());
  for (std::size_t i = 0; i < v.size(); ++i) read_value(v[i], fmt::format("{}[{}]", key_path, i), values[i]);
  out = std::move(values);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, std::vector<int>& out) const {
  read_array(v, key_path, "an array of integers", out);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path,
                            std::vector<std::int64_t>& out) const {
  read_array(v, key_path, "an array of integers", out);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path, std::vector<double>& out) const {
  read_array(v, key_path, "an array of numbers", out);
}

void JsonReader::read_value(const nlohmann::json& v, const std::string& key_path,
                            std::vector<std::string>& out) const {
  read_array(v, key_path, "an array of strings", out);
}

JsonReader& JsonReader::get_choice(const char* key, std::string& out, const std::vector<std::string>& allowed) {
  const nlohmann::json* v = lookup(key);
  if (v == nullptr || v->is_null()) return *this;
  const std::string valid = join(allowed, ", ");
  if (!v->is_string()) throw_type(key_path(key), fmt::format("a string, one of: {}", valid).c_str(), *v);
  const auto value = v->get<std::string>();
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    throw ConfigError(fmt::format("{}'{}' is \"{}\", which is not a valid choice{}; valid values: {}",
                                  prefix(source_), key_path(key), value, did_you_mean(value, allowed), valid));
  }
  out = value;
  return *this;
}

bool JsonReader::has(const char* key) const {
  const nlohmann::json* v = lookup(key);
  return v != nullptr && !v->is_null();
}

JsonReader JsonReader::child(const char* key) const {
  const nlohmann::json* v = lookup(key);
  if (v != nullptr && !v->is_null() && !v->is_object()) throw_type(key_path(key), "an object", *v);
  return JsonReader(v == nullptr ? nlohmann::json::object() : *v, key_path(key), source_);
}

const nlohmann::json& JsonReader::raw(const char* key) {
  static const nlohmann::json kNull;
  const nlohmann::json* v = lookup(key);
  return v == nullptr ? kNull : *v;
}

void JsonReader::finish() const {
  std::vector<std::string> problems;
  for (const auto& item : obj_.items()) {
    if (std::find(asked_.begin(), asked_.end(), item.key()) != asked_.end()) continue;
    problems.push_back(fmt::format("unknown key '{}'{}{}", key_path(item.key().c_str()), in_source(source_),
                                   did_you_mean(item.key(), asked_)));
  }
  if (problems.empty()) return;
  throw ConfigError(
      fmt::format("{}; valid keys: {}", join(problems, "; "), asked_.empty() ? "(none)" : join(asked_, ", ")));
}

}  // namespace smyrf
