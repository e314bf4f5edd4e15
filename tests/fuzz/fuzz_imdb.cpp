// Fuzz target: the aclImdb tree (datasets/imdb.h). The input is cut at "\n----\n" into up to six
// files, named by their first line (e.g. "train/pos/0_9.txt"; names are kept inside the scratch
// folder) with the rest as content; then the train split is read with both line-break modes.
#include "datasets/imdb.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const auto dir = fuzz::fresh_scratch_dir();
  for (std::string_view part : fuzz::split_parts(data, size, 6)) {
    const size_t newline = part.find('\n');
    if (newline == std::string_view::npos) continue;
    const std::filesystem::path name = std::filesystem::path(std::string(part.substr(0, newline))).lexically_normal();
    if (name.empty() || name.is_absolute() || *name.begin() == ".." || name.filename().empty()) continue;
    try {  // a name that needs a folder where an earlier part made a file: the harness's problem, skipped
      fuzz::write_file(dir / "aclImdb" / name, part.substr(newline + 1));
    } catch (const std::filesystem::filesystem_error&) {
    }
  }
  for (const ImdbLineBreaks br : {ImdbLineBreaks::kSpace, ImdbLineBreaks::kKeep})
    fuzz::expect_clean([&] { load_imdb_split((dir / "aclImdb").string(), "train", {br}); });
  return 0;
}
