// Hostile input to the torch-free readers: JSON nested deep enough to overflow a recursive reader,
// numbers beyond a double, objects with very many keys, `extends` naming a FIFO, sweeps of very many
// points (refused with their count before expansion; de-duplication that scales). The fuzz targets
// (tests/fuzz) look for more of the same; these pin the classes down.
// Run: smyrf_tests_light --gtest_filter='HostileInput*'
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/text_file.h"
#include "experiments/runner/config.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

using test::contains;
using test::error_of;

constexpr const char* kMinimal = R"("version": 1, "name": "t", "pipeline": "attention_approx",
  "attention": {"method": "dense"}, "output": {"path": "results/t.h5"})";

class HostileInput : public test::TempDirTest {
 protected:
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return file(name);
  }
  // kMinimal with `sweep` (JSON text) as its sweep.
  std::string write_sweep(const std::string& name, const std::string& sweep) {
    return write(name, std::string("{") + kMinimal + ", \"sweep\": " + sweep + "}");
  }
};

std::string int_array(int n) {
  std::string s = "[";
  for (int i = 0; i < n; ++i) s += (i ? "," : "") + std::to_string(i);
  return s + "]";
}

TEST_F(HostileInput, DeepNestingIsRefusedBeforeParsing) {
  const std::string deep = std::string(200000, '[') + std::string(200000, ']');
  EXPECT_TRUE(contains(json_nesting_problem(deep).value_or(""), "more than 100 levels"));
  const std::string msg = error_of<IoError>([&] { parse_json(deep, {"tokenizer file 'x.json'", "re-download it"}); });
  EXPECT_TRUE(contains(msg, "tokenizer file 'x.json'") && contains(msg, "re-download it")) << msg;
  // brackets inside strings do not count, escaped quotes included
  const std::string in_string = "{\"a\": \"\\\"" + std::string(5000, '[') + "\"}";
  EXPECT_FALSE(json_nesting_problem(in_string).has_value());
  EXPECT_EQ(parse_json(in_string, {"s", ""}).at("a").get<std::string>().size(), 5001u);
  const std::string config = write("deep.json", std::string(100000, '{') + "\"a\":" + std::string(100000, '}'));
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(config); }), "more than 100 levels"));
}

TEST_F(HostileInput, NumbersBeyondADoubleNameTheirSource) {
  const std::string digits(400, '9');
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { parse_json("[" + digits + "]", {"--attention", "fix it", true}); }),
                       "--attention"));
  const std::string config = write("big.json", std::string("{") + kMinimal + ", \"seed\": " + digits + "}");
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(config); });
  EXPECT_TRUE(contains(msg, config) && contains(msg, "number overflow")) << msg;
}

TEST_F(HostileInput, ObjectsWithTooManyKeysAreRefused) {
  std::string many = "{";
  for (int i = 0; i < 5000; ++i) many += (i ? ",\"k" : "\"k") + std::to_string(i) + "\": 1";
  const std::string config = write("keys.json", many + "}");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(config); }), "more than 1000 keys"));
}

TEST_F(HostileInput, FifosAndDevicesAreNotRead) {
  ASSERT_EQ(mkfifo(file("fifo.json").c_str(), 0600), 0);
  const std::string child = write("child.json", std::string("{\"extends\": \"fifo.json\", ") + kMinimal + "}");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_experiment_config(child); }), "not a regular file"));
  EXPECT_TRUE(contains(error_of<IoError>([&] { read_text_file("/dev/zero", "config file"); }), "not a regular file"));
}

TEST_F(HostileInput, HugeSweepsAreRefusedWithTheirCountBeforeExpansion) {
  const std::string huge = write_sweep("huge.json", "{\"seed\": " + int_array(100) + ", \"data.batch\": " +
                                                        int_array(3980) + "}");
  const std::string msg = error_of<ConfigError>([&] { load_experiment_config(huge); });
  EXPECT_TRUE(contains(msg, "398000 runs") && contains(msg, "--max-runs") && contains(msg, huge)) << msg;
  const std::string small = write_sweep("small.json", "{\"seed\": " + int_array(30) + "}");
  EXPECT_TRUE(contains(error_of<ConfigError>([&] { load_experiment_config(small, 29); }), "30 runs"));
  EXPECT_EQ(load_experiment_config(small, 30).runs.size(), 30u);
}

TEST_F(HostileInput, LargeSweepsWithDuplicatesExpandOnce) {
  // two identical sweep objects of 100 x 100 points: 20,000 points, 10,000 distinct runs
  const std::string group = "{\"seed\": " + int_array(100) + ", \"data.batch\": " + int_array(100) + "}";
  const std::string config = write_sweep("dup.json", "[" + group + ", " + group + "]");
  const ExperimentConfig c = load_experiment_config(config);
  ASSERT_EQ(c.runs.size(), 10000u);
  EXPECT_EQ(c.runs.front().run_id, "batch=0,seed=0");
  EXPECT_EQ(c.runs.back().run_id, "batch=99,seed=99");
}

}  // namespace
}  // namespace smyrf
