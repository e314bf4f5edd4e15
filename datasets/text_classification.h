// Labelled text examples as the sentence(-pair) classification loaders return them (datasets/glue.h,
// datasets/imdb.h) and the fine-tuning pipelines consume them (experiments/engines/finetune.h).
// Torch-free. Tested through the loaders' tests (tests/light/test_text_datasets.cpp).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <vector>

namespace smyrf {

struct TextExample {
  std::string text_a;
  std::optional<std::string> text_b;  // second sentence of a pair task
  // Class index into TextSplit::label_names, or the regression target (STS-B) when label_names is empty.
  double label = 0;
  std::string origin;  // "FILE:LINE" (TSV) or the review's file path: where an error points
};

struct TextSplit {
  std::vector<TextExample> examples;
  std::vector<std::string> label_names;  // index -> name; empty for regression
  size_t skipped = 0;                    // malformed rows skipped (only when the caller allowed it)
  std::string source;                    // the file or directory read, for messages
  bool is_regression() const { return label_names.empty(); }
};

}  // namespace smyrf
