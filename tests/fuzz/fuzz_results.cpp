// Fuzz target: results files (experiments/runner/results_store.h) that are valid HDF5 but lie:
// attributes of the wrong type or with broken JSON, datasets of other shapes and element types,
// missing or extra groups. A valid file with two runs (one complete with metrics, a curve and a
// tensor; one failed) is written once; each input is a program of edits applied to a copy with
// the HDF5 writer, after which the file is read as `smyrf report` and `smyrf merge` read it.
// Program bytes: op (mod 7), object (index into kObjects), then the op's operands.
#include <fstream>
#include <iterator>

#include "core/util/hdf5_file.h"
#include "experiments/runner/results_store.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace smyrf;

const char* const kObjects[] = {"/", "/runs", "/runs/a", "/runs/b", "/runs/a/metrics", "/runs/a/metrics/error",
                                "/runs/a/curves", "/runs/a/curves/loss", "/runs/a/tensors", "/runs/a/tensors/x",
                                "/runs/a/notes", "/summary", "/runs/c"};
const char* const kAttrs[] = {"schema_version", "config_json", "status", "run_id", "error", "method", "knobs_json",
                              "sweep_point_json", "seed", "started", "finished", "memory_fraction", "unit",
                              "higher_is_better", "value", "provenance_json", "shard_json", "columns_json", "note",
                              "name", "format"};
const char* const kStrings[] = {"", "{", "[]", "{}", "null", "complete", "failed", "running", "interrupted",
                                "[[\"n_hashes\", 2]]", "{\"a\": 1}", "[1, 2", "\"x\"", "1e999", "-1"};

std::string make_template() {
  const auto path = fuzz::scratch_dir() / "template.h5";
  {
    const nlohmann::json config = {{"version", 1}, {"name", "fuzz"}, {"pipeline", "attention_fidelity"},
                                   {"output", {{"path", "x.h5"}}}};
    ResultsStore store = ResultsStore::open_or_create(path.string(), config, Provenance{});
    RunInfo info;
    info.run_id = "a";
    info.method = "smyrf";
    info.knobs = {{"n_hashes", 2}, {"q_cluster_size", 32}};
    info.resolved_config = config;
    store.mark_running(info);
    RunResult result;
    result.metrics["error"] = {0.5, "1", false};
    result.curves["loss"] = {1.0, 0.5};
    result.tensors["x"] = {{1, 2, 3, 4, 5, 6}, {2, 3}, false};
    result.notes["why"] = "because";
    store.complete("a", result);
    store.fail("b", "it broke");
  }
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

void edit(H5File& file, fuzz::Program& p) {
  const std::string object = p.pick(kObjects);
  switch (p.byte() % 7) {
    case 0: file.set_attr(object, p.pick(kAttrs), std::string(p.pick(kStrings))); break;
    case 1: file.set_attr(object, p.pick(kAttrs), static_cast<int64_t>(static_cast<int8_t>(p.byte()))); break;
    case 2: file.set_attr(object, p.pick(kAttrs), static_cast<double>(p.byte()) / 3.0 - 40.0); break;
    case 3: file.remove_attr(object, p.pick(kAttrs)); break;
    case 4: file.remove(object); break;
    case 5: {  // a dataset of another shape in its place
      const std::vector<int64_t> dims = {p.byte() % 4, p.byte() % 3};
      file.remove(object);
      if (object != "/") file.write_array(object, std::vector<double>(static_cast<size_t>(dims[0] * dims[1]), 1.5), dims);
      break;
    }
    default: {  // a table with other columns
      H5Column text{p.pick(kAttrs), true, {}, {p.pick(kStrings)}};
      H5Column number{p.pick(kAttrs), false, {static_cast<double>(p.byte())}, {}};
      file.remove(object);
      if (object != "/" && text.name != number.name) file.write_table(object, {text, number});
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string kTemplate = make_template();
  const auto path = (fuzz::fresh_scratch_dir() / "results.h5").string();
  fuzz::write_file(path, kTemplate);
  fuzz::Program program{data, size};
  fuzz::expect_clean([&] {
    H5File file = H5File::open(path, /*writable=*/true);
    for (int edits = 0; program.more() && edits < 16; ++edits) fuzz::expect_clean([&] { edit(file, program); });
  });
  fuzz::expect_clean([&] {
    const ResultsStore store = ResultsStore::open_existing(path);
    store.header();
    const std::vector<StoredRun> runs = store.read_runs(true);
    knob_names(runs);
    summarize_runs(runs);
    for (const std::string& id : store.run_ids()) store.resolved_config(id);
  });
  return 0;
}
