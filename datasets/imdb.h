// IMDB loader: the aclImdb v1 tree as distributed (scripts/fetch_imdb.sh fetches and checks it):
// ACLIMDB_DIR/{train,test}/{neg,pos}/<id>_<rating>.txt, one review per file, UTF-8.
// Labels: neg = 0 (rating <= 4), pos = 1 (rating >= 7), as Hugging Face's `imdb` dataset.
// Reviews keep their text except the HTML line breaks "<br />" (and "<br/>", "<br>"), which become
// one space each with br = "space" (default; the reviews' only markup), or stay with br = "keep".
// Order: neg then pos, each by numeric id, so a split is the same on every machine.
// Errors (IoError): missing directory (with the fix: scripts/fetch_imdb.sh), a file name that is not
// <id>_<rating>.txt, a rating that contradicts its folder, an empty or non-UTF-8 review (naming the file).
// Tested by tests/light/test_text_datasets.cpp on the fixture tree tests/data/aclImdb.
#pragma once

#include <string>

#include "core/util/json_options.h"
#include "datasets/text_classification.h"

namespace smyrf {

enum class ImdbLineBreaks { kSpace, kKeep };
// Their spellings in configs ("br": "space" | "keep").
extern const EnumNames<ImdbLineBreaks> kImdbBreakNames;

struct ImdbLoadOptions {
  ImdbLineBreaks br = ImdbLineBreaks::kSpace;
};

// split: "train" or "test".
TextSplit load_imdb_split(const std::string& aclimdb_dir, const std::string& split, const ImdbLoadOptions& options = {});

}  // namespace smyrf
