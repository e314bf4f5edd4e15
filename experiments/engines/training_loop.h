// The training engine: the loop every training pipeline runs (fine-tuning in finetune.cpp, BigGAN
// in pipelines/celeba_biggan.cpp). A pipeline supplies a TrainingTask (its micro-batch, its
// optimizer step, what happens after a step such as epoch ends, evaluation and sample grids, and
// its position in the data); the engine owns everything around it:
//   resume       a run whose checkpoint was made by the same config continues from it;
//   accumulation schedule.accumulation micro-batches per optimizer step (fewer where the task says
//                its data ends, e.g. at an epoch's end);
//   cadence      a checkpoint every checkpoint_every steps and wherever the task asks, never after
//                the last step unless checkpoint_at_end;
//   progress     ctx.progress after every optimizer step, with the task's label;
//   curves       every value a micro-batch reports is averaged over the log window of log_every
//                optimizer steps (and at the last step); a point also records the step number,
//                the values the optimizer step reports as they are then (e.g. lr) and, where asked,
//                step_time_s;
//   timing       train_time_s counts the task's micro-batches and optimizer steps only, not
//                evaluation, sample grids or checkpoints;
//   memory       one peak-memory window over the loop and the task's finish();
//   interrupts   when the process was asked to stop (experiments/runner/interrupt.h: Slurm's
//                signal before a time limit, requeue), a checkpoint after the current step, then
//                Interrupted.
//
// Checkpoint (checkpoint.h, written atomically): run_dir/ckpt/ holds <name>.safetensors for each of
// the task's modules, optimizers.pt (its optimizers and random generators, plus LibTorch's default
// generators) and state.json {"identity", "state": {"step", "train_time_s", "window", "curves",
// "task": the task's position}}. A resumed run gives the result of an uninterrupted one.
// Tested by tests/test_training_loop.cpp (a toy task: accumulation, windows, cadence, resume after
// a failure equals an uninterrupted run) and through tests/test_finetune.cpp and
// tests/test_celeba_biggan.cpp (killed runs resume to the same results).
#pragma once

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "experiments/runner/pipeline.h"

namespace torch::nn {
class Module;
}
namespace torch::optim {
class Optimizer;
}

namespace smyrf {

using Curves = std::map<std::string, std::vector<double>>;
using NamedValues = std::vector<std::pair<std::string, double>>;

struct TrainingSchedule {
  int64_t total_steps = 0;          // optimizer steps; 0 = no training (the task's finish() still runs)
  int64_t accumulation = 1;         // micro-batches per optimizer step
  int64_t log_every = 10;           // optimizer steps per curve point
  int64_t checkpoint_every = 0;     // optimizer steps between checkpoints; 0 = only where the task asks
  bool checkpoint_at_end = false;   // also after the last step (a kept checkpoint is then the final state)
  std::string step_curve = "step";  // the curve that holds each point's step number
  bool step_time_curve = false;     // also log step_time_s, the mean seconds per optimizer step
  at::Device device = at::Device(at::kCPU);  // where the peak-memory window looks
};

struct MicroBatchLog {
  NamedValues values;         // averaged over the log window, each over the micro-batches that gave it
  bool closes_group = false;  // the data ends here (an epoch): step now even if the group is short
};

// What a checkpoint saves of a task besides its position: modules (as <name>.safetensors), optimizers
// and random generators (in optimizers.pt), all by pointer into the task.
struct TrainingParts {
  std::vector<std::pair<std::string, torch::nn::Module*>> modules;
  std::vector<std::pair<std::string, torch::optim::Optimizer*>> optimizers;
  std::vector<at::Generator> generators;
};

class TrainingTask {
 public:
  virtual ~TrainingTask() = default;
  // Forward and backward of one micro-batch of optimizer step `step` (0-based).
  virtual MicroBatchLog accumulate(int64_t step) = 0;
  // The optimizer step that ends step `step`; returns values a curve point records as they are.
  virtual NamedValues optimizer_step(int64_t step) = 0;
  // What the progress bar says the steps are (e.g. "epoch 2, step").
  virtual std::string progress_label() const = 0;
  // After `steps_done` optimizer steps (`last`: the schedule's end): epoch ends, evaluation, sample
  // grids. Returns true when a checkpoint should be written now, whatever the cadence.
  virtual bool after_step(int64_t steps_done, bool last, Curves& curves) = 0;
  // After the loop (also when nothing was left to train), inside the peak-memory window.
  virtual void finish(int64_t steps_done, Curves& curves) = 0;
  // The task's position in its data and its running sums, as JSON a checkpoint carries.
  virtual nlohmann::json position() const = 0;
  virtual void set_position(const nlohmann::json& position) = 0;
  virtual TrainingParts parts() = 0;
};

struct TrainingOutcome {
  explicit TrainingOutcome(const at::Device& device) : memory(device) {}
  int64_t steps = 0;         // optimizer steps done in all, resumed ones included
  int64_t resumed_from = 0;  // 0 when the run started afresh
  double train_time_s = 0;
  Curves curves;
  PeakMemoryWindow memory;   // closed: add_metrics reports it
};

// Runs `task` to schedule.total_steps, resuming from run_dir's checkpoint when `identity` (the config
// that decides the computation, checkpoint.h's run_identity) matches the one it was made by.
TrainingOutcome run_training(TrainingTask& task, const TrainingSchedule& schedule, const std::filesystem::path& run_dir,
                             const nlohmann::json& identity, const RunContext& context);

}  // namespace smyrf
