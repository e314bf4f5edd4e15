// The training engine (experiments/engines/training_loop.h) with a toy task: a linear model fitted
// by SGD to noisy targets, where every micro-batch draws its noise from the task's own generator and
// its data row from LibTorch's default generator, so that a resume which forgot a generator, the
// optimizer state or the data position would give other numbers. Checked: micro-batches per step
// (accumulation, groups cut short where the data ends), curve points (window means, step numbers,
// latest values), the checkpoint cadence, and that a run that failed after a checkpoint resumes to
// the bits of an uninterrupted run, while a changed config starts over.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/linear.h>
#include <torch/optim/sgd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "experiments/engines/training_loop.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace training_loop_test {

namespace fs = std::filesystem;
using nlohmann::json;

struct ToyOptions {
  int64_t epoch_micro_batches = 5;  // micro-batches per epoch: the last one closes its group
  int64_t fail_at_step = -1;        // accumulate() throws at this step (a killed run)
  int64_t ask_checkpoint_at = -1;   // after_step asks for a checkpoint after this many steps
};

class ToyTask : public TrainingTask {
 public:
  explicit ToyTask(ToyOptions options)
      : options_(options), model_(torch::nn::LinearOptions(3, 1)),
        optimizer_(model_->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9)),
        noise_gen_(at::make_generator<at::CPUGeneratorImpl>(5)) {
    at::manual_seed(3);
    at::NoGradGuard no_grad;
    for (auto& p : model_->parameters()) p.fill_(0.1);
  }

  MicroBatchLog accumulate(int64_t step) override {
    if (step == options_.fail_at_step) throw std::runtime_error("killed");
    ++micro_batches_in_step[step];
    const at::Tensor x_3 = at::randn({3});  // LibTorch's default generator
    const at::Tensor target = x_3.sum() + 0.1 * at::randn({1}, noise_gen_);
    const at::Tensor loss = (model_->forward(x_3.unsqueeze(0)).squeeze() - target).pow(2).sum();
    loss.backward();
    const double value = loss.item<double>();
    losses.push_back(value);
    ++position_;
    return {{{"loss", value}, {"half_loss", value / 2}}, position_ % options_.epoch_micro_batches == 0};
  }
  NamedValues optimizer_step(int64_t step) override {
    optimizer_.step();
    optimizer_.zero_grad();
    return {{"lr_like", static_cast<double>(step)}};
  }
  std::string progress_label() const override { return "step"; }
  bool after_step(int64_t steps_done, bool, Curves&) override { return steps_done == options_.ask_checkpoint_at; }
  void finish(int64_t steps_done, Curves& curves) override { curves["finished_at"].push_back(steps_done); }
  json position() const override { return {{"position", position_}}; }
  void set_position(const json& j) override { position_ = j.at("position"); }
  TrainingParts parts() override {
    return {{{"linear", model_.ptr().get()}}, {{"sgd", &optimizer_}}, {noise_gen_}};
  }
  at::Tensor weights() const { return model_->weight.detach().clone(); }

  std::map<int64_t, int64_t> micro_batches_in_step;
  std::vector<double> losses;

 private:
  ToyOptions options_;
  torch::nn::Linear model_;
  torch::optim::SGD optimizer_;
  at::Generator noise_gen_;
  int64_t position_ = 0;
};

TrainingSchedule toy_schedule() {
  TrainingSchedule s;
  s.total_steps = 7;
  s.accumulation = 2;
  s.log_every = 3;
  s.checkpoint_every = 2;
  s.step_curve = "at_step";
  return s;
}

int64_t checkpoint_step(const fs::path& run_dir) {
  std::ifstream in(run_dir / "ckpt" / "state.json");
  if (!in) return -1;
  return json::parse(in).at("state").at("step");
}

const json kIdentity = {{"pipeline", "toy"}, {"seed", 1}};

TEST(TrainingLoop, AccumulatesCutsGroupsAtTheDataEndAndLogsWindowMeans) {
  const fs::path dir = test::fresh_dir("training_loop_windows");
  ToyTask task({});
  const TrainingOutcome out = run_training(task, toy_schedule(), dir, kIdentity, RunContext{});
  // epochs of 5 micro-batches in groups of 2: 2, 2, 1 (cut), 2, 2, 1 (cut), 2
  const std::map<int64_t, int64_t> expected{{0, 2}, {1, 2}, {2, 1}, {3, 2}, {4, 2}, {5, 1}, {6, 2}};
  EXPECT_EQ(task.micro_batches_in_step, expected);
  ASSERT_EQ(task.losses.size(), 12u);
  EXPECT_EQ(out.steps, 7);
  EXPECT_EQ(out.resumed_from, 0);
  // points after steps 3, 6 and 7 (the last): windows of 5, 5 and 2 micro-batches
  EXPECT_EQ(out.curves.at("at_step"), (std::vector<double>{3, 6, 7}));
  EXPECT_EQ(out.curves.at("lr_like"), (std::vector<double>{2, 5, 6}));
  const auto& l = task.losses;
  const std::vector<double> means{(l[0] + l[1] + l[2] + l[3] + l[4]) / 5, (l[5] + l[6] + l[7] + l[8] + l[9]) / 5,
                                  (l[10] + l[11]) / 2};
  ASSERT_EQ(out.curves.at("loss").size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(out.curves.at("loss")[i], means[i], 1e-12 * std::abs(means[i]));
  EXPECT_NEAR(out.curves.at("half_loss")[0], means[0] / 2, 1e-12 * means[0]);
  EXPECT_EQ(out.curves.at("finished_at"), std::vector<double>{7});
  EXPECT_EQ(out.curves.count("step_time_s"), 0u) << "only where the schedule asks";
  EXPECT_GT(out.train_time_s, 0);
  EXPECT_EQ(checkpoint_step(dir), 6) << "every 2 steps, never after the last unless asked";
}

TEST(TrainingLoop, CheckpointsWhereTheTaskAsksAndAtTheEndWhenKept) {
  const fs::path dir = test::fresh_dir("training_loop_cadence");
  ToyOptions options;
  options.ask_checkpoint_at = 3;
  options.fail_at_step = 4;
  TrainingSchedule schedule = toy_schedule();
  schedule.checkpoint_every = 0;
  schedule.step_time_curve = true;
  ToyTask failing(options);
  EXPECT_THROW(run_training(failing, schedule, dir, kIdentity, RunContext{}), std::runtime_error);
  EXPECT_EQ(checkpoint_step(dir), 3);

  schedule.checkpoint_at_end = true;
  ToyTask kept({});
  const TrainingOutcome out = run_training(kept, schedule, dir, kIdentity, RunContext{});
  EXPECT_EQ(out.resumed_from, 3);
  EXPECT_EQ(checkpoint_step(dir), 7);
  EXPECT_EQ(out.curves.at("step_time_s").size(), out.curves.at("at_step").size());
}

TEST(TrainingLoop, AFailedRunResumesToTheBitsOfAnUninterruptedOne) {
  ToyTask whole({});
  const TrainingOutcome a = run_training(whole, toy_schedule(), test::fresh_dir("training_loop_whole"), kIdentity,
                                         RunContext{});

  const fs::path dir = test::fresh_dir("training_loop_resumed");
  ToyOptions options;
  options.fail_at_step = 5;  // after the checkpoint of step 4
  ToyTask failing(options);
  EXPECT_THROW(run_training(failing, toy_schedule(), dir, kIdentity, RunContext{}), std::runtime_error);
  ASSERT_EQ(checkpoint_step(dir), 4);
  ToyTask resumed({});
  const TrainingOutcome b = run_training(resumed, toy_schedule(), dir, kIdentity, RunContext{});
  EXPECT_EQ(b.resumed_from, 4);
  EXPECT_EQ(b.steps, 7);
  EXPECT_EQ(a.curves, b.curves) << "curves, windows and position must all come back";
  EXPECT_TRUE(at::equal(whole.weights(), resumed.weights()));

  // Another config: the checkpoint is not used.
  ToyTask other({});
  const json changed = {{"pipeline", "toy"}, {"seed", 2}};
  EXPECT_EQ(run_training(other, toy_schedule(), dir, changed, RunContext{}).resumed_from, 0);
}

}  // namespace training_loop_test
}  // namespace smyrf
