// glue: fine-tune a pretrained encoder on one GLUE task (datasets/glue.h) and score its dev set(s)
// with the task's metrics; the engine and the shared sections are in finetune.h.
//   "data": {"task": "cola" | "sst2" | "mrpc" | "stsb" | "qqp" | "mnli" | "qnli" | "rte" | "wnli",
//            "dir": GLUE_DIR (as scripts/fetch_glue.sh writes it),
//            "labels": [...] (label strings in class order; default: the task's, datasets/glue.h),
//            "skip_malformed": false (QQP's train.tsv has a few short rows: skip and count them),
//            "max_seq_len": 128, "max_train_examples": 0, "max_eval_examples": 0}
// A paper-table config sweeps data.task over the nine tasks. MNLI is scored on dev_matched and
// dev_mismatched (metrics accuracy_matched, accuracy_mismatched). Tested by tests/test_finetune.cpp.
#include <fmt/format.h>

#include <filesystem>

#include "core/util/check.h"
#include "core/util/json_options.h"
#include "datasets/glue.h"
#include "experiments/engines/finetune.h"

namespace smyrf {
namespace {

struct GluePlan : FinetunePlan {
  std::string task, dir;
  GlueLoadOptions load;
};

void read_glue_data(const nlohmann::json& config, const std::string& source, GluePlan& plan) {
  JsonReader r(config.value("data", nlohmann::json::object()), "data", source);
  r.require("task", plan.task).require("dir", plan.dir).get("labels", plan.load.labels);
  r.get("skip_malformed", plan.load.skip_malformed);
  plan.data.read(r);
  r.finish();
  try {
    glue_task(plan.task);
  } catch (const ConfigError& e) {
    throw ConfigError(fmt::format("config '{}': 'data.task': {}", source, e.what()));
  }
}

// "dev_matched" -> "matched": the metric-name suffix of a dev split ("" for the only one).
std::string split_suffix(const GlueTask& task, const std::string& split) {
  if (task.dev_splits.size() == 1) return "";
  return split.rfind("dev_", 0) == 0 ? split.substr(4) : split;
}

class GluePipeline : public TypedPipeline<GluePlan> {
 public:
  std::string name() const override { return "glue"; }
  bool checkpoints() const override { return true; }

 protected:
  GluePlan make_plan(const nlohmann::json& config, const RunContext& ctx) const override {
    GluePlan data;
    read_glue_data(config, ctx.source, data);
    plan_finetune(config, ctx, data);
    const GlueTask& task = glue_task(data.task);
    std::vector<std::string> files{"train"};
    files.insert(files.end(), task.dev_splits.begin(), task.dev_splits.end());
    for (const std::string& split : files) {
      const std::filesystem::path file = std::filesystem::path(data.dir) / task.dir / (split + ".tsv");
      if (!std::filesystem::is_regular_file(file))
        throw IoError(fmt::format("config '{}': 'data.dir' is '{}', which has no {}; run scripts/fetch_glue.sh {} (needs "
                                  "internet) or point data.dir at a GLUE directory", ctx.source, data.dir,
                                  (std::filesystem::path(task.dir) / (split + ".tsv")).string(), data.dir));
    }
    return data;
  }

  RunResult run_plan(const GluePlan& data, const RunContext& ctx) const override {
    const GlueTask& task = glue_task(data.task);
    FinetuneSplits splits;
    splits.task = task.name;
    splits.train = load_glue_split(data.dir, task.name, "train", data.load);
    for (const std::string& split : task.dev_splits)
      splits.evals.emplace_back(split_suffix(task, split), load_glue_split(data.dir, task.name, split, data.load));
    RunResult result = run_finetune(data, ctx, splits);
    result.metrics["train_rows_skipped"] = {static_cast<double>(splits.train.skipped), "count", false};
    return result;
  }
};

}  // namespace

const Pipeline& glue_pipeline() {
  static const GluePipeline kPipeline;
  return kPipeline;
}

}  // namespace smyrf
