// Fuzz target: GLUE TSV files (datasets/glue.h). The first input line names the task (cola, sst2,
// mrpc, stsb, qqp, mnli, qnli, rte, wnli); the rest is its train.tsv, read strictly and then with
// skip_malformed.
#include "datasets/glue.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t newline = input.find('\n');
  if (newline == std::string_view::npos) return 0;
  const std::string task(input.substr(0, newline));
  fuzz::expect_clean([&] {
    const GlueTask& t = glue_task(task);
    const auto dir = fuzz::fresh_scratch_dir();
    fuzz::write_file(dir / t.dir / "train.tsv", input.substr(newline + 1));
    fuzz::expect_clean([&] { load_glue_split(dir.string(), task, "train"); });
    GlueLoadOptions lenient;
    lenient.skip_malformed = true;
    load_glue_split(dir.string(), task, "train", lenient);
  });
  return 0;
}
