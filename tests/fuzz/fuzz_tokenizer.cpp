// Fuzz target: the tokenizer files (core/text/tokenizer.h) and tokenizing arbitrary bytes. The input
// is cut at "\n----\n" into: a mode line ("json", "wordpiece" or "bpe"), the files of that mode
// (tokenizer.json | vocab.txt, tokenizer_config.json | vocab.json, merges.txt), and text to encode.
#include "core/text/tokenizer.h"
#include "tests/fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace smyrf;
  const auto dir = fuzz::fresh_scratch_dir();
  const auto parts = fuzz::split_parts(data, size, 4);
  if (parts.size() < 2) return 0;
  const std::string_view mode = parts[0];
  const std::string_view text = parts.size() > 2 ? parts.back() : std::string_view();
  if (mode == "json") {
    fuzz::write_file(dir / "tokenizer.json", parts[1]);
  } else if (mode == "wordpiece") {
    fuzz::write_file(dir / "vocab.txt", parts[1]);
    if (parts.size() > 3) fuzz::write_file(dir / "tokenizer_config.json", parts[2]);
  } else if (mode == "bpe") {
    fuzz::write_file(dir / "vocab.json", parts[1]);
    if (parts.size() > 2) fuzz::write_file(dir / "merges.txt", parts[2]);
  } else {
    return 0;
  }
  fuzz::expect_clean([&] {
    const auto tokenizer = load_tokenizer(dir.string());
    const std::string t(text);
    const Encoding single = tokenizer->encode(t, 64);
    tokenizer->encode_pair(t, t.substr(0, t.size() / 2), 64);
    for (int64_t id : single.ids) tokenizer->id_to_token(id);
    tokenizer->vocab_size();
    tokenizer->pad_id();
  });
  return 0;
}
