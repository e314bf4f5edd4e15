// Fuzz target: experiment config loading (experiments/runner/config.h): parsing, `extends` chains
// and sweep expansion. The input is up to three files cut at "\n----\n": config.json, base.json and
// base2.json, so `extends` can name the others.
#include "experiments/runner/config.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const auto dir = fuzz::fresh_scratch_dir();
  const auto parts = fuzz::split_parts(data, size, 3);
  const char* names[] = {"config.json", "base.json", "base2.json"};
  for (size_t i = 0; i < parts.size(); ++i) fuzz::write_file(dir / names[i], parts[i]);
  fuzz::expect_clean([&] { load_experiment_config((dir / "config.json").string()); });
  return 0;
}
