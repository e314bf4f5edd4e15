// Tests for experiments/runner/config.h: JSON parsing errors (line/column, duplicates, missing files),
// top-level validation, `extends` (relative paths, recursive merge, cycles), sweep expansion
// (cartesian order, union, zip) and run ids. Each test writes its configs into a fresh
// temporary directory. Run: smyrf_tests_light --gtest_filter='Config*:RunId*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "experiments/runner/config.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

using test::contains;
using test::error_of;

// A minimal valid config body; tests add or override keys.
constexpr const char* kMinimal = R"({
  "version": 1, "name": "t", "pipeline": "attention_approx",
  "attention": {"method": "dense"},
  "output": {"path": "results/t.h5"}
})";

class ConfigTest : public test::TempDirTest {
 protected:
  // Writes `text` to dir_/relative and returns the full path.
  std::string write(const std::string& relative, const std::string& text) {
    const fs::path p = dir_ / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  // Writes kMinimal with `extra` merged over it at the top level.
  std::string write_config(const std::string& relative, const json& extra) {
    json j = json::parse(kMinimal);
    j.merge_patch(extra);
    return write(relative, j.dump(2));
  }
  // kMinimal plus `"sweep": sweep_text`, written as text: nlohmann::json would sort the sweep keys,
  // and their written order is what decides the expansion order.
  std::string write_sweep(const std::string& relative, const std::string& sweep_text) {
    std::string text = kMinimal;
    text.insert(text.rfind('}'), ", \"sweep\": " + sweep_text + "\n");
    return write(relative, text);
  }
  std::vector<std::string> run_ids(const ExperimentConfig& c) {
    std::vector<std::string> ids;
    for (const RunSpec& r : c.runs) ids.push_back(r.run_id);
    return ids;
  }
};

// ---------------------------------------------------------------------------------------------
// parsing

TEST_F(ConfigTest, MissingFileIsIoErrorNamingThePath) {
  const std::string path = (dir_ / "nope.json").string();
  const std::string msg = error_of<IoError>([&] { parse_json_file(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "check the path"));
  EXPECT_THROW(load_experiment_config(path), IoError);
  EXPECT_THROW(parse_json_file(dir_.string()), IoError);  // a directory
}

TEST_F(ConfigTest, MalformedJsonGivesLineColumnAndReason) {
  const std::string path = write("bad.json", "{\n  \"a\": 1,\n  \"b\": }\n");
  const std::string msg = error_of<ConfigError>([&] { parse_json_file(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "line 3, column 8"));
  EXPECT_TRUE(contains(msg, "unexpected '}'"));
  EXPECT_FALSE(contains(msg, "[json.exception"));
}

TEST_F(ConfigTest, TrailingCommaAndEmptyFileAreSyntaxErrors) {
  const std::string comma = write("comma.json", "{\"a\": [1, 2,],\n}");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { parse_json_file(comma); }), "line 1, column 13"));
  const std::string empty = write("empty.json", "");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { parse_json_file(empty); }), "line 1, column 1"));
}

TEST_F(ConfigTest, DuplicateKeyIsAnError) {
  const std::string path = write("dup.json", R"({"attention": {"n_hashes": 1, "n_hashes": 2}})");
  const std::string msg = error_of<ConfigError>([&] { parse_json_file(path); });
  EXPECT_TRUE(contains(msg, "'attention.n_hashes' appears twice"));
  // The same key in sibling objects is fine.
  const std::string ok = write("ok.json", R"({"a": {"x": 1}, "b": {"x": 2}, "c": [{"x": 1}, {"x": 2}]})");
  EXPECT_EQ(parse_json_file(ok)["b"]["x"], 2);
}

// ---------------------------------------------------------------------------------------------
// top level

TEST_F(ConfigTest, MinimalConfigGivesOneRunWithDefaults) {
  const std::string path = write("min.json", kMinimal);
  const ExperimentConfig c = load_experiment_config(path);
  EXPECT_EQ(c.source_path, path);
  EXPECT_EQ(c.as_given, json::parse(kMinimal));
  EXPECT_EQ(c.resolved_base, json::parse(kMinimal));
  EXPECT_EQ(c.extends_chain, std::vector<std::string>{path});
  ASSERT_EQ(c.runs.size(), 1u);
  const RunSpec& run = c.runs[0];
  EXPECT_EQ(run.run_id, "run");
  EXPECT_EQ(run.sweep_point, json::object());
  EXPECT_EQ(run.config["seed"], 0);
  EXPECT_EQ(run.config["device"], "cpu");
  EXPECT_EQ(run.config["threads"], 0);
  EXPECT_EQ(run.config["attention"]["method"], "dense");
  EXPECT_FALSE(run.config.contains("sweep"));
}

TEST_F(ConfigTest, UnknownTopLevelKeySuggestsAndListsValidKeys) {
  const std::string path = write_config("typo.json", {{"atention", {{"method", "smyrf"}}}});
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(path); });
  EXPECT_TRUE(contains(msg, "unknown key 'atention' in '" + path + "' (did you mean 'attention'?)"));
  EXPECT_TRUE(contains(msg, "valid keys: version, name, pipeline"));
  EXPECT_TRUE(contains(msg, "sweep, output"));
}

TEST_F(ConfigTest, VersionMismatchSaysWhichVersionIsSupported) {
  const std::string path = write_config("v2.json", {{"version", 2}});
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "'version' is 2"));
  EXPECT_TRUE(contains(msg, "supports config version 1"));
  const std::string text = write_config("vs.json", {{"version", "1"}});
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(text); }),
                       "'version' must be an integer, got \"1\""));
  EXPECT_EQ(kConfigVersion, 1);
}

TEST_F(ConfigTest, RequiredKeysAreChecked) {
  const std::string no_name = write_config("no_name.json", {{"name", nullptr}});
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(no_name); }),
                       "missing required key 'name' in '" + no_name + "'"));
  const std::string no_version = write_config("no_version.json", {{"version", nullptr}});
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(no_version); }),
                       "missing required key 'version'"));
  const std::string no_pipeline = write_config("no_pipeline.json", {{"pipeline", nullptr}});
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(no_pipeline); }),
                       "missing required key 'pipeline'"));
  const std::string no_output = write_config("no_output.json", {{"output", {{"path", nullptr}}}});
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(no_output); }),
                       "missing required key 'output.path'"));
}

TEST_F(ConfigTest, TopLevelTypesAreChecked) {
  struct Case {
    json extra;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {{{"name", 3}}, "'name' must be a string, got 3"},
      {{{"seed", "x"}}, "'seed' must be an integer, got \"x\""},
      {{{"seed", 1.5}}, "'seed' must be an integer, got 1.5"},
      {{{"threads", -1}}, "'threads' must be >= 0"},
      {{{"device", "gpu"}}, "'device' is \"gpu\", which is not a valid choice"},
      {{{"device", "tpu"}}, "valid values: cpu, cuda"},
      {{{"device", "cdua"}}, "(did you mean 'cuda'?)"},
      {{{"output", {{"path", 5}}}}, "'output.path' must be a string, got 5"},
      {{{"attention", 5}}, "'attention' must be an object, got 5"},
      {{{"sweep", 5}}, "'sweep' must be an object"},
      {{{"extends", 5}}, "'extends' must be a string"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string path = write_config("t" + std::to_string(i) + ".json", cases[i].extra);
    const std::string msg = error_of<ConfigError>([&] { load_experiment_config(path); });
    EXPECT_TRUE(contains(msg, cases[i].expected)) << "case " << i;
    EXPECT_TRUE(contains(msg, path)) << "case " << i;
  }
}

TEST_F(ConfigTest, ExplicitTopLevelValuesAreKept) {
  const std::string path = write_config("explicit.json", {{"seed", 7}, {"device", "cuda"}, {"threads", 3},
                                                          {"description", "d"}});
  const RunSpec run = load_experiment_config(path).runs.at(0);
  EXPECT_EQ(run.config["seed"], 7);
  EXPECT_EQ(run.config["device"], "cuda");
  EXPECT_EQ(run.config["threads"], 3);
}

// ---------------------------------------------------------------------------------------------
// extends

TEST_F(ConfigTest, ExtendsIsRelativeToTheFileAndMergesObjectsRecursively) {
  write("base/base.json", R"({
    "version": 1, "name": "base", "pipeline": "attention_approx", "seed": 3,
    "attention": {"method": "dense", "n_hashes": 1, "lsh": {"a": 1, "b": 2}},
    "data": {"lengths": [1, 2, 3], "kind": "synthetic"},
    "output": {"path": "results/base.h5"}
  })");
  const std::string child = write("exp/child.json", R"({
    "extends": "../base/base.json", "name": "child",
    "attention": {"n_hashes": 4, "lsh": {"b": 20, "c": 30}},
    "data": {"lengths": [7], "kind": null},
    "train": {"steps": 5}
  })");
  // Loading must not depend on the working directory.
  const fs::path old_cwd = fs::current_path();
  fs::current_path(fs::temp_directory_path());
  const ExperimentConfig c = load_experiment_config(child);
  fs::current_path(old_cwd);

  const json& r = c.resolved_base;
  EXPECT_FALSE(r.contains("extends"));
  EXPECT_EQ(r["name"], "child");                 // scalar replaced
  EXPECT_EQ(r["seed"], 3);                       // inherited
  EXPECT_EQ(r["attention"]["method"], "dense");  // object merge keeps base keys
  EXPECT_EQ(r["attention"]["n_hashes"], 4);
  EXPECT_EQ(r["attention"]["lsh"], json::parse(R"({"a": 1, "b": 20, "c": 30})"));  // recursively
  EXPECT_EQ(r["data"]["lengths"], json::array({7}));                                // arrays replace
  EXPECT_TRUE(r["data"]["kind"].is_null());                                         // null replaces too
  EXPECT_EQ(r["train"]["steps"], 5);
  EXPECT_EQ(c.as_given["extends"], "../base/base.json");
  EXPECT_FALSE(c.as_given.contains("version"));
  ASSERT_EQ(c.extends_chain.size(), 2u);
  EXPECT_TRUE(fs::equivalent(c.extends_chain[1], dir_ / "base/base.json"));
  EXPECT_EQ(c.runs.at(0).config["attention"]["n_hashes"], 4);
}

TEST_F(ConfigTest, ExtendsAppliesRecursively) {
  write("a/root.json", kMinimal);
  write("a/b/mid.json", R"({"extends": "../root.json", "attention": {"n_hashes": 2}, "seed": 1})");
  const std::string leaf = write("leaf.json", R"({"extends": "a/b/mid.json", "seed": 2})");
  const ExperimentConfig c = load_experiment_config(leaf);
  EXPECT_EQ(c.extends_chain.size(), 3u);
  const json& cfg = c.runs.at(0).config;
  EXPECT_EQ(cfg["name"], "t");
  EXPECT_EQ(cfg["attention"]["method"], "dense");
  EXPECT_EQ(cfg["attention"]["n_hashes"], 2);
  EXPECT_EQ(cfg["seed"], 2);
}

TEST_F(ConfigTest, ExtendsCycleListsTheChain) {
  write("a.json", R"({"extends": "b.json"})");
  write("b.json", R"({"extends": "./a.json"})");
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config((dir_ / "a.json").string()); });
  EXPECT_TRUE(contains(msg, "cycle"));
  EXPECT_TRUE(contains(msg, "a.json -> "));
  EXPECT_TRUE(contains(msg, "b.json -> "));
  const std::string self = write("self.json", R"({"extends": "self.json"})");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(self); }), "cycle"));
}

TEST_F(ConfigTest, ExtendsMissingBaseIsIoErrorNamingBoth) {
  const std::string child = write("child.json", R"({"extends": "missing/base.json"})");
  const std::string msg = error_of<IoError>([&] { load_experiment_config(child); });
  EXPECT_TRUE(contains(msg, "missing/base.json"));
  EXPECT_TRUE(contains(msg, child));
  EXPECT_TRUE(contains(msg, "relative to that file's directory"));
}

TEST_F(ConfigTest, ErrorsInABaseNameTheBaseFile) {
  const std::string base = write("base.json", R"({"version": 1, "atention": {}})");
  const std::string child = write("child.json", R"({"extends": "base.json"})");
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(child); });
  EXPECT_TRUE(contains(msg, "unknown key 'atention'"));
  EXPECT_TRUE(contains(msg, "base.json"));
  write("broken.json", "{\"version\": 1,,}");
  const std::string child2 = write("child2.json", R"({"extends": "broken.json"})");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(child2); }), "broken.json' is not valid JSON"));
}

// ---------------------------------------------------------------------------------------------
// sweep

TEST_F(ConfigTest, SweepIsCartesianInWrittenKeyOrder) {
  // n_hashes is written first, so it varies slowest even though "method" sorts first.
  const std::string path = write("s.json", R"({
    "version": 1, "name": "s", "pipeline": "p", "output": {"path": "o.h5"},
    "sweep": {"attention.n_hashes": [1, 2], "attention.method": ["smyrf", "reformer", "dense"]}
  })");
  const ExperimentConfig c = load_experiment_config(path);
  ASSERT_EQ(c.runs.size(), 6u);
  const std::vector<std::pair<int, std::string>> expected = {{1, "smyrf"}, {1, "reformer"}, {1, "dense"},
                                                             {2, "smyrf"}, {2, "reformer"}, {2, "dense"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const json& cfg = c.runs[i].config;
    EXPECT_EQ(cfg["attention"]["n_hashes"], expected[i].first) << i;
    EXPECT_EQ(cfg["attention"]["method"], expected[i].second) << i;
    EXPECT_FALSE(cfg.contains("sweep"));
    EXPECT_EQ(c.runs[i].sweep_point,
              (json{{"attention.n_hashes", expected[i].first}, {"attention.method", expected[i].second}}));
  }
  EXPECT_EQ(c.runs[0].run_id, "method=smyrf,n_hashes=1");
  EXPECT_EQ(c.runs[5].run_id, "method=dense,n_hashes=2");
  EXPECT_TRUE(c.resolved_base.contains("sweep"));  // kept before expansion
}

TEST_F(ConfigTest, SweepUnionConcatenatesAndDropsDuplicates) {
  const std::string path = write_sweep("u.json", R"([
    {"attention.method": ["dense"]},
    {"attention.method": ["smyrf"], "attention.n_hashes": [1, 2]},
    {"attention.n_hashes": [2, 1], "attention.method": ["smyrf", "reformer"]},
    {}
  ])");
  const ExperimentConfig c = load_experiment_config(path);
  EXPECT_EQ(run_ids(c), (std::vector<std::string>{"method=dense", "method=smyrf,n_hashes=1",
                                                   "method=smyrf,n_hashes=2", "method=reformer,n_hashes=2",
                                                   "method=reformer,n_hashes=1", "run"}));
  EXPECT_EQ(c.runs[5].config["attention"]["method"], "dense");  // {} is the base config itself
}

TEST_F(ConfigTest, ZipAdvancesTogetherAsOneFactor) {
  const std::string path = write_sweep("z.json", R"({
    "zip": [{"data.seq_len": [1024, 2048, 4096], "data.batch": [8, 4, 2]}],
    "attention.method": ["dense", "smyrf"]
  })");
  const ExperimentConfig c = load_experiment_config(path);
  ASSERT_EQ(c.runs.size(), 6u);
  const std::vector<std::vector<json>> expected = {{1024, 8, "dense"}, {1024, 8, "smyrf"}, {2048, 4, "dense"},
                                                   {2048, 4, "smyrf"}, {4096, 2, "dense"}, {4096, 2, "smyrf"}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    const json& cfg = c.runs[i].config;
    EXPECT_EQ(cfg["data"]["seq_len"], expected[i][0]) << i;
    EXPECT_EQ(cfg["data"]["batch"], expected[i][1]) << i;
    EXPECT_EQ(cfg["attention"]["method"], expected[i][2]) << i;
  }
  EXPECT_EQ(c.runs[2].run_id, "method=dense,batch=4,seq_len=2048");
}

TEST_F(ConfigTest, TwoZipGroupsMultiply) {
  const std::string path = write_sweep("z2.json", R"({
    "zip": [{"data.a": [1, 2], "data.b": [3, 4]}, {"data.c": [5, 6, 7], "data.d": [8, 9, 10]}]
  })");
  const ExperimentConfig c = load_experiment_config(path);
  ASSERT_EQ(c.runs.size(), 6u);
  EXPECT_EQ(c.runs[0].sweep_point, (json{{"data.a", 1}, {"data.b", 3}, {"data.c", 5}, {"data.d", 8}}));
  EXPECT_EQ(c.runs[5].sweep_point, (json{{"data.a", 2}, {"data.b", 4}, {"data.c", 7}, {"data.d", 10}}));
}

TEST_F(ConfigTest, ZipLengthMismatchIsAnError) {
  const std::string path = write_sweep("zbad.json", R"({
    "zip": [{"data.seq_len": [1024, 2048, 4096], "data.batch": [8, 4]}]
  })");
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(path); });
  EXPECT_TRUE(contains(msg, path));
  EXPECT_TRUE(contains(msg, "sweep.zip[0]"));
  EXPECT_TRUE(contains(msg, "'data.seq_len' has 3 values and 'data.batch' has 2"));
}

TEST_F(ConfigTest, SweepValueErrorsNameTheSweepKey) {
  struct Case {
    std::string sweep;
    std::string expected;
  };
  const std::vector<Case> cases = {
      {R"({"attention.n_hashes": 2})", "'sweep.attention.n_hashes' must be an array of values"},
      {R"({"attention.n_hashes": []})", "'sweep.attention.n_hashes' is an empty array"},
      {R"([{"attention.n_hashes": [1]}, {"data.x": "a"}])", "'sweep[1].data.x' must be an array"},
      {R"([])", "'sweep' is an empty array"},
      {R"([3])", "'sweep[0]' must be an object"},
      {R"({"zip": 3})", "'sweep.zip' must be a non-empty array of objects"},
      {R"({"zip": [{"data.a": [1]}], "data.a": [2]})", "sweeps 'data.a' a second time"},
      {R"({"atention.n_hashes": [1]})", "(did you mean 'attention'?)"},
      {R"({"version": [1]})", "'version' cannot be swept"},
      {R"({"attention..n": [1]})", "not a valid dotted path"},
      {R"({"attention.method.x": [1]})", "'sweep.attention.method.x' sets a key inside 'attention.method'"},
      {R"({"seed": ["x"]})", "in sweep run 'seed=x'"},
  };
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const std::string path = write_sweep("e" + std::to_string(i) + ".json", cases[i].sweep);
    const std::string msg = error_of<ConfigError>([&] { load_experiment_config(path); });
    EXPECT_TRUE(contains(msg, cases[i].expected)) << "case " << i;
    EXPECT_TRUE(contains(msg, path)) << "case " << i;
  }
}

TEST_F(ConfigTest, SweepCreatesMissingKeysAndAcceptsAnyJsonValue) {
  const std::string path = write("c.json", R"({
    "version": 1, "name": "c", "pipeline": "p", "output": {"path": "o.h5"},
    "sweep": {"model.encoder.layers": [2], "seed": [1, 2], "data.mask": [{"causal": true}, null]}
  })");
  const ExperimentConfig c = load_experiment_config(path);
  ASSERT_EQ(c.runs.size(), 4u);
  EXPECT_EQ(c.runs[0].config["model"]["encoder"]["layers"], 2);
  EXPECT_EQ(c.runs[0].config["seed"], 1);
  EXPECT_EQ(c.runs[0].config["data"]["mask"], (json{{"causal", true}}));
  EXPECT_TRUE(c.runs[1].config["data"]["mask"].is_null());
  EXPECT_EQ(c.runs[3].config["seed"], 2);
  // An object is named by its members; null is spelled out.
  EXPECT_EQ(c.runs[0].run_id, "causal=true,layers=2,seed=1");
  EXPECT_TRUE(contains(c.runs[1].run_id, "mask=null"));
}

TEST_F(ConfigTest, ChildSweepMergesIntoBaseSweep) {
  write("base.json", R"({
    "version": 1, "name": "b", "pipeline": "p", "output": {"path": "o.h5"},
    "sweep": {"data.seq_len": [1024, 2048]}
  })");
  const std::string child =
      write("child.json", R"({"extends": "base.json", "sweep": {"attention.n_hashes": [1, 2, 4]}})");
  EXPECT_EQ(load_experiment_config(child).runs.size(), 6u);
  const std::string off = write("off.json", R"({"extends": "base.json", "sweep": null})");
  EXPECT_EQ(run_ids(load_experiment_config(off)), std::vector<std::string>{"run"});
}

// ---------------------------------------------------------------------------------------------
// run ids

TEST_F(ConfigTest, RunIdsAreStableAndUnique) {
  const std::string path = write_sweep("ids.json", R"({
    "attention.method": ["smyrf", "dense"], "attention.q_cluster_size": [32, 64], "train.lr": [0.001, 1e-5],
    "data.name": ["a b/c", "x"]
  })");
  const std::vector<std::string> first = run_ids(load_experiment_config(path));
  const std::vector<std::string> second = run_ids(load_experiment_config(path));
  EXPECT_EQ(first, second);
  ASSERT_EQ(first.size(), 16u);
  EXPECT_EQ(std::set<std::string>(first.begin(), first.end()).size(), 16u);
  EXPECT_EQ(first[0], "method=smyrf,q_cluster_size=32,name=a_b_c,lr=0.001");
  for (const std::string& id : first) {
    for (const char ch : id) {
      EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(ch)) || std::string("_.=,+-").find(ch) != std::string::npos)
          << id;
    }
  }
}

TEST(RunId, SharedLeafNamesUseTheFullPath) {
  const std::vector<json> points = {
      {{"model.dropout", 0.1}, {"attention.dropout", 0.0}, {"attention.n_hashes", 2}},
      {{"model.dropout", 0.2}, {"attention.dropout", 0.0}, {"attention.n_hashes", 2}},
  };
  EXPECT_EQ(make_run_ids(points),
            (std::vector<std::string>{"attention.dropout=0.0,n_hashes=2,model.dropout=0.1",
                                      "attention.dropout=0.0,n_hashes=2,model.dropout=0.2"}));
}

TEST(RunId, CollisionsAfterSanitizingGetDistinctSuffixes) {
  const std::vector<json> points = {{{"data.name", "a b"}}, {{"data.name", "a_b"}}, {{"data.n", 1}},
                                    {{"data.n", "1"}}};
  const std::vector<std::string> ids = make_run_ids(points);
  EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), 4u);
  EXPECT_TRUE(contains(ids[0], "name=a_b-"));
  EXPECT_EQ(ids, make_run_ids(points));
}

TEST(RunId, EmptyPointIsRunAndLongIdsAreCapped) {
  EXPECT_EQ(make_run_ids({json::object()}), std::vector<std::string>{"run"});
  const std::vector<json> points = {{{"data.name", std::string(300, 'x')}}, {{"data.name", std::string(301, 'x')}}};
  const std::vector<std::string> ids = make_run_ids(points);
  EXPECT_LE(ids[0].size(), 120u);
  EXPECT_NE(ids[0], ids[1]);
}

TEST(RunId, WholeObjectsAreNamedByTheirMembers) {
  const std::vector<json> points = {{{"attention", {{"method", "dense"}}}},
                                    {{"attention", {{"method", "smyrf"}, {"n_hashes", 2}, {"lsh", {{"seed", 3}}}}}},
                                    {{"attention", json::object()}}};
  const std::vector<std::string> ids = make_run_ids(points);
  EXPECT_EQ(ids[0], "method=dense");
  EXPECT_EQ(ids[1], "seed=3,method=smyrf,n_hashes=2");  // sorted by path: attention.lsh.seed first
  EXPECT_EQ(ids[2].rfind("attention=h", 0), 0u) << ids[2];
}

TEST(RunId, ArraysOfScalarsAreJoinedAndOthersHashStably) {
  EXPECT_EQ(make_run_ids({{{"model.layers", {0, 5}}}}), std::vector<std::string>{"layers=0+5"});
  const std::vector<json> points = {{{"data.mask", json::array({{{"a", 1}}})}}, {{"data.mask", json::array({{{"a", 2}}})}}};
  const std::vector<std::string> ids = make_run_ids(points);
  ASSERT_EQ(ids[0].size(), std::string("mask=h").size() + 8);
  EXPECT_NE(ids[0], ids[1]);
  EXPECT_EQ(make_run_ids(points), ids);
}

TEST_F(ConfigTest, SweepOverWholeAttentionObjectsIsReadable) {
  const std::string path = write("objects.json", R"({"version": 1, "name": "t", "pipeline": "attention_fidelity",
    "output": {"path": "r.h5"},
    "sweep": {"attention": [{"method": "dense"}, {"method": "smyrf", "n_hashes": 2, "q_cluster_size": 16}]}})");
  const ExperimentConfig c = load_experiment_config(path);
  ASSERT_EQ(c.runs.size(), 2u);
  EXPECT_EQ(c.runs[0].run_id, "method=dense");
  EXPECT_EQ(c.runs[1].run_id, "method=smyrf,n_hashes=2,q_cluster_size=16");
}

}  // namespace
}  // namespace smyrf
