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
#include "experiments/engines/finetune.h"

namespace smyrf {
namespace {

struct ImdbPlan : FinetunePlan {
  std::string dir;
  ImdbLoadOptions load;
};

class ImdbPipeline : public TypedPipeline<ImdbPlan> {
 public:
  std::string name() const override { return "imdb"; }
  bool checkpoints() const override { return true; }

 protected:
  ImdbPlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    ImdbPlan data;
    data.data.max_seq_len = 512;
    JsonReader r(config.value("data", nlohmann::json::object()), "data", ctx.source);
    r.require("dir", data.dir).get_enum("br", data.load.br, kImdbBreakNames);
    data.data.read(r);
    r.finish();
    plan_finetune(config, ctx, data);
    for (const char* part : {"train/neg", "train/pos", "test/neg", "test/pos"})
      if (!std::filesystem::is_directory(std::filesystem::path(data.dir) / part))
        throw IoError(fmt::format("config '{}': 'data.dir' is '{}', which has no {}/ folder; run scripts/fetch_imdb.sh "
                                  "(needs internet) or point data.dir at the aclImdb directory", ctx.source, data.dir,
                                  part));
    return data;
  }

  RunResult run_plan(const ImdbPlan& data, const RunContext& ctx) const override {
    FinetuneSplits splits;
    splits.task = "imdb";
    splits.train = load_imdb_split(data.dir, "train", data.load);
    splits.evals.emplace_back("", load_imdb_split(data.dir, "test", data.load));
    return run_finetune(data, ctx, splits);
  }
};

}  // namespace

const Pipeline& imdb_pipeline() {
  static const ImdbPipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
