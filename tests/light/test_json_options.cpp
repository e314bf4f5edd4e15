// Tests for core/util/strings.h (edit distance, did-you-mean) and core/util/json_options.h
// (JsonReader: typed reads, defaults, required keys, choices, unknown-key rejection and the
// exact wording of the error messages users see). Run: smyrf_tests_light --gtest_filter='Strings*:JsonReader*'
#include <gtest/gtest.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "core/util/strings.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

using nlohmann::json;

using test::contains;

// The message of the ConfigError that f throws ("" and a failure if it throws none).
template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected smyrf::ConfigError";
  return "";
}

// ---------------------------------------------------------------------------------------------
// strings

TEST(Strings, EditDistanceKnownValues) {
  EXPECT_EQ(edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(edit_distance("", "abc"), 3u);
  EXPECT_EQ(edit_distance("abc", ""), 3u);
  EXPECT_EQ(edit_distance("", ""), 0u);
  EXPECT_EQ(edit_distance("flaw", "lawn"), 2u);
  EXPECT_EQ(edit_distance("n_hash", "n_hashes"), 2u);
  EXPECT_EQ(edit_distance("abc", "acb"), 2u);  // no transposition move
}

TEST(Strings, EditDistanceIsCaseInsensitiveAndSymmetric) {
  EXPECT_EQ(edit_distance("N_Hashes", "n_hashes"), 0u);
  EXPECT_EQ(edit_distance("attention", "atention"), edit_distance("atention", "attention"));
}

TEST(Strings, ClosestMatchFindsTypos) {
  const std::vector<std::string> keys = {"n_hashes", "q_cluster_size", "k_cluster_size", "method"};
  EXPECT_EQ(closest_match("n_hash", keys), "n_hashes");
  EXPECT_EQ(closest_match("q_clustr_size", keys), "q_cluster_size");
  EXPECT_EQ(closest_match("methd", keys), "method");
  EXPECT_EQ(closest_match("METHOD", keys), "method");
}

TEST(Strings, ClosestMatchRejectsUnrelatedWords) {
  const std::vector<std::string> keys = {"n_hashes", "method"};
  EXPECT_EQ(closest_match("learning_rate", keys), "");
  EXPECT_EQ(closest_match("", keys), "");
  EXPECT_EQ(closest_match("xy", {"ab"}), "");  // every character differs
  EXPECT_EQ(closest_match("abc", {}), "");
}

TEST(Strings, ClosestMatchAcceptsPrefixesAndPrefersSmallerDistance) {
  EXPECT_EQ(closest_match("attention_drop", {"attention_dropout_probability"}), "attention_dropout_probability");
  EXPECT_EQ(closest_match("seq_le", {"seq_len_q", "seq_len"}), "seq_len");
  // Ties go to the candidate of the same length (a transposition), then to the earlier one.
  EXPECT_EQ(closest_match("cdua", {"cpu", "cuda"}), "cuda");
  EXPECT_EQ(closest_match("abcx", {"abcy", "abcz"}), "abcy");
}

TEST(Strings, DidYouMeanFormat) {
  EXPECT_EQ(did_you_mean("n_hash", {"n_hashes", "method"}), " (did you mean 'n_hashes'?)");
  EXPECT_EQ(did_you_mean("zzzzzz", {"n_hashes", "method"}), "");
}

TEST(Strings, Join) {
  EXPECT_EQ(join({}, ", "), "");
  EXPECT_EQ(join({"a"}, ", "), "a");
  EXPECT_EQ(join({"a", "b", "c"}, ", "), "a, b, c");
  EXPECT_EQ(join({"a", "", "c"}, "->"), "a->->c");
}

// ---------------------------------------------------------------------------------------------
// JsonReader: reading values

struct Options {
  bool causal = false;
  int n_hashes = 1;
  std::int64_t n_queries = 1024;
  float eps = 1e-6f;
  double dropout = 0.0;
  std::string method = "dense";
  std::vector<int> sizes = {1};
  std::vector<std::int64_t> lengths = {};
  std::vector<double> scales = {1.0};
  std::vector<std::string> names = {};
  std::optional<int> limit;
};

TEST(JsonReader, AbsentAndNullKeepDefaults) {
  Options o;
  const json j = {{"n_hashes", nullptr}};
  JsonReader r(j, "attention", "x.json");
  r.get("causal", o.causal).get("n_hashes", o.n_hashes).get("n_queries", o.n_queries).get("eps", o.eps);
  r.get("dropout", o.dropout).get("method", o.method).get("sizes", o.sizes).get("limit", o.limit);
  r.finish();
  const Options d;
  EXPECT_EQ(o.causal, d.causal);
  EXPECT_EQ(o.n_hashes, d.n_hashes);
  EXPECT_EQ(o.n_queries, d.n_queries);
  EXPECT_EQ(o.eps, d.eps);
  EXPECT_EQ(o.method, d.method);
  EXPECT_EQ(o.sizes, d.sizes);
  EXPECT_FALSE(o.limit.has_value());
}

TEST(JsonReader, ReadsEverySupportedType) {
  const json j = json::parse(R"({
    "causal": true, "n_hashes": 4, "n_queries": 8589934592, "eps": 0.5, "dropout": 0.1,
    "method": "smyrf", "sizes": [1, 2, 3], "lengths": [97, 1013, 4294967296], "scales": [0.5, 2],
    "names": ["a", "b"], "limit": 7})");
  Options o;
  JsonReader r(j, "attention", "x.json");
  r.get("causal", o.causal).get("n_hashes", o.n_hashes).get("n_queries", o.n_queries).get("eps", o.eps);
  r.get("dropout", o.dropout).get("method", o.method).get("sizes", o.sizes).get("lengths", o.lengths);
  r.get("scales", o.scales).get("names", o.names).get("limit", o.limit);
  r.finish();
  EXPECT_TRUE(o.causal);
  EXPECT_EQ(o.n_hashes, 4);
  EXPECT_EQ(o.n_queries, 8589934592LL);
  EXPECT_FLOAT_EQ(o.eps, 0.5f);
  EXPECT_DOUBLE_EQ(o.dropout, 0.1);
  EXPECT_EQ(o.method, "smyrf");
  EXPECT_EQ(o.sizes, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(o.lengths, (std::vector<std::int64_t>{97, 1013, 4294967296LL}));
  EXPECT_EQ(o.scales, (std::vector<double>{0.5, 2.0}));
  EXPECT_EQ(o.names, (std::vector<std::string>{"a", "b"}));
  ASSERT_TRUE(o.limit.has_value());
  EXPECT_EQ(*o.limit, 7);
}

TEST(JsonReader, IntegersMayBeWrittenAsWholeFloats) {
  const json j = json::parse(R"({"a": 2.0, "b": -3.0, "c": 1e3})");
  int a = 0;
  std::int64_t b = 0;
  int c = 0;
  JsonReader(j, "train", "").get("a", a).get("b", b).get("c", c);
  EXPECT_EQ(a, 2);
  EXPECT_EQ(b, -3);
  EXPECT_EQ(c, 1000);
}

TEST(JsonReader, WrongTypeMessageNamesFilePathExpectedTypeAndValue) {
  const json j = json::parse(R"({"n_hashes": "two"})");
  int n = 1;
  const std::string msg = config_error([&] { JsonReader(j, "attention", "configs/x.json").get("n_hashes", n); });
  EXPECT_EQ(msg, R"(config 'configs/x.json': 'attention.n_hashes' must be an integer, got "two")");
  EXPECT_EQ(n, 1);
}

TEST(JsonReader, RejectsFractionalAndOutOfRangeIntegers) {
  int i = 0;
  std::int64_t i64 = 0;
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"k", 2.5}}, "data", "f.json").get("k", i); }),
                       "'data.k' must be an integer, got 2.5"));
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"k", 3000000000LL}}, "data", "f.json").get("k", i); }),
                       "32-bit range"));
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"k", 1e30}}, "data", "f.json").get("k", i64); }),
                       "must be an integer"));
  EXPECT_TRUE(contains(
      config_error([&] { JsonReader(json{{"k", 18446744073709551615ULL}}, "data", "f.json").get("k", i64); }),
      "must be an integer"));
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"k", true}}, "data", "f.json").get("k", i); }),
                       "must be an integer, got true"));
}

TEST(JsonReader, DoublesAcceptIntegersButNotStrings) {
  double d = 0.0;
  JsonReader(json{{"lr", 3}}, "train", "").get("lr", d);
  EXPECT_DOUBLE_EQ(d, 3.0);
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"lr", "1e-3"}}, "train", "t.json").get("lr", d); }),
                       R"('train.lr' must be a number, got "1e-3")"));
}

TEST(JsonReader, OtherTypeMismatches) {
  bool b = false;
  std::string s;
  std::vector<std::int64_t> v;
  std::vector<std::string> names;
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"causal", 1}}, "attention", "a.json").get("causal", b); }),
                       "'attention.causal' must be a boolean"));
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"method", 3}}, "attention", "a.json").get("method", s); }),
                       "'attention.method' must be a string, got 3"));
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"lens", 3}}, "data", "a.json").get("lens", v); }),
                       "'data.lens' must be an array of integers, got 3"));
  // Element errors point at the element.
  EXPECT_TRUE(contains(
      config_error([&] { JsonReader(json::parse(R"({"lens": [1, "x"]})"), "data", "a.json").get("lens", v); }),
      R"('data.lens[1]' must be an integer, got "x")"));
  EXPECT_TRUE(contains(
      config_error([&] { JsonReader(json::parse(R"({"n": ["a", 1]})"), "data", "a.json").get("n", names); }),
      "'data.n[1]' must be a string, got 1"));
}

TEST(JsonReader, FailedReadLeavesOutputUntouched) {
  std::vector<std::int64_t> v = {5};
  config_error([&] { JsonReader(json::parse(R"({"lens": [1, "x"]})"), "data", "").get("lens", v); });
  EXPECT_EQ(v, (std::vector<std::int64_t>{5}));
}

TEST(JsonReader, MessagesWithoutSourceOmitTheFile) {
  int n = 0;
  const std::string msg = config_error([&] { JsonReader(json{{"n", "x"}}, "", "").get("n", n); });
  EXPECT_EQ(msg, R"('n' must be an integer, got "x")");
}

TEST(JsonReader, LongValuesAreShortenedInMessages) {
  int n = 0;
  const json j = {{"n", std::string(500, 'a')}};
  const std::string msg = config_error([&] { JsonReader(j, "d", "").get("n", n); });
  EXPECT_LT(msg.size(), 150u);
  EXPECT_TRUE(contains(msg, "..."));
}

// ---------------------------------------------------------------------------------------------
// JsonReader: required, choices, nesting, unknown keys

TEST(JsonReader, RequireMissingKeyNamesPathAndFile) {
  std::int64_t n = 0;
  const std::string msg =
      config_error([&] { JsonReader(json::object(), "data", "configs/x.json").require("n_queries", n); });
  EXPECT_TRUE(contains(msg, "missing required key 'data.n_queries' in 'configs/x.json'"));
  EXPECT_TRUE(contains(msg, "'data' object"));
  // null counts as missing for a required key.
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json{{"n_queries", nullptr}}, "data", "").require("n_queries", n); }),
                       "missing required key 'data.n_queries'"));
  JsonReader(json{{"n_queries", 9}}, "data", "").require("n_queries", n);
  EXPECT_EQ(n, 9);
}

TEST(JsonReader, ChoiceAcceptsAllowedValues) {
  std::string method = "dense";
  JsonReader r(json{{"method", "smyrf"}}, "attention", "");
  r.get_choice("method", method, {"dense", "smyrf", "reformer"});
  r.finish();
  EXPECT_EQ(method, "smyrf");
  std::string kept = "dense";
  JsonReader(json::object(), "attention", "").get_choice("method", kept, {"dense", "smyrf"});
  EXPECT_EQ(kept, "dense");
}

enum class Shade { kLight, kDark };
const EnumNames<Shade> kShadeNames = {{"light", Shade::kLight}, {"dark", Shade::kDark}};

TEST(JsonReader, EnumsAreReadByTheirSpellingAndNamedBack) {
  Shade shade = Shade::kLight;
  JsonReader(json{{"shade", "dark"}}, "theme", "").get_enum("shade", shade, kShadeNames).finish();
  EXPECT_EQ(shade, Shade::kDark);
  JsonReader(json{{"shade", nullptr}}, "theme", "").get_enum("shade", shade, kShadeNames);
  EXPECT_EQ(shade, Shade::kDark);  // null keeps the value
  EXPECT_EQ(enum_name(Shade::kLight, kShadeNames), "light");
  const std::string msg = config_error([&] {
    JsonReader(json{{"shade", "darc"}}, "theme", "t.json").get_enum("shade", shade, kShadeNames);
  });
  EXPECT_TRUE(contains(msg, "'theme.shade' is \"darc\", which is not a valid choice")) << msg;
  EXPECT_TRUE(contains(msg, "(did you mean 'dark'?)")) << msg;
  EXPECT_EQ(shade, Shade::kDark);
}

TEST(JsonReader, ChoiceRejectsOtherValuesWithSuggestion) {
  std::string method = "dense";
  const std::string msg = config_error([&] {
    JsonReader(json{{"method", "smyrff"}}, "attention", "x.json").get_choice("method", method, {"dense", "smyrf"});
  });
  EXPECT_TRUE(contains(msg, "config 'x.json': 'attention.method' is \"smyrff\""));
  EXPECT_TRUE(contains(msg, "(did you mean 'smyrf'?)"));
  EXPECT_TRUE(contains(msg, "valid values: dense, smyrf"));
  EXPECT_EQ(method, "dense");
  EXPECT_TRUE(contains(config_error([&] {
                         JsonReader(json{{"method", 1}}, "attention", "").get_choice("method", method, {"dense"});
                       }),
                       "must be a string, one of: dense"));
}

TEST(JsonReader, FinishRejectsUnknownKeyWithSuggestionAndValidKeys) {
  const json j = json::parse(R"({"n_hash": 2, "q_cluster_size": 32})");
  int n_hashes = 1, q = 0, k = 0;
  JsonReader r(j, "attention", "configs/x.json");
  r.get("n_hashes", n_hashes).get("q_cluster_size", q).get("k_cluster_size", k);
  const std::string msg = config_error([&] { r.finish(); });
  EXPECT_EQ(msg,
            "unknown key 'attention.n_hash' in 'configs/x.json' (did you mean 'n_hashes'?); "
            "valid keys: n_hashes, q_cluster_size, k_cluster_size");
  EXPECT_EQ(q, 32);
}

TEST(JsonReader, FinishListsEveryUnknownKey) {
  const json j = json::parse(R"({"aaa": 1, "zzzzzzzz": 2, "method": "x"})");
  std::string method;
  JsonReader r(j, "model", "m.json");
  r.get("method", method);
  const std::string msg = config_error([&] { r.finish(); });
  EXPECT_TRUE(contains(msg, "unknown key 'model.aaa'"));
  EXPECT_TRUE(contains(msg, "unknown key 'model.zzzzzzzz'"));
  EXPECT_TRUE(contains(msg, "valid keys: method"));
  EXPECT_FALSE(contains(msg, "did you mean"));
}

TEST(JsonReader, FinishPassesWhenEveryKeyWasAskedAbout) {
  const json j = json::parse(R"({"a": 1, "b": {"c": 2}, "free": [1, {"x": 2}], "flag": null})");
  JsonReader r(j, "", "");
  int a = 0;
  r.get("a", a);
  EXPECT_TRUE(r.has("a"));
  EXPECT_FALSE(r.has("flag"));     // null counts as not set
  EXPECT_FALSE(r.has("missing"));  // still becomes a valid key name
  JsonReader b = r.child("b");
  EXPECT_EQ(r.raw("free"), json::parse(R"([1, {"x": 2}])"));
  EXPECT_TRUE(r.raw("absent").is_null());
  EXPECT_NO_THROW(r.finish());
  EXPECT_EQ(r.known_keys(), (std::vector<std::string>{"a", "flag", "missing", "b", "free", "absent"}));
  // The child has its own set of keys.
  EXPECT_THROW(b.finish(), ConfigError);
  int c = 0;
  b.get("c", c);
  EXPECT_NO_THROW(b.finish());
  EXPECT_EQ(c, 2);
}

TEST(JsonReader, ChildPathsNestInMessages) {
  const json j = json::parse(R"({"lsh": {"n_hashes": "x", "typo": 1}})");
  JsonReader r(j, "attention", "a.json");
  JsonReader lsh = r.child("lsh");
  EXPECT_EQ(lsh.path(), "attention.lsh");
  EXPECT_EQ(lsh.source(), "a.json");
  int n = 0;
  EXPECT_TRUE(contains(config_error([&] { lsh.get("n_hashes", n); }), "'attention.lsh.n_hashes' must be an integer"));
  EXPECT_TRUE(contains(config_error([&] { lsh.finish(); }), "unknown key 'attention.lsh.typo'"));
}

TEST(JsonReader, AbsentChildReadsAsEmptyObject) {
  JsonReader r(json::object(), "model", "");
  JsonReader missing = r.child("encoder");
  int layers = 12;
  missing.get("layers", layers);
  EXPECT_EQ(layers, 12);
  EXPECT_NO_THROW(missing.finish());
  EXPECT_EQ(missing.path(), "model.encoder");
}

TEST(JsonReader, ChildThatIsNotAnObjectIsAnError) {
  JsonReader r(json{{"lsh", 3}}, "attention", "a.json");
  EXPECT_TRUE(contains(config_error([&] { r.child("lsh"); }), "'attention.lsh' must be an object, got 3"));
}

TEST(JsonReader, ConstructorRequiresObjectOrNull) {
  EXPECT_TRUE(contains(config_error([&] { JsonReader(json::array({1}), "attention", "a.json"); }),
                       "config 'a.json': 'attention' must be a JSON object, got an array: [1]"));
  EXPECT_NO_THROW(JsonReader(json(nullptr), "attention", "a.json").finish());
}

}  // namespace
}  // namespace smyrf

namespace smyrf {
namespace {

TEST(Strings, ParseByteSize) {
  EXPECT_EQ(parse_byte_size("4096", "--x"), 4096);
  EXPECT_EQ(parse_byte_size("512M", "--x"), int64_t{512} << 20);
  EXPECT_EQ(parse_byte_size("512MiB", "--x"), int64_t{512} << 20);
  EXPECT_EQ(parse_byte_size("4g", "--x"), int64_t{4} << 30);
  EXPECT_EQ(parse_byte_size("2GB", "--x"), int64_t{2} << 30);
  for (const char* bad : {"", "M", "0", "-1", "1.5G", "12X", "4 G", "99999999999999999T"})
    EXPECT_THROW(parse_byte_size(bad, "--x"), ConfigError) << bad;
}

}  // namespace
}  // namespace smyrf
