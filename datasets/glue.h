// GLUE loaders: the TSV layout written by the official download script (download_glue_data.py;
// scripts/fetch_glue.sh fetches it): GLUE_DIR/<Task dir>/{train,dev,test}.tsv, MNLI with
// dev_matched.tsv and dev_mismatched.tsv.
//
// Parsing follows the official processors: tab-separated, NO quote character (QQP and MNLI text holds
// bare quotes), UTF-8 with an optional BOM, '\r\n' or '\n'. Tasks with a header row are read by
// column NAME (the header is checked: a file from another layout is an error naming the missing
// column), CoLA has no header and is read by position (label column 1, sentence column 3).
//
//   task   dir     text_a / text_b              label column   default labels (index order)
//   cola   CoLA    col 3 / -                    col 1          0, 1
//   sst2   SST-2   sentence / -                 label          0, 1
//   mrpc   MRPC    #1 String / #2 String        Quality        0, 1
//   stsb   STS-B   sentence1 / sentence2        score          regression (float)
//   qqp    QQP     question1 / question2        is_duplicate   0, 1
//   mnli   MNLI    sentence1 / sentence2        gold_label     contradiction, entailment, neutral
//   qnli   QNLI    question / sentence          label          entailment, not_entailment
//   rte    RTE     sentence1 / sentence2        label          entailment, not_entailment
//   wnli   WNLI    sentence1 / sentence2        label          0, 1
// (the label orders are those of the transformers GLUE processors; a config may give its own.)
//
// Errors (IoError) name the file and line: missing file (and the fix: scripts/fetch_glue.sh), a row
// with too few or too many columns, an empty sentence, a label not in the label list (listing the
// valid ones), a regression target that is not a finite number, text that is not UTF-8. QQP's
// train.tsv has a few rows with missing columns: skip_malformed counts and skips malformed rows
// (wrong column count, empty sentence, empty line inside the file) instead; label and score errors
// are never skipped (they mean a wrong label list or file). Empty lines at the end are ignored.
// Unknown task or split: ConfigError with the closest valid name.
// Tested by tests/light/test_text_datasets.cpp on fixtures in tests/data/glue.
#pragma once

#include <string>
#include <vector>

#include "datasets/text_classification.h"

namespace smyrf {

struct GlueTask {
  std::string name;                         // "cola", "sst2", ... (lower case, as in configs)
  std::string dir;                          // "CoLA", "SST-2", ...
  std::vector<std::string> default_labels;  // empty: regression
  std::vector<std::string> dev_splits;      // {"dev"}; MNLI {"dev_matched", "dev_mismatched"}
  bool pair = false;                        // two sentences per example
};

// All nine tasks in GLUE order: cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli.
const std::vector<GlueTask>& glue_tasks();
// Unknown name: ConfigError listing the tasks and the closest one.
const GlueTask& glue_task(const std::string& name);

struct GlueLoadOptions {
  std::vector<std::string> labels;  // label strings in index order; empty = the task's default
  bool skip_malformed = false;
};

// Reads GLUE_DIR/<task dir>/<split>.tsv; split is "train" or one of task.dev_splits.
TextSplit load_glue_split(const std::string& glue_dir, const std::string& task, const std::string& split,
                          const GlueLoadOptions& options = {});

}  // namespace smyrf
