// Tests for the GLUE and IMDB loaders (datasets/glue.h, datasets/imdb.h) on the fixtures in
// tests/data/glue and tests/data/aclImdb, which are written by us in the real layouts: every task
// and split loads with the right counts, first and last examples (checked by hand against the
// files), pair/single shape and labels; bare quotes stay verbatim; label orders come from options;
// STS-B scores are floats; the aclImdb tree is read in neg-then-pos numeric-id order with "<br />"
// replaced or kept. Every error is provoked on a file written into a per-test temporary directory
// (BOM + CRLF, short and long rows, empty lines and sentences, unknown labels, bad scores, wrong
// headers, invalid UTF-8, stray or misplaced review files) and must name the file (and line).
// Run: smyrf_tests_light --gtest_filter='*Glue*:*Imdb*:*TextDataset*'
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/util/check.h"
#include "datasets/glue.h"
#include "datasets/imdb.h"
#include "tests/support/light_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::contains;
using test::error_of;

const std::string kGlueDir = std::string(SMYRF_TEST_DATA_DIR) + "/glue";
const std::string kImdbDir = std::string(SMYRF_TEST_DATA_DIR) + "/aclImdb";

// ---------------------------------------------------------------------------------------------
// Task table

TEST(GlueTasks, NineTasksInGlueOrderWithTheirLayouts) {
  const std::vector<GlueTask>& tasks = glue_tasks();
  std::vector<std::string> names, dirs;
  for (const GlueTask& t : tasks) {
    names.push_back(t.name);
    dirs.push_back(t.dir);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli"}));
  EXPECT_EQ(dirs, (std::vector<std::string>{"CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI"}));
  for (const GlueTask& t : tasks) {
    SCOPED_TRACE(t.name);
    EXPECT_EQ(t.pair, t.name != "cola" && t.name != "sst2");
    EXPECT_EQ(t.default_labels.empty(), t.name == "stsb");
    const std::vector<std::string> dev_splits =
        t.name == "mnli" ? std::vector<std::string>{"dev_matched", "dev_mismatched"} : std::vector<std::string>{"dev"};
    EXPECT_EQ(t.dev_splits, dev_splits);
  }
  EXPECT_EQ(glue_task("mnli").default_labels, (std::vector<std::string>{"contradiction", "entailment", "neutral"}));
  EXPECT_EQ(glue_task("qnli").default_labels, (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_EQ(glue_task("rte").default_labels, (std::vector<std::string>{"entailment", "not_entailment"}));
  EXPECT_EQ(glue_task("qqp").default_labels, (std::vector<std::string>{"0", "1"}));
  EXPECT_EQ(&glue_task("wnli"), &tasks.back());
}

TEST(GlueTasks, UnknownTaskSuggestsTheClosestAndListsAll) {
  std::string message = error_of<ConfigError>([] { glue_task("sst-2"); });
  EXPECT_TRUE(contains(message, "unknown GLUE task 'sst-2'"));
  EXPECT_TRUE(contains(message, "did you mean 'sst2'?"));
  EXPECT_TRUE(contains(message, "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli"));
  message = error_of<ConfigError>([] { load_glue_split(kGlueDir, "mnli-mm", "dev_mismatched"); });
  EXPECT_TRUE(contains(message, "did you mean 'mnli'?"));
  message = error_of<ConfigError>([] { glue_task("imdb"); });
  EXPECT_FALSE(contains(message, "did you mean"));
  EXPECT_TRUE(contains(message, "unknown GLUE task 'imdb'"));
}

// ---------------------------------------------------------------------------------------------
// The fixtures

struct Example {
  std::string a;
  std::string b;  // "" for single-sentence tasks
  double label;
};

struct SplitCase {
  std::string task, split;
  size_t count;
  Example first, last;
};

// First and last rows of each fixture file, read off the files by hand. Labels are indices into
// the task's default label order (MNLI: contradiction, entailment, neutral; QNLI/RTE: entailment,
// not_entailment), or the STS-B score.
const std::vector<SplitCase>& fixture_cases() {
  // clang-format off
  static const std::vector<SplitCase> cases = {
      {"cola", "train", 32,
       {"The children played in the garden after lunch.", "", 1},
       {"She asked whether the shop was still open.", "", 1}},
      {"cola", "dev", 16,
       {"The cat is sleeping on the warm windowsill.", "", 1},
       {"Several birds were singing in the tall trees.", "", 1}},
      {"sst2", "train", 32,
       {"a warm , funny and wonderfully acted film that left me smiling for days . ", "", 1},
       {"a lovely , heartfelt movie that is pure pleasure to watch . ", "", 1}},
      {"sst2", "dev", 16,
       {"one of the most enjoyable and rewarding films of the decade . ", "", 1},
       {"brilliant from the first scene to the last , a true triumph . ", "", 1}},
      {"mrpc", "train", 32,
       {"The city council approved a new budget for road repairs on Tuesday.",
        "On Tuesday the city council passed a new budget to repair roads.", 1},
       {"The mayor opened the new children's hospital on Friday.",
        "On Tuesday the city council passed a new budget to repair roads.", 0}},
      {"mrpc", "dev", 16,
       {"Unemployment fell to its lowest level in a decade.", "The jobless rate dropped to a ten-year low.", 1},
       {"The band announced a reunion concert for next summer.", "The judges decided the contract was not valid.", 0}},
      {"stsb", "train", 32,
       {"A man is playing a guitar.", "A man is playing the guitar on stage.", 4.6},
       {"A man is fishing from a small boat.", "Prices of oil rose again this week.", 0.0}},
      {"stsb", "dev", 16,
       {"A woman is dancing in the rain.", "A woman is dancing in the rain with an umbrella.", 4.2},
       {"A kitten is playing with a ball of yarn.", "A kitten plays with a ball of wool.", 4.8}},
      {"qqp", "train", 32,
       {"How do I learn to play the guitar quickly?", "What is the fastest way to learn guitar?", 1},
       {"What are good exercises for back pain?", "What should I do to speak English better?", 0}},
      {"qqp", "dev", 16,
       {"\"Why do onions make you cry?", "Why does cutting onions make my eyes water?", 1},
       {"How do solar panels produce electricity?", "What is the right way to wash a cast iron skillet?", 0}},
      {"mnli", "train", 32,
       {"The old man sat on the porch and watched the sun go down over the hills.", "The man watched the sunset.", 1},
       {"The boy laughed as the puppy licked his face and wagged its tail.",
        "The boy was crying because the puppy bit him.", 0}},
      {"mnli", "dev_matched", 12,
       {"The new library will have more computers and longer opening hours.", "The library will be open for longer.",
        1},
       {"He said \"no thanks\" to the waiter and asked for the bill.", "He ordered another dessert from the waiter.",
        0}},
      {"mnli", "dev_mismatched", 12,
       {"Thank you for your gift, which helped us buy new books for the school.", "The gift helped buy books.", 1},
       {"The pilots reported the problem to air traffic control at once.",
        "The pilots never contacted air traffic control.", 0}},
      {"qnli", "train", 32,
       {"What is the largest planet in the solar system?",
        "Jupiter is the largest planet in the solar system, more than eleven times as wide as Earth.", 0},
       {"Which planet is called the Red Planet?", "The Pacific Ocean is the largest and deepest of the world's oceans.",
        1}},
      {"qnli", "dev", 16,
       {"What is the chemical symbol for gold?", "The chemical symbol for gold is Au, from the Latin word aurum.", 0},
       {"How many hours are in a day?", "The pyramids of Giza stand on the edge of Cairo in Egypt.", 1}},
      {"rte", "train", 32,
       {"The company opened its first store in Tokyo in 2015 and now has twenty shops in Japan.",
        "The company has shops in Japan.", 0},
       {"The painter spent three years on the ceiling of the chapel.", "The painter worked on the chapel ceiling.", 0}},
      {"rte", "dev", 16,
       {"The school won a national prize for its science programme.", "The school won a prize.", 0},
       {"The startup, founded by two students, now has offices in five countries.",
        "The startup was founded by students.", 0}},
      {"wnli", "train", 32,
       {"The trophy would not fit in the suitcase because it was too big.", "The trophy was too big.", 1},
       {"The sculpture rolled off the shelf because it was not level.", "The shelf was not level.", 1}},
      {"wnli", "dev", 16,
       {"The firemen arrived after the police because they were coming from far away.",
        "The firemen were coming from far away.", 1},
       {"The rock fell on the bottle and it shattered.", "The rock fell on the bottle and the bottle shattered.", 1}},
  };
  // clang-format on
  return cases;
}

void expect_example(const TextExample& got, const Example& want, bool pair) {
  EXPECT_EQ(got.text_a, want.a);
  ASSERT_EQ(got.text_b.has_value(), pair);
  if (pair) {
    EXPECT_EQ(*got.text_b, want.b);
  }
  EXPECT_DOUBLE_EQ(got.label, want.label);
}

TEST(GlueFixture, EveryTaskAndSplitLoadsWithCountsFirstAndLastExamples) {
  size_t covered = 0;
  for (const GlueTask& task : glue_tasks()) {
    std::vector<std::string> splits = {"train"};
    splits.insert(splits.end(), task.dev_splits.begin(), task.dev_splits.end());
    for (const std::string& split : splits) {
      SCOPED_TRACE(task.name + "/" + split);
      const auto it = std::find_if(fixture_cases().begin(), fixture_cases().end(),
                                   [&](const SplitCase& c) { return c.task == task.name && c.split == split; });
      ASSERT_NE(it, fixture_cases().end());
      ++covered;
      const TextSplit data = load_glue_split(kGlueDir, task.name, split);
      const std::string path = kGlueDir + "/" + task.dir + "/" + split + ".tsv";
      EXPECT_EQ(data.source, path);
      ASSERT_EQ(data.examples.size(), it->count);
      EXPECT_EQ(data.skipped, 0u);
      EXPECT_EQ(data.label_names, task.default_labels);
      EXPECT_EQ(data.is_regression(), task.name == "stsb");
      expect_example(data.examples.front(), it->first, task.pair);
      expect_example(data.examples.back(), it->last, task.pair);
      // CoLA has no header, so its first example is line 1; the others start on line 2.
      const size_t first_line = task.name == "cola" ? 1 : 2;
      EXPECT_EQ(data.examples.front().origin, path + ":" + std::to_string(first_line));
      EXPECT_EQ(data.examples.back().origin, path + ":" + std::to_string(first_line + it->count - 1));
      for (const TextExample& e : data.examples) {
        EXPECT_EQ(e.text_b.has_value(), task.pair) << e.origin;
        EXPECT_FALSE(e.text_a.empty()) << e.origin;
        EXPECT_EQ(e.text_a.find_first_of("\t\r\n"), std::string::npos) << e.origin;
      }
    }
  }
  EXPECT_EQ(covered, fixture_cases().size());
}

// The fixtures also feed fine-tuning smoke tests: every class must be (nearly) equally frequent.
TEST(GlueFixture, ClassesAreBalancedInEverySplit) {
  for (const SplitCase& c : fixture_cases()) {
    if (c.task == "stsb") continue;
    SCOPED_TRACE(c.task + "/" + c.split);
    const TextSplit data = load_glue_split(kGlueDir, c.task, c.split);
    std::vector<size_t> counts(data.label_names.size(), 0);
    for (const TextExample& e : data.examples) ++counts.at(static_cast<size_t>(e.label));
    const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
    EXPECT_GT(*lo, 0u);
    EXPECT_LE(*hi - *lo, 1u);
  }
}

TEST(GlueFixture, BareQuotesAreKeptVerbatim) {
  // An unbalanced quote opening a field: a CSV reader with quoting would swallow the following
  // rows into this field and return fewer examples.
  const TextSplit qqp = load_glue_split(kGlueDir, "qqp", "dev");
  ASSERT_EQ(qqp.examples.size(), 16u);
  EXPECT_EQ(qqp.examples[0].text_a, "\"Why do onions make you cry?");
  EXPECT_EQ(qqp.examples[1].text_a, "How do I learn to swim as an adult?");
  const TextSplit sst2 = load_glue_split(kGlueDir, "sst2", "train");
  EXPECT_EQ(sst2.examples[14].text_a, "the trailer promises \" pure fun , \" but the film is a dreary chore . ");
  EXPECT_EQ(sst2.examples[14].label, 0);
  EXPECT_EQ(sst2.examples[15].text_a,
            "the director calls it \" a small film , \" but it is a great and generous one . ");
  EXPECT_EQ(sst2.examples[15].label, 1);
}

TEST(GlueFixture, LabelOrderFromOptionsReplacesTheDefault) {
  GlueLoadOptions options;
  options.labels = {"entailment", "neutral", "contradiction"};  // Hugging Face's glue/mnli order
  const TextSplit mnli = load_glue_split(kGlueDir, "mnli", "dev_matched", options);
  EXPECT_EQ(mnli.label_names, options.labels);
  EXPECT_EQ(mnli.examples.front().label, 0);  // entailment
  EXPECT_EQ(mnli.examples[1].label, 1);       // neutral
  EXPECT_EQ(mnli.examples.back().label, 2);   // contradiction
  const TextSplit defaults = load_glue_split(kGlueDir, "mnli", "dev_matched");
  EXPECT_EQ(defaults.examples.front().label, 1);
  EXPECT_EQ(defaults.examples[1].label, 2);
  EXPECT_EQ(defaults.examples.back().label, 0);

  options.labels = {"1", "0"};
  const TextSplit sst2 = load_glue_split(kGlueDir, "sst2", "dev", options);
  EXPECT_EQ(sst2.examples.front().label, 0);  // "1" is now index 0
  EXPECT_EQ(sst2.examples[1].label, 1);
}

TEST(GlueFixture, StsbScoresAreFloatTargets) {
  const TextSplit stsb = load_glue_split(kGlueDir, "stsb", "train");
  EXPECT_TRUE(stsb.is_regression());
  EXPECT_TRUE(stsb.label_names.empty());
  bool fractional = false;
  for (const TextExample& e : stsb.examples) {
    EXPECT_GE(e.label, 0.0) << e.origin;
    EXPECT_LE(e.label, 5.0) << e.origin;
    fractional = fractional || e.label != std::floor(e.label);
  }
  EXPECT_TRUE(fractional);
  EXPECT_DOUBLE_EQ(stsb.examples[2].label, 2.4);  // "2.400"
  EXPECT_DOUBLE_EQ(stsb.examples[3].label, 5.0);  // "5.000"
}

TEST(GlueFixture, UnknownSplitListsTheValidOnes) {
  std::string message = error_of<ConfigError>([] { load_glue_split(kGlueDir, "mnli", "dev"); });
  EXPECT_TRUE(contains(message, "unknown split 'dev' for GLUE task 'mnli'"));
  EXPECT_TRUE(contains(message, "train, dev_matched, dev_mismatched"));
  message = error_of<ConfigError>([] { load_glue_split(kGlueDir, "rte", "test"); });
  EXPECT_TRUE(contains(message, "test labels are hidden"));
  message = error_of<ConfigError>([] { load_glue_split(kGlueDir, "rte", "trian"); });
  EXPECT_TRUE(contains(message, "did you mean 'train'?"));
}

TEST(GlueFixture, LabelListsAreValidated) {
  GlueLoadOptions options;
  options.labels = {"0", "1"};
  std::string message = error_of<ConfigError>([&] { load_glue_split(kGlueDir, "stsb", "dev", options); });
  EXPECT_TRUE(contains(message, "'stsb' is a regression task"));
  options.labels = {"0", "1", "0"};
  message = error_of<ConfigError>([&] { load_glue_split(kGlueDir, "cola", "dev", options); });
  EXPECT_TRUE(contains(message, "label '0' is listed twice"));
}

// ---------------------------------------------------------------------------------------------
// Files written per test: layouts, and every error

class GlueFile : public test::TempDirTest {
 protected:
  // Writes `bytes` (exactly) to dir_/<task dir>/<split>.tsv and returns the path.
  std::string write(const std::string& task_dir, const std::string& split, const std::string& bytes) {
    const fs::path p = dir_ / task_dir / (split + ".tsv");
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
  std::string dir() const { return dir_.string(); }
};

TEST_F(GlueFile, BomCrlfAndTrailingEmptyLinesAreStripped) {
  const std::string path = write("SST-2", "train",
                                 "\xEF\xBB\xBFsentence\tlabel\r\n"
                                 "a fine film . \t1\r\n"
                                 "\xE2\x80\x9C"
                                 "dull\xE2\x80\x9D and slow . \t0\r\n"
                                 "\r\n\r\n");
  const TextSplit data = load_glue_split(dir(), "sst2", "train");
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].text_a, "a fine film . ");
  EXPECT_EQ(data.examples[0].label, 1);
  EXPECT_EQ(data.examples[1].text_a,
            "\xE2\x80\x9C"
            "dull\xE2\x80\x9D and slow . ");  // UTF-8 quotes kept
  EXPECT_EQ(data.examples[1].label, 0);       // "0\r" would be an unknown label
  EXPECT_EQ(data.examples[1].origin, path + ":3");
  EXPECT_EQ(data.skipped, 0u);

  // CoLA has no header: the BOM sits in front of the first row's source column.
  write("CoLA", "dev", "\xEF\xBB\xBFsx01\t1\t\tThe bus left on time.\r\nsx01\t0\t*\tThe bus on time left the.\r\n");
  const TextSplit cola = load_glue_split(dir(), "cola", "dev");
  ASSERT_EQ(cola.examples.size(), 2u);
  EXPECT_EQ(cola.examples[0].text_a, "The bus left on time.");
  EXPECT_EQ(cola.examples[1].text_a, "The bus on time left the.");
  EXPECT_EQ(cola.examples[1].label, 0);
}

TEST_F(GlueFile, MissingDirectoryNamesTheFetchScript) {
  const std::string missing = dir() + "/no_such_glue";
  const std::string message = error_of<IoError>([&] { load_glue_split(missing, "rte", "train"); });
  EXPECT_TRUE(contains(message, "GLUE directory '" + missing + "' not found"));
  EXPECT_TRUE(contains(message, "run scripts/fetch_glue.sh DIR or set data.dir"));
  EXPECT_TRUE(contains(error_of<IoError>([] { load_glue_split("", "rte", "train"); }), "set data.dir"));
}

TEST_F(GlueFile, MissingFileNamesItsPathAndTheFix) {
  write("RTE", "train", "index\tsentence1\tsentence2\tlabel\n0\tA b c d e.\tA b c.\tentailment\n");
  const std::string message = error_of<IoError>([&] { load_glue_split(dir(), "rte", "dev"); });
  EXPECT_TRUE(contains(message, dir() + "/RTE/dev.tsv' not found"));
  EXPECT_TRUE(contains(message, "scripts/fetch_glue.sh " + dir()));
  EXPECT_NO_THROW(load_glue_split(dir(), "rte", "train"));
}

TEST_F(GlueFile, ShortOrLongRowIsAnErrorNamingFileAndLine) {
  const std::string header = "index\tquestion\tsentence\tlabel\n";
  const std::string good = "0\tWho wrote the letter?\tShe wrote the letter.\tentailment\n";
  std::string path = write("QNLI", "train", header + good + "1\tWho sang the song?\tnot_entailment\n" + good);
  std::string message = error_of<IoError>([&] { load_glue_split(dir(), "qnli", "train"); });
  EXPECT_TRUE(contains(message, path + ":3: 3 columns instead of 4"));
  EXPECT_TRUE(contains(message, "index, question, sentence, label"));
  EXPECT_TRUE(contains(message, "skip_malformed"));

  path = write("QNLI", "train", header + good + good + "2\tWho?\tHim.\tThem.\tentailment\n");
  message = error_of<IoError>([&] { load_glue_split(dir(), "qnli", "train"); });
  EXPECT_TRUE(contains(message, path + ":4: 5 columns instead of 4"));
}

TEST_F(GlueFile, SkipMalformedSkipsAndCountsBadRows) {
  const std::string path = write("QQP", "train",
                                 "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
                                 "1\t1\t2\tHow do I bake bread at home?\tWhat is a recipe for bread?\t1\n"
                                 "2\t3\t4\tHow do I fix my bike?\n"       // too few columns
                                 "\n"                                     // empty line inside the file
                                 "3\t5\t6\t\tWhy is the sea salty?\t0\n"  // empty question1
                                 "4\t7\t8\tWhat is the capital of Peru?\tWhich city is Peru's capital?\t1\n"
                                 "\n");
  GlueLoadOptions options;
  options.skip_malformed = true;
  const TextSplit data = load_glue_split(dir(), "qqp", "train", options);
  EXPECT_EQ(data.skipped, 3u);
  ASSERT_EQ(data.examples.size(), 2u);
  EXPECT_EQ(data.examples[0].origin, path + ":2");
  EXPECT_EQ(data.examples[1].origin, path + ":6");
  EXPECT_EQ(*data.examples[1].text_b, "Which city is Peru's capital?");

  // Without the option each of them is an error at its own line.
  std::string message = error_of<IoError>([&] { load_glue_split(dir(), "qqp", "train"); });
  EXPECT_TRUE(contains(message, path + ":3: 4 columns instead of 6"));
  write("QQP", "train",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "1\t1\t2\tHow do I bake bread at home?\tWhat is a recipe for bread?\t1\n"
        "\n"
        "4\t7\t8\tWhat is the capital of Peru?\tWhich city is Peru's capital?\t1\n");
  message = error_of<IoError>([&] { load_glue_split(dir(), "qqp", "train"); });
  EXPECT_TRUE(contains(message, path + ":3: empty line inside the file"));
  write("QQP", "train",
        "id\tqid1\tqid2\tquestion1\tquestion2\tis_duplicate\n"
        "3\t5\t6\tWhy is the sea salty?\t\t0\n");
  message = error_of<IoError>([&] { load_glue_split(dir(), "qqp", "train"); });
  EXPECT_TRUE(contains(message, path + ":2: empty sentence in column 'question2'"));
}

TEST_F(GlueFile, UnknownLabelListsTheValidLabelsAndIsNeverSkipped) {
  const std::string path = write("RTE", "dev",
                                 "index\tsentence1\tsentence2\tlabel\n"
                                 "0\tThe shop opened in May.\tThe shop opened.\tentailment\n"
                                 "1\tThe shop opened in May.\tThe shop closed.\tcontradiction\n");
  GlueLoadOptions options;
  options.skip_malformed = true;
  const std::string message = error_of<IoError>([&] { load_glue_split(dir(), "rte", "dev", options); });
  EXPECT_TRUE(contains(message, path + ":3: label 'contradiction' in column 'label'"));
  EXPECT_TRUE(contains(message, "[entailment, not_entailment]"));
  EXPECT_TRUE(contains(message, "data.labels"));

  write("CoLA", "train", "sx01\t1\t\tThe bus left on time.\nsx01\tyes\t\tThe bus left late.\n");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_glue_split(dir(), "cola", "train"); }),
                       "train.tsv:2: label 'yes' in column 'label' is not one of the labels [0, 1]"));
}

TEST_F(GlueFile, ScoreThatIsNotAFiniteNumberIsAnError) {
  const std::string header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n";
  const std::string row = "0\tmain-news\tMSRpar\t2012test\t0001\tnone\tnone\tA cat sat.\tA cat was sitting.\t";
  for (const std::string bad : {"high", "nan", "inf", "4.5x", " 4.5", "", "1e999"}) {
    SCOPED_TRACE("score '" + bad + "'");
    const std::string path = write("STS-B", "dev", header + row + "3.25\n" + row + bad + "\n");
    const std::string message = error_of<IoError>([&] { load_glue_split(dir(), "stsb", "dev"); });
    EXPECT_TRUE(contains(message, path + ":3: the score '" + bad + "' in column 'score' is not a finite number"));
  }
  write("STS-B", "dev", header + row + "3.25\n" + row + "-0.5e1\n");
  const TextSplit data = load_glue_split(dir(), "stsb", "dev");
  EXPECT_DOUBLE_EQ(data.examples[0].label, 3.25);
  EXPECT_DOUBLE_EQ(data.examples[1].label, -5.0);  // range is the metric's business, not the parser's
}

TEST_F(GlueFile, WrongHeaderNamesTheMissingColumn) {
  // The SST-2 layout where QNLI is expected, and a QNLI header with a renamed column.
  std::string path = write("QNLI", "dev", "sentence\tlabel\na fine film . \t1\n");
  std::string message = error_of<IoError>([&] { load_glue_split(dir(), "qnli", "dev"); });
  EXPECT_TRUE(contains(message, path + ":1: the header has no column 'question' (it has: sentence, label)"));
  path = write("QNLI", "dev", "index\tquestion\ttext\tlabel\n0\tWho?\tHim.\tentailment\n");
  message = error_of<IoError>([&] { load_glue_split(dir(), "qnli", "dev"); });
  EXPECT_TRUE(contains(message, "no column 'sentence'"));
  // MNLI's train file has one annotator column, dev files five: both are read by name.
  path = write("MNLI", "dev_matched", "index\tsentence1\tsentence2\tlabel1\tlabel\n0\tA.\tB.\tneutral\tneutral\n");
  message = error_of<IoError>([&] { load_glue_split(dir(), "mnli", "dev_matched"); });
  EXPECT_TRUE(contains(message, "no column 'gold_label'"));
}

TEST_F(GlueFile, InvalidUtf8NamesFileAndLine) {
  const std::string path = write("SST-2", "dev", "sentence\tlabel\na fine film . \t1\na caf\xE9 film . \t0\n");
  const std::string message = error_of<IoError>([&] { load_glue_split(dir(), "sst2", "dev"); });
  EXPECT_TRUE(contains(message, path + ":3: not UTF-8"));
  EXPECT_TRUE(contains(message, "invalid UTF-8 at byte 6"));
}

TEST_F(GlueFile, EmptyOrHeaderOnlyFileHasNoExamples) {
  std::string path = write("WNLI", "dev", "");
  EXPECT_TRUE(
      contains(error_of<IoError>([&] { load_glue_split(dir(), "wnli", "dev"); }), path + ": the file is empty"));
  path = write("WNLI", "dev", "index\tsentence1\tsentence2\tlabel\n");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_glue_split(dir(), "wnli", "dev"); }), path + ": no examples"));
}

// ---------------------------------------------------------------------------------------------
// IMDB

std::string file_name(const std::string& path) { return fs::path(path).filename().string(); }
std::string folder_name(const std::string& path) { return fs::path(path).parent_path().filename().string(); }

TEST(ImdbFixture, NegThenPosInNumericIdOrderWithLabels) {
  for (const std::string split : {"train", "test"}) {
    SCOPED_TRACE(split);
    const TextSplit data = load_imdb_split(kImdbDir, split);
    EXPECT_EQ(data.source, kImdbDir + "/" + split);
    EXPECT_EQ(data.label_names, (std::vector<std::string>{"neg", "pos"}));
    EXPECT_FALSE(data.is_regression());
    ASSERT_EQ(data.examples.size(), 24u);
    for (size_t i = 0; i < data.examples.size(); ++i) {
      const TextExample& e = data.examples[i];
      const bool pos = i >= 12;
      EXPECT_EQ(e.label, pos ? 1 : 0) << e.origin;
      EXPECT_FALSE(e.text_b.has_value());
      EXPECT_EQ(folder_name(e.origin), pos ? "pos" : "neg");
      // ids 0..11 in numeric order: 10_* and 11_* come after 9_*, not after 1_*.
      EXPECT_EQ(file_name(e.origin).substr(0, file_name(e.origin).find('_')), std::to_string(i % 12)) << e.origin;
    }
  }
}

TEST(ImdbFixture, FirstAndLastReviews) {
  const TextSplit train = load_imdb_split(kImdbDir, "train");
  EXPECT_EQ(train.examples.front().origin, kImdbDir + "/train/neg/0_1.txt");
  EXPECT_EQ(train.examples.front().text_a,
            "This was one of the worst films I have ever sat through. The plot made no sense and the acting was "
            "wooden from start to finish.");
  EXPECT_EQ(train.examples.back().origin, kImdbDir + "/train/pos/11_7.txt");
  EXPECT_EQ(train.examples.back().text_a,
            "A joyful, uplifting movie with a great soundtrack. I would happily watch it again tomorrow.");
  const TextSplit test = load_imdb_split(kImdbDir, "test");
  EXPECT_EQ(test.examples.front().origin, kImdbDir + "/test/neg/0_1.txt");
  EXPECT_EQ(test.examples.back().origin, kImdbDir + "/test/pos/11_7.txt");
  EXPECT_EQ(test.examples.back().text_a, "An excellent, inspiring drama that deserves every award it gets.");
  // A bare quote in a review stays as it is.
  EXPECT_EQ(train.examples[11].text_a,
            "Boring, predictable and far too long. The \"comedy\" scenes are embarrassing and the drama is hollow.");
}

TEST(ImdbFixture, LineBreaksBecomeSpacesOrAreKept) {
  const TextSplit spaced = load_imdb_split(kImdbDir, "train");
  ImdbLoadOptions keep;
  keep.br = ImdbLineBreaks::kKeep;
  const TextSplit kept = load_imdb_split(kImdbDir, "train", keep);
  ASSERT_EQ(spaced.examples.size(), kept.examples.size());
  EXPECT_EQ(spaced.examples[1].origin, kImdbDir + "/train/neg/1_3.txt");
  EXPECT_EQ(kept.examples[1].text_a,
            "I wanted to like it, but it was boring and far too long.<br /><br />The jokes fell flat and the ending "
            "was a mess. Avoid.");
  EXPECT_EQ(spaced.examples[1].text_a,
            "I wanted to like it, but it was boring and far too long.  The jokes fell flat and the ending was a mess. "
            "Avoid.");
  size_t with_breaks = 0;
  for (size_t i = 0; i < kept.examples.size(); ++i) {
    with_breaks += kept.examples[i].text_a.find("<br />") != std::string::npos;
    EXPECT_EQ(spaced.examples[i].text_a.find("<br"), std::string::npos) << spaced.examples[i].origin;
  }
  EXPECT_EQ(with_breaks, 4u);
}

TEST(ImdbFixture, UnsupAndSplitLevelFilesAreIgnored) {
  // The fixture has them, like the real tree: train/unsup/0_0.txt (rating 0, which neg/ or pos/
  // would refuse), labeledBow.feat and urls_pos.txt beside neg/ and pos/.
  ASSERT_TRUE(fs::is_regular_file(kImdbDir + "/train/unsup/0_0.txt"));
  ASSERT_TRUE(fs::is_regular_file(kImdbDir + "/train/labeledBow.feat"));
  ASSERT_TRUE(fs::is_regular_file(kImdbDir + "/train/urls_pos.txt"));
  const TextSplit data = load_imdb_split(kImdbDir, "train");
  EXPECT_EQ(data.examples.size(), 24u);
  for (const TextExample& e : data.examples) EXPECT_EQ(e.origin.find("unsup"), std::string::npos) << e.origin;
  const std::string message = error_of<ConfigError>([] { load_imdb_split(kImdbDir, "unsup"); });
  EXPECT_TRUE(contains(message, "unknown IMDB split 'unsup'"));
  EXPECT_TRUE(contains(message, "train, test"));
}

TEST(ImdbFixture, UnknownBrModeIsAConfigError) {
  ImdbLoadOptions options;
  const std::string message = error_of<ConfigError>(
      [&] { JsonReader(nlohmann::json{{"br", "spaces"}}, "data", "c.json").get_enum("br", options.br, kImdbBreakNames); });
  EXPECT_TRUE(contains(message, "'data.br' is \"spaces\", which is not a valid choice (did you mean 'space'?)"))
      << message;
}

// A copy of the fixture tree per test, to break in one place.
class ImdbTree : public test::TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    fs::copy(kImdbDir, dir_ / "aclImdb", fs::copy_options::recursive);
  }
  std::string root() const { return (dir_ / "aclImdb").string(); }
  std::string write(const std::string& relative, const std::string& bytes) {
    const fs::path p = dir_ / "aclImdb" / relative;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << bytes;
    return p.string();
  }
};

TEST_F(ImdbTree, CopyLoadsLikeTheFixture) { EXPECT_EQ(load_imdb_split(root(), "test").examples.size(), 24u); }

TEST_F(ImdbTree, MissingDirectoryOrFolderNamesTheFix) {
  const std::string missing = (dir_ / "nowhere").string();
  std::string message = error_of<IoError>([&] { load_imdb_split(missing, "train"); });
  EXPECT_TRUE(contains(message, "aclImdb directory '" + missing + "' not found"));
  EXPECT_TRUE(contains(message, "scripts/fetch_imdb.sh"));
  EXPECT_TRUE(contains(message, "data.dir"));
  // The folder above aclImdb/ is a common mistake: no train/ there.
  message = error_of<IoError>([&] { load_imdb_split(dir_.string(), "train"); });
  EXPECT_TRUE(contains(message, (dir_ / "train" / "neg").string() + "' not found"));
  fs::remove_all(dir_ / "aclImdb" / "test" / "pos");
  message = error_of<IoError>([&] { load_imdb_split(root(), "test"); });
  EXPECT_TRUE(contains(message, root() + "/test/pos' not found"));
}

TEST_F(ImdbTree, FileThatIsNotIdUnderscoreRatingIsAnError) {
  for (const std::string name :
       {"notes.txt", "12_8.text", "12-8.txt", "12_.txt", "_8.txt", "x12_8.txt", "12_8_1.txt", ".DS_Store"}) {
    SCOPED_TRACE(name);
    const std::string path = write("train/pos/" + name, "A great film.");
    const std::string message = error_of<IoError>([&] { load_imdb_split(root(), "train"); });
    EXPECT_TRUE(contains(message, path + ": not an aclImdb review file"));
    EXPECT_TRUE(contains(message, "<id>_<rating>.txt"));
    fs::remove(path);
  }
  fs::create_directories(dir_ / "aclImdb" / "test" / "neg" / "13_2.txt");  // a folder, not a file
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_imdb_split(root(), "test"); }), "not an aclImdb review file"));
}

TEST_F(ImdbTree, RatingMustMatchItsFolder) {
  struct Case {
    std::string relative, expected;
  };
  for (const Case& c : {Case{"train/pos/12_3.txt", "rating 3 contradicts its folder pos/"},
                        Case{"train/pos/12_5.txt", "rating 5 contradicts its folder pos/"},
                        Case{"train/neg/12_7.txt", "rating 7 contradicts its folder neg/"},
                        Case{"train/neg/12_0.txt", "rating 0 is outside 1..10"},
                        Case{"train/pos/12_11.txt", "rating 11 is outside 1..10"}}) {
    SCOPED_TRACE(c.relative);
    const std::string path = write(c.relative, "Some review text.");
    EXPECT_TRUE(contains(error_of<IoError>([&] { load_imdb_split(root(), "train"); }), path + ": " + c.expected));
    fs::remove(path);
  }
  write("train/pos/12_10.txt", "A late addition, and a great film.");
  const TextSplit data = load_imdb_split(root(), "train");
  ASSERT_EQ(data.examples.size(), 25u);
  EXPECT_EQ(file_name(data.examples.back().origin), "12_10.txt");
}

TEST_F(ImdbTree, EmptyReviewIsAnError) {
  std::string path = write("test/neg/12_2.txt", "");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_imdb_split(root(), "test"); }), path + ": empty review"));
  path = write("test/neg/12_2.txt", " \n\t ");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_imdb_split(root(), "test"); }), path + ": empty review"));
  // Only line breaks: empty once they become spaces, but text when kept.
  path = write("test/neg/12_2.txt", "<br /><br />");
  EXPECT_TRUE(contains(error_of<IoError>([&] { load_imdb_split(root(), "test"); }), path + ": empty review"));
  ImdbLoadOptions keep;
  keep.br = ImdbLineBreaks::kKeep;
  EXPECT_EQ(load_imdb_split(root(), "test", keep).examples[12].text_a, "<br /><br />");
}

TEST_F(ImdbTree, LineBreakVariantsAndLookalikes) {
  write("test/neg/12_2.txt", "Bad.<br>Worse.<br/>Worst.<br />The <bright> end<br");
  const TextSplit data = load_imdb_split(root(), "test");
  EXPECT_EQ(data.examples[12].text_a, "Bad. Worse. Worst. The <bright> end<br");
}

TEST_F(ImdbTree, InvalidUtf8NamesTheFile) {
  const std::string path = write("train/neg/12_1.txt", "Awful \xC3( film.");
  const std::string message = error_of<IoError>([&] { load_imdb_split(root(), "train"); });
  EXPECT_TRUE(contains(message, path + ": not UTF-8"));
}

TEST(TextDatasetFixtures, GlueAndImdbTextsAreValidForTokenizers) {
  // Every fixture text is non-empty, has 5..30 words (what the smoke fine-tuning expects) and no
  // control characters; IMDB reviews are longer.
  const auto words = [](const std::string& s) {
    size_t n = 0;
    bool in_word = false;
    for (char c : s) {
      const bool space = c == ' ';
      n += !space && !in_word;
      in_word = !space;
    }
    return n;
  };
  for (const SplitCase& c : fixture_cases()) {
    const TextSplit data = load_glue_split(kGlueDir, c.task, c.split);
    for (const TextExample& e : data.examples) {
      for (const std::string* text : {&e.text_a, e.text_b ? &*e.text_b : nullptr}) {
        if (text == nullptr) continue;
        EXPECT_GE(words(*text), 5u) << e.origin << ": " << *text;
        EXPECT_LE(words(*text), 30u) << e.origin << ": " << *text;
        EXPECT_TRUE(std::none_of(text->begin(), text->end(), [](char ch) { return ch >= 0 && ch < 0x20; })) << e.origin;
      }
    }
  }
  for (const std::string split : {"train", "test"}) {
    for (const TextExample& e : load_imdb_split(kImdbDir, split).examples) {
      EXPECT_GE(words(e.text_a), 10u) << e.origin;
    }
  }
}

}  // namespace
}  // namespace smyrf
