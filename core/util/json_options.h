// JsonReader: builds a component's typed Options struct from its JSON object, rejecting unknown keys.
//
// Defaults live in the Options struct; JSON only overrides them (absent or null keeps the default).
// Usage, inside a component's `static Options from_json(const nlohmann::json& j, ...)`:
//   JsonReader r(j, "attention", source);
//   r.get("n_hashes", o.n_hashes).get("q_cluster_size", o.q_cluster_size)
//    .get_choice("method", o.method, {"dense", "smyrf"});
//   r.finish();  // after every get: any key never asked about is an error with a suggestion
// Every message names the config file, the dotted JSON path, what was expected and what was given:
//   config 'configs/x.json': 'attention.n_hashes' must be an integer, got "two"
// Supported T: bool, int, int64_t, float, double, std::string, std::vector<int>,
// std::vector<int64_t>, std::vector<double>, std::vector<std::string>, and std::optional of these.
// Tested in tests/light/test_json_options.cpp.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace smyrf {

// A one-line excerpt of a JSON value for messages: its dump, cut to about max_chars.
std::string json_excerpt(const nlohmann::json& value, std::size_t max_chars = 60);

// "an object", "an array", "a string", "a boolean", "null" or "a number", for messages.
const char* json_kind_name(const nlohmann::json& value);

// The spellings of an enum's values in configs and logs, e.g. {{"fused", SmyrfKernel::kFused}, ...}.
template <class E>
using EnumNames = std::vector<std::pair<const char*, E>>;

// The spelling of `value` ("" when `names` lacks it).
template <class E>
std::string enum_name(E value, const EnumNames<E>& names) {
  for (const auto& [spelling, v] : names)
    if (v == value) return spelling;
  return "";
}

class JsonReader {
 public:
  // obj: this component's JSON object (null reads as empty); path: its dotted JSON path for
  // messages ("attention", "" for the top level); source: the config file name ("" if none).
  JsonReader(const nlohmann::json& obj, std::string path, std::string source);

  // Optional key: absent or null keeps `out` as it is.
  template <class T>
  JsonReader& get(const char* key, T& out) {
    if (const nlohmann::json* v = lookup(key); v != nullptr && !v->is_null()) read_value(*v, key_path(key), out);
    return *this;
  }
  template <class T>
  JsonReader& get(const char* key, std::optional<T>& out) {
    if (const nlohmann::json* v = lookup(key); v != nullptr && !v->is_null()) {
      T value{};
      read_value(*v, key_path(key), value);
      out = std::move(value);
    }
    return *this;
  }
  // Missing (or null) -> ConfigError "missing required key 'data.n_queries' in 'FILE' ...".
  template <class T>
  JsonReader& require(const char* key, T& out) {
    const nlohmann::json* v = lookup(key);
    if (v == nullptr || v->is_null()) throw_missing(key);
    read_value(*v, key_path(key), out);
    return *this;
  }
  // Enum-like string that must be one of `allowed` (absent or null keeps `out`).
  JsonReader& get_choice(const char* key, std::string& out, const std::vector<std::string>& allowed);
  // An enum spelled by its names in `names` (absent or null keeps `out`); an unknown spelling is a
  // ConfigError listing the valid ones, as get_choice gives.
  template <class E>
  JsonReader& get_enum(const char* key, E& out, const EnumNames<E>& names) {
    std::string name = enum_name(out, names);
    std::vector<std::string> allowed;
    for (const auto& [spelling, value] : names) allowed.emplace_back(spelling);
    get_choice(key, name, allowed);
    for (const auto& [spelling, value] : names)
      if (name == spelling) out = value;
    return *this;
  }

  bool has(const char* key) const;  // present and not null; counts as asked about
  // Nested object (marks key consumed); absent or null -> a reader over an empty object.
  // The child has its own finish().
  JsonReader child(const char* key) const;
  // Free-form value (marks key consumed); absent -> a null value.
  const nlohmann::json& raw(const char* key);

  // Throws ConfigError if the object holds a key no get/require/get_choice/has/child/raw asked about.
  void finish() const;

  const std::string& path() const { return path_; }
  const std::string& source() const { return source_; }
  const nlohmann::json& object() const { return obj_; }
  // Keys asked about so far, in the order asked: the valid keys listed in messages.
  const std::vector<std::string>& known_keys() const { return asked_; }

 private:
  const nlohmann::json* lookup(const char* key) const;  // records key as asked; nullptr if absent
  std::string key_path(const char* key) const;
  [[noreturn]] void throw_missing(const char* key) const;
  [[noreturn]] void throw_type(const std::string& key_path, const char* expected, const nlohmann::json& v) const;

  void read_value(const nlohmann::json& v, const std::string& key_path, bool& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, int& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::int64_t& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, float& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, double& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::string& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::vector<int>& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::vector<std::int64_t>& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::vector<double>& out) const;
  void read_value(const nlohmann::json& v, const std::string& key_path, std::vector<std::string>& out) const;
  template <class E>
  void read_array(const nlohmann::json& v, const std::string& key_path, const char* expected,
                  std::vector<E>& out) const;

  nlohmann::json obj_;
  std::string path_;
  std::string source_;
  mutable std::vector<std::string> asked_;
};

}  // namespace smyrf
