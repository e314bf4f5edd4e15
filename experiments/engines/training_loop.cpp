// The training engine; see training_loop.h.
#include "experiments/engines/training_loop.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>
#include <torch/serialize/archive.h>

#include <chrono>
#include <sstream>

#include "core/models/module_state.h"
#include "core/models/safetensors.h"
#include "core/util/file_writer.h"
#include "experiments/engines/checkpoint.h"
#include "experiments/runner/interrupt.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Checkpoints of another layout (an older version of this engine) are not resumed: the run starts over.
constexpr const char* kCheckpointFormat = "training_loop/1";

// The running sums of the current log window.
struct LogWindow {
  std::map<std::string, std::pair<double, int64_t>> values;  // name -> (sum, micro-batches)
  int64_t steps = 0;
  double time_s = 0;
};

// What the engine carries from one optimizer step to the next, and through a checkpoint.
struct LoopState {
  int64_t step = 0;
  double train_time_s = 0;
  LogWindow window;
  Curves curves;

  json to_json(const json& task_position) const {
    json values = json::object();
    for (const auto& [name, sum_count] : window.values) values[name] = {sum_count.first, sum_count.second};
    return {{"step", step},
            {"train_time_s", train_time_s},
            {"window", {{"values", values}, {"steps", window.steps}, {"time_s", window.time_s}}},
            {"curves", curves},
            {"task", task_position}};
  }
  static LoopState from_json(const json& j) {
    LoopState s;
    s.step = j.at("step");
    s.train_time_s = j.at("train_time_s");
    const json& w = j.at("window");
    for (const auto& [name, sum_count] : w.at("values").items())
      s.window.values[name] = {sum_count.at(0).get<double>(), sum_count.at(1).get<int64_t>()};
    s.window.steps = w.at("steps");
    s.window.time_s = w.at("time_s");
    s.curves = j.at("curves").get<Curves>();
    return s;
  }
};

// The task's generators, then LibTorch's default CPU generator (hidden dropout, initialisations) and,
// when training on CUDA, the device's.
std::vector<at::Generator> all_generators(const TrainingParts& parts, const at::Device& device) {
  std::vector<at::Generator> generators = parts.generators;
  generators.push_back(at::detail::getDefaultCPUGenerator());
  if (device.is_cuda()) generators.push_back(at::globalContext().defaultGenerator(device));
  return generators;
}

void save_parts(const fs::path& dir, const TrainingParts& parts, const at::Device& device) {
  for (const auto& [name, module] : parts.modules)
    write_safetensors((dir / (name + ".safetensors")).string(), module_state(*module));
  torch::serialize::OutputArchive archive;
  for (const auto& [name, optimizer] : parts.optimizers) {
    torch::serialize::OutputArchive optimizer_archive;
    optimizer->save(optimizer_archive);
    archive.write(name, optimizer_archive);
  }
  save_generators(archive, all_generators(parts, device));
  // Through a FileWriter, so that a full disk is reported as such (LibTorch's writer only says "failed").
  std::ostringstream bytes;
  archive.save_to(bytes);
  write_whole_file((dir / "optimizers.pt").string(), bytes.str(), "checkpoint file");
}

void load_parts(const fs::path& dir, const TrainingParts& parts, const at::Device& device) {
  for (const auto& [name, module] : parts.modules) load_module_state(*module, (dir / (name + ".safetensors")).string());
  torch::serialize::InputArchive archive;
  archive.load_from((dir / "optimizers.pt").string());
  for (const auto& [name, optimizer] : parts.optimizers) {
    torch::serialize::InputArchive optimizer_archive;
    archive.read(name, optimizer_archive);
    optimizer->load(optimizer_archive);
  }
  load_generators(archive, all_generators(parts, device));
}

// Adds the window's means to the curves and empties it.
void log_point(LoopState& state, const TrainingSchedule& schedule, const NamedValues& latest) {
  for (const auto& [name, sum_count] : state.window.values)
    state.curves[name].push_back(sum_count.first / static_cast<double>(sum_count.second));
  state.curves[schedule.step_curve].push_back(static_cast<double>(state.step));
  for (const auto& [name, value] : latest) state.curves[name].push_back(value);
  if (schedule.step_time_curve)
    state.curves["step_time_s"].push_back(state.window.time_s / static_cast<double>(state.window.steps));
  state.window = LogWindow{};
}

// One optimizer step: its micro-batches, the step itself, the window and the log point.
void train_step(TrainingTask& task, const TrainingSchedule& schedule, LoopState& state) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t k = 0; k < schedule.accumulation; ++k) {
    const MicroBatchLog micro = task.accumulate(state.step);
    for (const auto& [name, value] : micro.values) {
      auto& [sum, count] = state.window.values[name];
      sum += value;
      ++count;
    }
    if (micro.closes_group) break;
  }
  const NamedValues latest = task.optimizer_step(state.step);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ++state.step;
  state.train_time_s += seconds;
  state.window.time_s += seconds;
  ++state.window.steps;
  if (state.step % schedule.log_every == 0 || state.step == schedule.total_steps) log_point(state, schedule, latest);
}

}  // namespace

TrainingOutcome run_training(TrainingTask& task, const TrainingSchedule& schedule, const fs::path& run_dir,
                             const json& identity, const RunContext& ctx) {
  TORCH_CHECK(schedule.accumulation >= 1 && schedule.log_every >= 1 && schedule.checkpoint_every >= 0 &&
                  schedule.total_steps >= 0,
              "run_training: accumulation and log_every must be >= 1, checkpoint_every and total_steps >= 0");
  json versioned_identity = identity;
  versioned_identity["checkpoint_format"] = kCheckpointFormat;
  const TrainingParts parts = task.parts();
  LoopState state;
  int64_t resumed_from = 0;
  if (schedule.total_steps > 0) {
    if (const auto ckpt = usable_checkpoint(run_dir, versioned_identity)) {
      load_parts(*ckpt, parts, schedule.device);
      const json saved = checkpoint_state(*ckpt);
      state = LoopState::from_json(saved);
      task.set_position(saved.at("task"));
      resumed_from = state.step;
      fmt::print(stderr, "resuming '{}' from step {} of {} ({})\n", ctx.run_id, state.step, schedule.total_steps,
                 ckpt->string());
    }
  }
  TrainingOutcome outcome(schedule.device);
  while (state.step < schedule.total_steps) {
    train_step(task, schedule, state);
    if (ctx.progress) ctx.progress(state.step, schedule.total_steps, task.progress_label());
    const bool last = state.step == schedule.total_steps;
    const bool asked = task.after_step(state.step, last, state.curves);
    const bool due = schedule.checkpoint_every > 0 && state.step % schedule.checkpoint_every == 0;
    const bool stop = !last && interrupt_requested();
    if (last ? schedule.checkpoint_at_end : (due || asked || stop))
      write_checkpoint(run_dir, versioned_identity, state.to_json(task.position()),
                       [&](const fs::path& dir) { save_parts(dir, parts, schedule.device); });
    if (stop)
      throw Interrupted(fmt::format("run '{}' stopped on signal {} after step {} of {}, checkpointed in '{}'",
                                    ctx.run_id, interrupt_signal(), state.step, schedule.total_steps,
                                    (run_dir / "ckpt").string()));
  }
  task.finish(state.step, state.curves);
  outcome.memory.close();
  outcome.steps = state.step;
  outcome.resumed_from = resumed_from;
  outcome.train_time_s = state.train_time_s;
  outcome.curves = std::move(state.curves);
  return outcome;
}

}  // namespace smyrf
