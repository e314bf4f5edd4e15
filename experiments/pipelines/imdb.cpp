// imdb: fine-tune a pretrained encoder on aclImdb's 25k training reviews (datasets/imdb.h) and
// score accuracy on the 25k test reviews, as the SMYRF paper does (there is no separate dev set).
// The engine and the shared sections are in finetune.h; eval.attention_variants gives the
// interchangeability rows (SMYRF-trained scored with dense, dense-trained with SMYRF).
//   "data": {"dir": ACLIMDB_DIR (as scripts/fetch_imdb.sh writes it), "br": "space" | "keep",
//            "max_seq_len": 512, "max_train_examples": 0, "max_eval_examples": 0}
// Tested by tests/test_finetune.cpp.
#include <fmt/format.h>

#include <filesystem>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "datasets/imdb.h"
#include "experiments/pipelines/finetune.h"

namespace smyrf {
namespace {

struct ImdbData {
  std::string dir;
  ImdbLoadOptions load;
  FinetuneDataOptions common;
  static ImdbData from_json(const nlohmann::json& config, const std::string& source) {
    ImdbData d;
    d.common.max_seq_len = 512;
    JsonReader r(config.value("data", nlohmann::json::object()), "data", source);
    r.require("dir", d.dir).get_choice("br", d.load.br, {"space", "keep"});
    d.common.read(r);
    r.finish();
    return d;
  }
};

class ImdbPipeline : public Pipeline {
 public:
  std::string name() const override { return "imdb"; }

  void validate(const nlohmann::json& config, const RunContext& ctx) const override {
    const ImdbData data = ImdbData::from_json(config, ctx.source);
    validate_finetune_config(config, ctx, data.common);
    for (const char* part : {"train/neg", "train/pos", "test/neg", "test/pos"})
      if (!std::filesystem::is_directory(std::filesystem::path(data.dir) / part))
        throw IoError(fmt::format("config '{}': 'data.dir' is '{}', which has no {}/ folder; run scripts/fetch_imdb.sh "
                                  "(needs internet) or point data.dir at the aclImdb directory", ctx.source, data.dir,
                                  part));
  }

  RunResult run(const nlohmann::json& config, const RunContext& ctx) const override {
    const ImdbData data = ImdbData::from_json(config, ctx.source);
    FinetuneSplits splits;
    splits.task = "imdb";
    splits.train = load_imdb_split(data.dir, "train", data.load);
    splits.evals.emplace_back("", load_imdb_split(data.dir, "test", data.load));
    return run_finetune(config, ctx, data.common, splits);
  }
};

}  // namespace

const Pipeline& imdb_pipeline() {
  static const ImdbPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
