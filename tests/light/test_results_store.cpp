// Tests for the HDF5 results file: H5File (attributes, arrays, tables, errors), provenance,
// ResultsStore (round trip, status lifecycle, /summary, error messages, crash safety including a
// writer killed with SIGKILL mid-sweep) and the report formatter.
// Run: smyrf_tests_light --gtest_filter='H5File*:Provenance*:ResultsStore*:Report*' (or ctest -R the same names).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/provenance.h"
#include "experiments/report/report.h"
#include "experiments/runner/results_store.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// A fresh directory per test, removed afterwards.
class TempDir : public test::TempDirTest {
 protected:
  std::vector<std::string> dir_entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }
};

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

json experiment_config(const std::string& name = "fidelity_small") {
  return {{"version", 1},
          {"name", name},
          {"pipeline", "attention_fidelity"},
          {"sweep", {{"attention.n_hashes", {1, 2}}}},
          {"output", {{"path", "results/x.h5"}}}};
}

Provenance fixed_provenance() {
  Provenance p;
  p.harness_version = "0.1.0";
  p.git_sha = "0123456789abcdef0123456789abcdef01234567";
  p.git_dirty = true;
  p.created_utc = "2026-11-22T12:00:00Z";
  p.host = "node-7";
  p.device = "cpu";
  p.torch_version = "2.5.1";
  return p;
}

RunInfo smyrf_run(const std::string& id, int64_t n_hashes) {
  RunInfo info;
  info.run_id = id;
  info.method = "smyrf";
  info.knobs = {{"n_hashes", n_hashes}, {"q_cluster_size", 32}};
  info.seed = 1234;
  info.sweep_point = {{"attention.n_hashes", n_hashes}};
  info.resolved_config = experiment_config();
  info.resolved_config["attention"] = {{"method", "smyrf"}, {"n_hashes", n_hashes}, {"q_cluster_size", 32}};
  info.resolved_config.erase("sweep");
  return info;
}

RunResult fidelity_result(double error) {
  RunResult r;
  r.metrics["rel_fro_error"] = {error, "1", false};
  r.metrics["memory_fraction"] = {0.5, "fraction", false};
  r.metrics["wall_time_s"] = {0.0123, "s", false};
  r.metrics["peak_rss_bytes"] = {3.0 * 1024 * 1024, "bytes", false};
  r.metrics["mean_row_cosine"] = {0.99987654321, "1", true};
  r.metrics["max_abs_error"] = {error * 3, "1", false};
  return r;
}

std::map<std::string, H5Column> table_by_name(const std::vector<H5Column>& table) {
  std::map<std::string, H5Column> out;
  for (const auto& c : table) out[c.name] = c;
  return out;
}

std::vector<std::string> column_names(const std::vector<H5Column>& table) {
  std::vector<std::string> out;
  for (const auto& c : table) out.push_back(c.name);
  return out;
}

template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// ======================================================================== H5File

using H5FileTest = TempDir;

TEST_F(H5FileTest, AttributesRoundTripEveryType) {
  const std::string path = file("a.h5");
  {
    H5File f = H5File::create(path);
    f.create_groups("/g/h");
    f.set_attr("g/h", "text", std::string("héllo wörld"));
    f.set_attr("g/h", "literal", "from a char pointer");
    f.set_attr("g/h", "count", int64_t{-9007199254740993});
    f.set_attr("g/h", "small", 7);
    f.set_attr("g/h", "ratio", 0.1);
    f.set_attr("g/h", "yes", true);
    f.set_attr("g/h", "no", false);
    f.set_attr("/", "root_note", std::string("root"));
    f.set_attr("g/h", "ratio", 0.25);  // replaces
    f.close();
  }
  H5File f = H5File::open(path, /*writable=*/false);
  EXPECT_EQ(f.attr_string("g/h", "text"), "héllo wörld");
  EXPECT_EQ(f.attr_string("/g/h", "literal"), "from a char pointer");
  EXPECT_EQ(f.attr_int("g/h", "count"), int64_t{-9007199254740993});
  EXPECT_EQ(f.attr_int("g/h", "small"), 7);
  EXPECT_EQ(f.attr_double("g/h", "ratio"), 0.25);
  EXPECT_EQ(f.attr_double("g/h", "small"), 7.0);  // integers widen to double
  EXPECT_EQ(f.attr_bool("g/h", "yes"), true);
  EXPECT_EQ(f.attr_bool("g/h", "no"), false);
  EXPECT_EQ(f.attr_int("g/h", "yes"), 1);     // flags written from Python as bools
  EXPECT_EQ(f.attr_bool("g/h", "small"), true);
  EXPECT_EQ(f.attr_string("/", "root_note"), "root");
  EXPECT_EQ(f.attr_string("g/h", "absent"), std::nullopt);
  EXPECT_EQ(f.attr_double("no/such/object", "x"), std::nullopt);
  EXPECT_TRUE(f.has_attr("g/h", "yes"));
  EXPECT_EQ(f.attr_names("g/h"),
            (std::vector<std::string>{"count", "literal", "no", "ratio", "small", "text", "yes"}));
  const auto all = f.read_attrs("g/h");
  ASSERT_EQ(all.size(), 7u);
  EXPECT_EQ(std::get<std::string>(all.at("text")), "héllo wörld");
  EXPECT_EQ(std::get<int64_t>(all.at("count")), int64_t{-9007199254740993});
  EXPECT_EQ(std::get<double>(all.at("ratio")), 0.25);
  EXPECT_EQ(std::get<bool>(all.at("yes")), true);
  EXPECT_THROW(f.read_attrs("no/such/object"), Error);
  EXPECT_THROW(f.attr_double("g/h", "text"), Error);
  EXPECT_THROW(f.attr_string("g/h", "count"), Error);
  EXPECT_THROW(f.attr_int("g/h", "ratio"), Error);  // 0.25 is not an integer
  EXPECT_THROW(f.set_attr("g/h", "x", 1.0), Error);  // opened read-only
}

TEST_F(H5FileTest, GroupsChildrenRemove) {
  H5File f = H5File::create(file("g.h5"));
  f.create_groups("runs/b");
  f.create_groups("runs/a/metrics");
  f.create_groups("runs/a/metrics");  // idempotent
  f.write_scalar("runs/c/metrics/x", 1.5);  // parents created on demand
  EXPECT_EQ(f.children("runs"), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE(f.exists("runs/a/metrics"));
  EXPECT_TRUE(f.is_group("runs/a"));
  EXPECT_TRUE(f.is_dataset("runs/c/metrics/x"));
  EXPECT_FALSE(f.exists("runs/zz/deeper"));
  EXPECT_FALSE(f.exists("runs/c/metrics/x/below_a_dataset"));
  EXPECT_THROW(f.create_groups("runs/c/metrics/x/sub"), Error);
  f.remove("runs/a");
  f.remove("runs/never/was");  // no-op
  EXPECT_EQ(f.children("runs"), (std::vector<std::string>{"b", "c"}));
  EXPECT_THROW(f.children("runs/nothing"), Error);
}

TEST_F(H5FileTest, ArraysKeepValuesShapesAndPrecision) {
  const std::string path = file("arr.h5");
  const std::vector<double> values = {1.0 / 3.0, -2.5e-300, 7.0, 1e300, 0.0, -0.0};
  const std::vector<float> floats = {1.5f, -2.25f, 3.0f};
  {
    H5File f = H5File::create(path);
    f.write_array("t/a", values, {2, 3});
    f.write_array("t/b", floats);
    f.write_array("t/empty", std::vector<double>{}, {0, 4});
    f.write_scalar("t/s", -0.125);
    EXPECT_THROW(f.write_array("t/bad", values, {4, 2}), Error);
    EXPECT_THROW(f.write_array("t/neg", values, {-6}), Error);
    f.close();
  }
  H5File f = H5File::open(path, false);
  const auto a = f.read_array_f64("t/a");
  EXPECT_EQ(a.dims, (std::vector<int64_t>{2, 3}));
  ASSERT_EQ(a.data.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(a.data[i], values[i]) << i;
  EXPECT_TRUE(std::signbit(a.data[5]));
  EXPECT_EQ(f.stored_element_bits("t/a"), 64);
  const auto b = f.read_array_f32("t/b");
  EXPECT_EQ(b.dims, (std::vector<int64_t>{3}));
  EXPECT_EQ(b.data, floats);
  EXPECT_EQ(f.stored_element_bits("t/b"), 32);
  EXPECT_EQ(f.read_array_f64("t/b").data, (std::vector<double>{1.5, -2.25, 3.0}));
  EXPECT_EQ(f.read_array_f64("t/empty").dims, (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(f.read_scalar("t/s"), -0.125);
  EXPECT_THROW(f.read_scalar("t/a"), Error);  // 6 values
  EXPECT_THROW(f.read_array_f64("t/missing"), Error);
}

TEST_F(H5FileTest, CompoundTableRoundTrip) {
  H5File f = H5File::create(file("t.h5"));
  H5Column id{"run_id", true, {}, {"a", "bé", ""}};
  H5Column x{"x", false, {1.0, kNaN, -3.5}, {}};
  f.write_table("summary", {id, x});
  const auto table = f.read_table("summary");
  ASSERT_EQ(column_names(table), (std::vector<std::string>{"run_id", "x"}));
  EXPECT_EQ(table[0].strings, id.strings);
  EXPECT_EQ(table[1].numbers[0], 1.0);
  EXPECT_TRUE(std::isnan(table[1].numbers[1]));
  EXPECT_EQ(table[1].numbers[2], -3.5);
  f.write_table("empty", {H5Column{"run_id", true, {}, {}}});
  EXPECT_EQ(f.read_table("empty").at(0).size(), 0u);
  EXPECT_THROW(f.write_table("bad", {id, H5Column{"x", false, {1.0}, {}}}), Error);  // ragged
  EXPECT_THROW(f.write_table("dup", {id, id}), Error);
}

TEST_F(H5FileTest, OpenErrorsNameTheFileAndTheFix) {
  const std::string garbage = file("garbage.h5");
  std::ofstream(garbage) << "this is not an HDF5 file, just text\n";
  const std::string msg = error_of([&] { H5File::open(garbage, false); });
  EXPECT_NE(msg.find("'" + garbage + "' is not a readable HDF5 file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("delete it or choose another output path"), std::string::npos) << msg;
  EXPECT_THROW(H5File::open(garbage, false), IoError);
  const std::string missing = file("missing.h5");
  EXPECT_NE(error_of([&] { H5File::open(missing, false); }).find(missing), std::string::npos);
  EXPECT_THROW(H5File::create(file("no_such_dir/x.h5")), IoError);
}

TEST_F(H5FileTest, RepackDropsDeletedSpaceAndKeepsEverything) {
  const std::string path = file("grow.h5");
  {
    H5File f = H5File::create(path);
    f.set_attr("/", "config_json", std::string(5000, 'c'));
    f.set_attr("/", "dirty", true);
    f.write_array("keep/a", std::vector<double>{1, 2, 3});
    f.set_attr("keep/a", "unit", std::string("s"));
    f.close();
  }
  for (int i = 0; i < 20; ++i) {
    H5File f = H5File::open(path, true);
    // Replaced each session by a larger one with another object after it, so that freed blocks
    // cannot simply be truncated away; some of that space stays unused in the file.
    f.write_array("scratch", std::vector<double>(20000 + 1000 * i, i));
    f.write_scalar("tail", i);
    f.close();
  }
  const auto grown = fs::file_size(path);
  const std::string packed = file("packed.h5");
  H5File::repack(path, packed);
  EXPECT_LT(fs::file_size(packed), grown);
  EXPECT_LT(fs::file_size(packed), 39000u * sizeof(double) + 64 * 1024);  // live data plus metadata
  H5File f = H5File::open(packed, false);
  EXPECT_EQ(f.attr_string("/", "config_json"), std::string(5000, 'c'));
  EXPECT_EQ(f.attr_bool("/", "dirty"), true);
  EXPECT_EQ(f.read_array_f64("keep/a").data, (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(f.attr_string("keep/a", "unit"), "s");
  EXPECT_EQ(f.read_array_f64("scratch").data.size(), 39000u);
  EXPECT_EQ(f.read_scalar("tail"), 19.0);
}

// ======================================================================== provenance

TEST(Provenance, FieldsAreFilled) {
  const Provenance p = collect_provenance("cuda:0", "2.5.1");
  EXPECT_EQ(p.harness_version, SMYRF_VERSION);
  EXPECT_EQ(p.device, "cuda:0");
  EXPECT_EQ(p.torch_version, "2.5.1");
  EXPECT_FALSE(p.host.empty());
  EXPECT_TRUE(std::regex_match(p.created_utc, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << p.created_utc;
  EXPECT_TRUE(p.git_sha == "unknown" || std::regex_match(p.git_sha, std::regex("[0-9a-f]{40}"))) << p.git_sha;
  if (p.git_sha == "unknown") {
    EXPECT_FALSE(p.git_dirty);
  }
  EXPECT_TRUE(std::regex_match(utc_now_iso8601(), std::regex(R"(20\d\d-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-6]\dZ)")));
}

// ======================================================================== ResultsStore

using ResultsStoreTest = TempDir;

TEST_F(ResultsStoreTest, CreateWritesRootAttributesAndEmptySummary) {
  const std::string path = file("sub/dir/r.h5");  // parent directories are created
  const json config = experiment_config();
  ResultsStore::open_or_create(path, config, fixed_provenance());
  {
    H5File f = H5File::open(path, false);
    EXPECT_EQ(f.attr_int("/", "schema_version"), 1);
    EXPECT_EQ(f.attr_string("/", "harness_version"), "0.1.0");
    EXPECT_EQ(f.attr_string("/", "git_sha"), "0123456789abcdef0123456789abcdef01234567");
    EXPECT_EQ(f.attr_bool("/", "git_dirty"), true);
    EXPECT_EQ(f.attr_string("/", "created_utc"), "2026-11-22T12:00:00Z");
    EXPECT_EQ(f.attr_string("/", "host"), "node-7");
    EXPECT_EQ(f.attr_string("/", "device"), "cpu");
    EXPECT_EQ(f.attr_string("/", "torch_version"), "2.5.1");
    EXPECT_EQ(json::parse(*f.attr_string("/", "config_json")), config);
    EXPECT_TRUE(f.is_group("runs"));
    const auto summary = f.read_table("summary");
    EXPECT_EQ(column_names(summary),
              (std::vector<std::string>{"run_id", "status", "method"}));  // no run, so no knob columns
    EXPECT_EQ(summary[0].size(), 0u);
  }
  const ResultsHeader h = ResultsStore::open_existing(path).header();
  EXPECT_EQ(h.schema_version, 1);
  EXPECT_EQ(h.provenance.git_sha, fixed_provenance().git_sha);
  EXPECT_TRUE(h.provenance.git_dirty);
  EXPECT_EQ(h.config, config);
  EXPECT_EQ(dir_entries(), (std::vector<std::string>{"sub"}));
}

TEST_F(ResultsStoreTest, CompleteThenReopenReadsBackExactValues) {
  const std::string path = file("r.h5");
  RunInfo info = smyrf_run("n_hashes=2", 2);
  RunResult result = fidelity_result(0.0123456789012345);
  result.metrics["nan_metric"] = {kNaN, "1", false};
  result.curves["train_loss"] = {2.5, 1.25, 0.625};
  result.tensors["per_head_error"] = {{0.1, 0.2, 0.3, 0.4, 0.5, 0.6}, {2, 3}, false};
  result.tensors["q_capture"] = {{1.0 / 3.0, 2.0}, {1, 2}, true};
  result.notes["fid"] = "unavailable: no Inception weights file given";
  {
    ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
    store.mark_running(info);
    store.complete(info.run_id, result);
  }
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), collect_provenance("cpu", ""));
  EXPECT_EQ(store.path(), path);
  EXPECT_EQ(store.header().provenance.host, "node-7");  // reopening keeps the creator's provenance
  EXPECT_EQ(store.run_ids(), (std::vector<std::string>{"n_hashes=2"}));
  EXPECT_EQ(store.status("n_hashes=2"), "complete");
  EXPECT_EQ(store.resolved_config("n_hashes=2"), info.resolved_config);
  EXPECT_EQ(store.resolved_config("other"), std::nullopt);

  const auto runs = store.read_runs();
  ASSERT_EQ(runs.size(), 1u);
  const StoredRun& r = runs[0];
  EXPECT_EQ(r.info.run_id, "n_hashes=2");
  EXPECT_EQ(r.info.method, "smyrf");
  EXPECT_EQ(r.info.knobs, (std::vector<std::pair<std::string, int64_t>>{{"n_hashes", 2}, {"q_cluster_size", 32}}));
  EXPECT_EQ(knob_value(r.info, "n_hashes"), std::optional<int64_t>(2));
  EXPECT_EQ(knob_value(r.info, "k_cluster_size"), std::nullopt);
  EXPECT_EQ(r.info.seed, 1234);
  EXPECT_EQ(r.info.sweep_point, info.sweep_point);
  EXPECT_EQ(r.info.resolved_config, info.resolved_config);
  EXPECT_EQ(r.status, "complete");
  EXPECT_EQ(r.error, "");
  const std::regex iso(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");
  EXPECT_TRUE(std::regex_match(r.started, iso)) << r.started;
  EXPECT_TRUE(std::regex_match(r.finished, iso)) << r.finished;
  EXPECT_LE(r.started, r.finished);
  EXPECT_EQ(r.memory_fraction, 0.5);

  ASSERT_EQ(r.result.metrics.size(), result.metrics.size());
  for (const auto& [name, m] : result.metrics) {
    const Metric& got = r.result.metrics.at(name);
    if (std::isnan(m.value)) {
      EXPECT_TRUE(std::isnan(got.value)) << name;
    } else {
      EXPECT_EQ(got.value, m.value) << name;
    }
    EXPECT_EQ(got.unit, m.unit) << name;
    EXPECT_EQ(got.higher_is_better, m.higher_is_better) << name;
  }
  EXPECT_EQ(r.result.curves.at("train_loss"), result.curves.at("train_loss"));
  EXPECT_EQ(r.result.notes, result.notes);
  const NamedArray& heads = r.result.tensors.at("per_head_error");
  EXPECT_EQ(heads.data, result.tensors.at("per_head_error").data);
  EXPECT_EQ(heads.dims, (std::vector<int64_t>{2, 3}));
  EXPECT_FALSE(heads.store_float32);
  const NamedArray& q = r.result.tensors.at("q_capture");
  EXPECT_TRUE(q.store_float32);
  EXPECT_EQ(q.data, (std::vector<double>{static_cast<double>(1.0f / 3.0f), 2.0}));

  const auto light = store.read_runs(/*include_arrays=*/false);
  EXPECT_TRUE(light[0].result.curves.empty());
  EXPECT_TRUE(light[0].result.tensors.empty());
  EXPECT_EQ(light[0].result.metrics.size(), result.metrics.size());

  // The raw layout is the documented one.
  H5File f = H5File::open(path, false);
  EXPECT_EQ(f.read_scalar("runs/n_hashes=2/metrics/rel_fro_error"), 0.0123456789012345);
  EXPECT_EQ(f.attr_string("runs/n_hashes=2/metrics/wall_time_s", "unit"), "s");
  EXPECT_EQ(f.attr_bool("runs/n_hashes=2/metrics/mean_row_cosine", "higher_is_better"), true);
  EXPECT_EQ(f.attr_double("runs/n_hashes=2", "memory_fraction"), 0.5);
  EXPECT_EQ(f.stored_element_bits("runs/n_hashes=2/tensors/q_capture"), 32);
  EXPECT_FALSE(f.has_attr("runs/n_hashes=2", "error"));
  EXPECT_EQ(f.attr_string("runs/n_hashes=2/notes", "fid"), "unavailable: no Inception weights file given");
}

TEST_F(ResultsStoreTest, StatusLifecycle) {
  ResultsStore store = ResultsStore::open_or_create(file("r.h5"), experiment_config(), fixed_provenance());
  EXPECT_EQ(store.status("a"), std::nullopt);
  store.mark_running(smyrf_run("a", 1));
  EXPECT_EQ(store.status("a"), "running");
  store.complete("a", fidelity_result(0.1));
  EXPECT_EQ(store.status("a"), "complete");

  // A redo starts from scratch: the earlier metrics and finish time are gone.
  store.mark_running(smyrf_run("a", 1));
  EXPECT_EQ(store.status("a"), "running");
  auto runs = store.read_runs();
  EXPECT_TRUE(runs[0].result.metrics.empty());
  EXPECT_EQ(runs[0].finished, "");
  EXPECT_EQ(runs[0].memory_fraction, std::nullopt);

  store.fail("a", "out of memory");
  EXPECT_EQ(store.status("a"), "failed");
  store.mark_running(smyrf_run("a", 1));
  store.complete("a", fidelity_result(0.2));
  runs = store.read_runs();
  EXPECT_EQ(runs[0].status, "complete");
  EXPECT_EQ(runs[0].error, "");  // a success clears the old failure
  EXPECT_EQ(runs[0].result.metrics.at("rel_fro_error").value, 0.2);

  EXPECT_THROW(store.complete("never_started", fidelity_result(0.1)), Error);
  EXPECT_THROW(store.mark_running(smyrf_run("bad/id", 1)), Error);
  EXPECT_THROW(store.status(""), Error);
}

TEST_F(ResultsStoreTest, FailRecordsTheError) {
  ResultsStore store = ResultsStore::open_or_create(file("r.h5"), experiment_config(), fixed_provenance());
  store.mark_running(smyrf_run("x", 2));
  store.fail("x", "CUDA out of memory\n  at attention.cpp:12");
  store.fail("y", "config error before the run started");  // never marked running
  const auto runs = store.read_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].status, "failed");
  EXPECT_EQ(runs[0].error, "CUDA out of memory\n  at attention.cpp:12");
  EXPECT_EQ(runs[0].info.method, "smyrf");  // the run's info survives the failure
  EXPECT_FALSE(runs[0].finished.empty());
  EXPECT_EQ(runs[1].info.run_id, "y");
  EXPECT_EQ(runs[1].status, "failed");
  EXPECT_EQ(runs[1].error, "config error before the run started");
  H5File f = H5File::open(store.path(), false);
  const auto summary = table_by_name(f.read_table("summary"));
  EXPECT_EQ(summary.at("status").strings, (std::vector<std::string>{"failed", "failed"}));
}

TEST_F(ResultsStoreTest, KnobsAreStoredByNameAndOlderFilesReadTheirSmyrfKnobs) {
  const std::string path = file("knobs.h5");
  RunInfo hyper = smyrf_run("hyper", 1);
  hyper.method = "hyper";
  hyper.knobs = {{"block_size", 64}, {"sample_size", 64}};
  {
    ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
    store.mark_running(hyper);
    store.mark_running(smyrf_run("smyrf", 2));
  }
  {
    H5File f = H5File::open(path, false);
    EXPECT_EQ(f.attr_string("runs/hyper", "knobs_json"), R"(["block_size","sample_size"])");
    EXPECT_EQ(f.attr_int("runs/hyper", "block_size"), 64);
  }
  {
    // a file from before knobs_json: the SMYRF attributes are the knobs
    H5File f = H5File::open(path, true);
    f.remove_attr("runs/smyrf", "knobs_json");
  }
  const auto runs = ResultsStore::open_existing(path).read_runs();
  ASSERT_EQ(runs.size(), 2u);
  EXPECT_EQ(runs[0].info.knobs, hyper.knobs);
  EXPECT_EQ(runs[1].info.knobs, (std::vector<std::pair<std::string, int64_t>>{{"n_hashes", 2}, {"q_cluster_size", 32}}));
}

TEST_F(ResultsStoreTest, WorkerResultFilesCarryAResultBitForBitOrAnError) {
  RunResult result;
  result.metrics["rel_fro_error"] = {0.1 + 0.2, "1", false};
  result.metrics["undefined"] = {std::nan(""), "1", true};
  result.curves["train_loss"] = {1.0 / 3.0, std::nextafter(1.0, 2.0)};
  result.tensors["errors_BH"] = {{1.0 / 7.0, 2.0, 3.0, 4.0, 5.0, 6.0}, {2, 3}, false};
  result.tensors["samples"] = {{0.25, -1.0 / 3.0}, {2}, true};
  result.notes["model"] = "a note";
  const std::string path = file("worker.h5");
  write_worker_result(path, result);
  const WorkerResult back = read_worker_result(path);
  ASSERT_TRUE(back.result.has_value());
  EXPECT_EQ(back.error, "");
  EXPECT_EQ(back.result->metrics.at("rel_fro_error").value, 0.1 + 0.2);
  EXPECT_TRUE(std::isnan(back.result->metrics.at("undefined").value));
  EXPECT_TRUE(back.result->metrics.at("undefined").higher_is_better);
  EXPECT_EQ(back.result->curves.at("train_loss"), result.curves.at("train_loss"));
  EXPECT_EQ(back.result->tensors.at("errors_BH").data, result.tensors.at("errors_BH").data);
  EXPECT_EQ(back.result->tensors.at("errors_BH").dims, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(back.result->tensors.at("samples").store_float32);
  EXPECT_EQ(back.result->tensors.at("samples").data[1], static_cast<double>(static_cast<float>(-1.0 / 3.0)));
  EXPECT_EQ(back.result->notes.at("model"), "a note");

  write_worker_error(path, "diverged at step 3");
  const WorkerResult failed = read_worker_result(path);
  EXPECT_FALSE(failed.result.has_value());
  EXPECT_EQ(failed.error, "diverged at step 3");
  std::ofstream(file("not_a_result.h5")) << "garbage";
  EXPECT_THROW(read_worker_result(file("not_a_result.h5")), IoError);
}

TEST_F(ResultsStoreTest, SummaryHasOneRowPerRunAndEveryMetric) {
  ResultsStore store = ResultsStore::open_or_create(file("r.h5"), experiment_config(), fixed_provenance());
  RunInfo a = smyrf_run("a", 2);
  a.sweep_point = {{"attention.method", "smyrf"},
                   {"attention.n_hashes", 2},
                   {"model.dim", 64},
                   {"data.dim", 32},
                   {"data.source", "synthetic"}};
  RunInfo b;
  b.run_id = "b";
  b.method = "dense";
  b.sweep_point = {{"attention", {{"method", "dense"}}}, {"data.source", 3}, {"data.dim", 16}};  // nested form
  RunInfo c = smyrf_run("c", 4);
  c.knobs.emplace_back("k_cluster_size", 16);
  c.sweep_point = {{"attention.method", "smyrf"}, {"attention.n_hashes", 4}, {"train.lr", 0.001}};

  RunResult ra;
  ra.metrics["rel_fro_error"] = {0.25, "1", false};
  ra.metrics["memory_fraction"] = {0.5, "fraction", false};
  RunResult rb;
  rb.metrics["rel_fro_error"] = {0.0, "1", false};
  rb.metrics["wall_time_s"] = {1.5, "s", false};

  store.mark_running(a);
  store.complete("a", ra);
  store.mark_running(b);
  store.complete("b", rb);
  store.mark_running(c);
  store.fail("c", "diverged");

  H5File f = H5File::open(store.path(), false);
  const auto table = f.read_table("summary");
  EXPECT_EQ(column_names(table),
            (std::vector<std::string>{"run_id", "status", "method", "n_hashes", "q_cluster_size", "k_cluster_size",
                                      "attention.method", "attention.n_hashes", "data.dim", "source", "model.dim",
                                      "lr", "memory_fraction", "rel_fro_error", "wall_time_s"}));
  const auto s = table_by_name(table);
  EXPECT_EQ(s.at("run_id").strings, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(s.at("status").strings, (std::vector<std::string>{"complete", "complete", "failed"}));
  EXPECT_EQ(s.at("method").strings, (std::vector<std::string>{"smyrf", "dense", "smyrf"}));
  EXPECT_EQ(s.at("n_hashes").numbers[0], 2.0);
  EXPECT_TRUE(std::isnan(s.at("n_hashes").numbers[1]));
  EXPECT_TRUE(std::isnan(s.at("k_cluster_size").numbers[0]));  // knob columns: the union over the runs
  EXPECT_EQ(s.at("k_cluster_size").numbers[2], 16.0);
  // "method" and "n_hashes" leaves collide with the run columns, "dim" with each other.
  EXPECT_TRUE(s.at("attention.method").is_string);
  EXPECT_EQ(s.at("attention.method").strings, (std::vector<std::string>{"smyrf", "dense", "smyrf"}));
  EXPECT_FALSE(s.at("attention.n_hashes").is_string);
  EXPECT_TRUE(std::isnan(s.at("attention.n_hashes").numbers[1]));
  EXPECT_EQ(s.at("data.dim").numbers[0], 32.0);
  EXPECT_EQ(s.at("data.dim").numbers[1], 16.0);
  EXPECT_TRUE(std::isnan(s.at("data.dim").numbers[2]));
  EXPECT_TRUE(s.at("source").is_string);  // mixed string / number values
  EXPECT_EQ(s.at("source").strings, (std::vector<std::string>{"synthetic", "3", ""}));
  EXPECT_EQ(s.at("lr").numbers[2], 0.001);
  EXPECT_EQ(s.at("memory_fraction").numbers[0], 0.5);
  EXPECT_TRUE(std::isnan(s.at("memory_fraction").numbers[1]));
  EXPECT_TRUE(std::isnan(s.at("memory_fraction").numbers[2]));
  EXPECT_EQ(s.at("rel_fro_error").numbers[1], 0.0);
  EXPECT_TRUE(std::isnan(s.at("wall_time_s").numbers[0]));
  EXPECT_EQ(s.at("wall_time_s").numbers[1], 1.5);

  const json described = json::parse(*f.attr_string("summary", "columns_json"));
  ASSERT_EQ(described.size(), table.size());
  EXPECT_EQ(described[9], (json{{"name", "source"}, {"source", "sweep"}, {"key", "data.source"}, {"unit", ""}}));
  EXPECT_EQ(described[14]["unit"], "s");
}

TEST_F(ResultsStoreTest, UnwritableLocationIsAnIoErrorWithTheFix) {
  const std::string blocker = file("not_a_dir");
  std::ofstream(blocker) << "x";
  const std::string path = blocker + "/results.h5";
  const std::string msg = error_of([&] { ResultsStore::open_or_create(path, experiment_config(), fixed_provenance()); });
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_NE(msg.find("set output.path to a writable location"), std::string::npos) << msg;
  EXPECT_THROW(ResultsStore::open_or_create(path, experiment_config(), fixed_provenance()), IoError);
}

TEST_F(ResultsStoreTest, CorruptOrForeignFilesAreIoErrors) {
  const std::string path = file("r.h5");
  std::ofstream(path) << std::string(4096, 'x');
  std::string msg = error_of([&] { ResultsStore::open_or_create(path, experiment_config(), fixed_provenance()); });
  EXPECT_NE(msg.find("'" + path + "' is not a readable HDF5 file"), std::string::npos) << msg;
  EXPECT_NE(msg.find("delete it or choose another output path"), std::string::npos) << msg;

  // A results file cut short, as a crash during a plain in-place write would leave it.
  const std::string good = file("good.h5");
  ResultsStore store = ResultsStore::open_or_create(good, experiment_config(), fixed_provenance());
  store.mark_running(smyrf_run("a", 1));
  store.complete("a", fidelity_result(0.1));
  const std::string bytes = read_bytes(good);
  const std::string cut = file("cut.h5");
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  EXPECT_THROW(
      {
        ResultsStore s = ResultsStore::open_or_create(cut, experiment_config(), fixed_provenance());
        s.read_runs();
      },
      IoError);

  const std::string foreign = file("foreign.h5");
  H5File::create(foreign).close();
  msg = error_of([&] { ResultsStore::open_or_create(foreign, experiment_config(), fixed_provenance()); });
  EXPECT_NE(msg.find("not a smyrf results file"), std::string::npos) << msg;

  {
    H5File f = H5File::open(good, true);
    f.set_attr("/", "schema_version", int64_t{2});
    f.close();
  }
  msg = error_of([&] { ResultsStore::open_existing(good); });
  EXPECT_NE(msg.find("schema version 2"), std::string::npos) << msg;

  msg = error_of([&] { format_report(file("nothing_here.h5"), false); });
  EXPECT_NE(msg.find("does not exist"), std::string::npos) << msg;
  EXPECT_THROW(format_report(file("nothing_here.h5"), false), IoError);
}

TEST_F(ResultsStoreTest, AnotherExperimentsFileIsRejectedNamingBoth) {
  const std::string path = file("r.h5");
  ResultsStore::open_or_create(path, experiment_config("fidelity_small"), fixed_provenance());
  const std::string msg = error_of(
      [&] { ResultsStore::open_or_create(path, experiment_config("glue_sst2"), fixed_provenance()); });
  EXPECT_NE(msg.find("fidelity_small"), std::string::npos) << msg;
  EXPECT_NE(msg.find("glue_sst2"), std::string::npos) << msg;
  EXPECT_NE(msg.find(path), std::string::npos) << msg;
  EXPECT_THROW(ResultsStore::open_or_create(path, experiment_config("glue_sst2"), fixed_provenance()), IoError);
  EXPECT_NO_THROW(ResultsStore::open_or_create(path, experiment_config("fidelity_small"), fixed_provenance()));
}

TEST_F(ResultsStoreTest, MutationThatThrowsMidwayLeavesTheFileUntouched) {
  const std::string path = file("r.h5");
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  store.mark_running(smyrf_run("done", 1));
  store.complete("done", fidelity_result(0.1));
  store.mark_running(smyrf_run("next", 2));
  const std::string before = read_bytes(path);

  // "a_first" is written to the copy before "b/bad" is rejected.
  RunResult bad_name = fidelity_result(0.2);
  bad_name.metrics["b/bad"] = {1.0, "1", false};
  EXPECT_THROW(store.complete("next", bad_name), Error);
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir_entries(), (std::vector<std::string>{"r.h5"}));

  // Every metric and curve is written before the tensor's shape is found wrong.
  RunResult bad_shape = fidelity_result(0.2);
  bad_shape.curves["loss"] = {1, 2, 3};
  bad_shape.tensors["t"] = {{1, 2, 3}, {2, 2}, false};
  const std::string msg = error_of([&] { store.complete("next", bad_shape); });
  EXPECT_NE(msg.find("tensor 't' of run 'next' in results file '" + path + "': shape [2, 2] does not hold its 3"),
            std::string::npos)
      << msg;
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(dir_entries(), (std::vector<std::string>{"r.h5"}));

  EXPECT_EQ(store.status("next"), "running");
  EXPECT_EQ(store.status("done"), "complete");
  const auto runs = store.read_runs();
  EXPECT_TRUE(runs[1].result.metrics.empty());
  EXPECT_EQ(runs[0].result.metrics.at("rel_fro_error").value, 0.1);
}

TEST_F(ResultsStoreTest, NoTemporaryFilesAndBoundedSizeAfterManyUpdates) {
  const std::string path = file("r.h5");
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  store.mark_running(smyrf_run("a", 1));
  store.complete("a", fidelity_result(0.1));
  const auto size_one_run = fs::file_size(path);
  // Redoing one run rewrites /summary and the run each time, leaking ~13 kB per change in HDF5
  // 1.10 (~800 kB over this loop). The store repacks once the file doubles (+256 KiB slack).
  for (int i = 0; i < 60; ++i) {
    store.mark_running(smyrf_run("a", 1));
    store.complete("a", fidelity_result(0.1 * i));
  }
  EXPECT_LT(fs::file_size(path), 2 * size_one_run + 320 * 1024);
  EXPECT_EQ(store.read_runs()[0].result.metrics.at("rel_fro_error").value, 0.1 * 59);
  EXPECT_EQ(dir_entries(), (std::vector<std::string>{"r.h5"}));
}

TEST_F(ResultsStoreTest, StaleTemporaryCopiesOfDeadWritersAreRemovedOnOpen) {
  const std::string path = file("r.h5");
  ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // reaped: this pid now names no process
  const std::string dead = path + ".tmp-" + std::to_string(child);
  const std::string alive = path + ".tmp-1";  // pid 1 always exists
  const std::string unrelated = path + ".tmp-notapid";
  for (const auto& p : {dead, alive, unrelated}) std::ofstream(p) << "partial";
  ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  EXPECT_FALSE(fs::exists(dead));
  EXPECT_TRUE(fs::exists(alive));
  EXPECT_TRUE(fs::exists(unrelated));
}

// A writer killed with SIGKILL at arbitrary moments never damages the file: it always opens,
// every run it reports complete has all its metrics, and the sweep resumes to completion.
TEST_F(ResultsStoreTest, SurvivesSigkillDuringSweep) {
  constexpr int kRuns = 40;
  const std::string path = file("sweep.h5");
  ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  auto run_id = [](int i) { return "run" + std::to_string(100 + i); };
  auto sweep = [&] {
    ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
    for (int i = 0; i < kRuns; ++i) {
      if (store.status(run_id(i)) == "complete") continue;
      store.mark_running(smyrf_run(run_id(i), i));
      RunResult r = fidelity_result(i * 0.001);
      r.curves["loss"] = std::vector<double>(50, i);
      store.complete(run_id(i), r);
    }
  };
  int kills_mid_sweep = 0;
  for (int delay_ms : {15, 40, 80, 140, 220}) {
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      try {
        sweep();
      } catch (...) {
        ::_exit(2);
      }
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(child, SIGKILL);
    int wstatus = 0;
    ::waitpid(child, &wstatus, 0);
    if (WIFSIGNALED(wstatus)) ++kills_mid_sweep;
    ASSERT_FALSE(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0) << "the sweep itself failed";

    ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
    const auto runs = store.read_runs();
    for (const auto& r : runs) {
      ASSERT_TRUE(r.status == "complete" || r.status == "running") << r.info.run_id << " " << r.status;
      if (r.status != "complete") continue;
      const int i = std::stoi(r.info.run_id.substr(3)) - 100;
      EXPECT_EQ(r.result.metrics.size(), 6u) << r.info.run_id;
      EXPECT_EQ(r.result.metrics.at("rel_fro_error").value, i * 0.001) << r.info.run_id;
      EXPECT_EQ(r.result.curves.at("loss"), std::vector<double>(50, i)) << r.info.run_id;
    }
    H5File f = H5File::open(path, false);
    EXPECT_EQ(f.read_table("summary").at(0).size(), runs.size());
    for (const auto& name : dir_entries()) EXPECT_EQ(name.find(".tmp-"), std::string::npos) << name;
  }
  EXPECT_GE(kills_mid_sweep, 1) << "the sweep finished before any kill; the test proved nothing";
  sweep();  // resume in this process
  ResultsStore store = ResultsStore::open_existing(path);
  const auto runs = store.read_runs(false);
  ASSERT_EQ(runs.size(), static_cast<size_t>(kRuns));
  for (const auto& r : runs) EXPECT_EQ(r.status, "complete") << r.info.run_id;
}

TEST_F(ResultsStoreTest, ImportRunsCopiesRunsVerbatim) {
  ResultsStore shard = ResultsStore::open_or_create(file("shard0.h5"), experiment_config(), fixed_provenance());
  shard.mark_running(smyrf_run("a", 1));
  RunResult r = fidelity_result(0.3);
  r.curves["loss"] = {3, 2, 1};
  r.tensors["t"] = {{1, 2, 3, 4}, {2, 2}, true};
  shard.complete("a", r);
  shard.mark_running(smyrf_run("b", 2));
  shard.fail("b", "boom");
  const auto from = shard.read_runs();

  ResultsStore merged = ResultsStore::open_or_create(file("merged.h5"), experiment_config(), fixed_provenance());
  merged.import_runs(from);
  const auto to = merged.read_runs();
  ASSERT_EQ(to.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(to[i].info.run_id, from[i].info.run_id);
    EXPECT_EQ(to[i].status, from[i].status);
    EXPECT_EQ(to[i].error, from[i].error);
    EXPECT_EQ(to[i].started, from[i].started);
    EXPECT_EQ(to[i].finished, from[i].finished);
    EXPECT_EQ(to[i].memory_fraction, from[i].memory_fraction);
    EXPECT_EQ(to[i].info.resolved_config, from[i].info.resolved_config);
    EXPECT_EQ(to[i].result.metrics.size(), from[i].result.metrics.size());
  }
  EXPECT_EQ(to[0].result.curves.at("loss"), (std::vector<double>{3, 2, 1}));
  EXPECT_TRUE(to[0].result.tensors.at("t").store_float32);
  EXPECT_EQ(to[0].result.tensors.at("t").dims, (std::vector<int64_t>{2, 2}));
}

// ======================================================================== report

TEST(ReportFormat, MetricValues) {
  EXPECT_EQ(format_metric_value("memory_fraction", "fraction", 0.5), "50%");
  EXPECT_EQ(format_metric_value("memory_fraction", "1", 0.015625), "1.56%");
  EXPECT_EQ(format_metric_value("rel_fro_error", "1", 0.0123456), "0.0123");
  EXPECT_EQ(format_metric_value("max_abs_error", "1", 1.23456e-7), "1.23e-07");
  EXPECT_EQ(format_metric_value("wall_time_s", "s", 0.0123456), "12.3 ms");
  EXPECT_EQ(format_metric_value("wall_time_s", "s", 1.5), "1500 ms");
  EXPECT_EQ(format_metric_value("peak_rss_bytes", "bytes", 3.0 * 1024 * 1024), "3.0 MiB");
  EXPECT_EQ(format_metric_value("analytic_bytes", "bytes", 512), "512 B");
  EXPECT_EQ(format_metric_value("peak_rss_delta_bytes", "bytes", -2048), "-2.0 KiB");
  EXPECT_EQ(format_metric_value("score_entries", "count", 4096), "4096");
  EXPECT_EQ(format_metric_value("score_entries", "count", 16777216), "16.8M");
  EXPECT_EQ(format_metric_value("mean_row_cosine", "1", 0.99987654321), "0.999877");
  EXPECT_EQ(format_metric_value("accuracy", "1", kNaN), "nan");
}

using ReportTest = TempDir;

TEST_F(ReportTest, ListsEveryRunAndMetric) {
  const std::string path = file("r.h5");
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  store.mark_running(smyrf_run("n_hashes=1", 1));
  store.complete("n_hashes=1", fidelity_result(0.0123456));
  store.mark_running(smyrf_run("n_hashes=2", 2));
  RunResult second = fidelity_result(0.00456789);
  second.metrics["memory_fraction"].value = 0.25;
  store.complete("n_hashes=2", second);
  store.mark_running(smyrf_run("n_hashes=8", 8));
  store.fail("n_hashes=8", "CUDA out of memory: tried to allocate 2.00 GiB\nstack trace follows");
  store.mark_running(smyrf_run("n_hashes=16", 16));

  const std::string text = format_report(path, /*markdown=*/false);
  EXPECT_NE(text.find(path), std::string::npos) << text;
  EXPECT_NE(text.find("0123456789ab (dirty)"), std::string::npos) << text;
  EXPECT_NE(text.find("torch 2.5.1"), std::string::npos) << text;
  EXPECT_NE(text.find("2026-11-22T12:00:00Z"), std::string::npos) << text;
  EXPECT_NE(text.find("4 runs: 2 complete, 1 failed, 1 running"), std::string::npos) << text;
  for (const char* needle : {"method", "n_hashes", "q_cluster_size", "status", "memory_fraction", "rel_fro_error",
                             "mean_row_cosine", "wall_time_s", "peak_rss_bytes", "50%", "25%", "0.0123", "0.00457",
                             "12.3 ms", "3.0 MiB", "running", "failed"}) {
    EXPECT_NE(text.find(needle), std::string::npos) << needle << "\n" << text;
  }
  EXPECT_NE(text.find("n_hashes=8: CUDA out of memory: tried to allocate 2.00 GiB"), std::string::npos) << text;
  EXPECT_EQ(text.find("stack trace follows"), std::string::npos) << text;  // only the first line
  // Column order: identity, status, memory_fraction, errors, quality, time, memory.
  const size_t header = text.find("method");
  EXPECT_LT(text.find("memory_fraction", header), text.find("rel_fro_error", header));
  EXPECT_LT(text.find("rel_fro_error", header), text.find("max_abs_error", header));
  EXPECT_LT(text.find("rel_fro_error", header), text.find("mean_row_cosine", header));
  EXPECT_LT(text.find("mean_row_cosine", header), text.find("wall_time_s", header));
  EXPECT_LT(text.find("wall_time_s", header), text.find("peak_rss_bytes", header));
  // Aligned: the header, the rule and every data row have the same width.
  std::vector<std::string> lines;
  std::istringstream in(text.substr(header));
  for (std::string line; std::getline(in, line) && !line.empty();) lines.push_back(line);
  ASSERT_EQ(lines.size(), 6u) << text;  // header, rule, 4 runs
  const size_t status_col = lines[0].find("status");
  for (const auto& line : lines) EXPECT_EQ(line.find_first_not_of(' ', status_col) , status_col) << line;

  // Rows sort by knob value (1, 2, 8, 16), not by run id text ("n_hashes=16" < "n_hashes=2").
  std::vector<std::string> knob_order;
  for (size_t i = 2; i < lines.size(); ++i) {
    std::string method_cell, knob_cell;
    std::istringstream(lines[i]) >> method_cell >> knob_cell;
    knob_order.push_back(knob_cell);
  }
  EXPECT_EQ(knob_order, (std::vector<std::string>{"1", "2", "8", "16"})) << text;

  const std::string md = format_report(path, /*markdown=*/true);
  EXPECT_NE(md.find("| method |"), std::string::npos) << md;
  EXPECT_NE(md.find("| :--- |"), std::string::npos) << md;
  EXPECT_NE(md.find("---: |"), std::string::npos) << md;
  EXPECT_NE(md.find("- `n_hashes=8`: CUDA out of memory"), std::string::npos) << md;
  EXPECT_NE(md.find("| 25% |"), std::string::npos) << md;
}

TEST_F(ReportTest, RunsFailingTheSameWayShareOneLine) {
  const std::string path = file("r.h5");
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  for (int i = 1; i <= 5; ++i) {
    store.mark_running(smyrf_run("h" + std::to_string(i), i));
    store.fail("h" + std::to_string(i), i == 5 ? "another reason" : "index out of range\ntrace");
  }
  const std::string text = format_report(path, false);
  EXPECT_NE(text.find("  4 runs (h1, h2, h3, and 1 more): index out of range\n"), std::string::npos) << text;
  EXPECT_NE(text.find("  h5: another reason\n"), std::string::npos) << text;
}

TEST_F(ReportTest, RunIdShownWhenKnobsDoNotTellRunsApart) {
  const std::string path = file("r.h5");
  ResultsStore store = ResultsStore::open_or_create(path, experiment_config(), fixed_provenance());
  for (const char* id : {"seed_a", "seed_b"}) {
    RunInfo info = smyrf_run(id, 2);
    info.sweep_point = json::object();
    store.mark_running(info);
    store.complete(id, fidelity_result(0.1));
  }
  const std::string text = format_report(path, false);
  EXPECT_NE(text.find("run_id"), std::string::npos) << text;
  EXPECT_NE(text.find("seed_a"), std::string::npos) << text;
  EXPECT_NE(text.find("seed_b"), std::string::npos) << text;
}

}  // namespace
}  // namespace smyrf
