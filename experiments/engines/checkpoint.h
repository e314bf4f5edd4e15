// Training checkpoints shared by the training pipelines (glue/imdb fine-tuning, celeba_biggan):
// where they live, when one may be resumed, and the atomic write that leaves a complete
// checkpoint behind whatever moment the process is killed.
//
// Layout: <checkpoints root>/<run_id>/ckpt/ holds what the pipeline writes (weights as safetensors,
// optimizer and generator states in a LibTorch archive) plus state.json = {"identity": the run's
// config minus output/threads, "state": the pipeline's own JSON}. A checkpoint made by another
// config is not resumed: the run starts over (and says so on stderr).
// Tested through tests/test_finetune.cpp and tests/test_celeba_biggan.cpp (killed runs resume to
// the same result as uninterrupted ones).
#pragma once

#include <ATen/core/Generator.h>
#include <c10/core/Device.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "experiments/runner/pipeline.h"

namespace torch::serialize {
class InputArchive;
class OutputArchive;
}  // namespace torch::serialize

namespace smyrf {

// Folders beside the results file: output.<kind>, else <output.path without .h5>.<kind> (the
// runner's output file wins). kind: "checkpoints", "samples" (sample grids) or "models" (trained models).
std::string output_sibling(const nlohmann::json& config, const RunContext& context, const std::string& kind);
std::string checkpoints_root(const nlohmann::json& config, const RunContext& context);

// "cpu" or "cuda" from the config's `device`; ConfigError otherwise, and for "cuda" without a GPU
// when require_available (validation on a machine without one passes).
at::Device training_device(const nlohmann::json& config, const std::string& source, bool require_available = true);
// ConfigError when `device` is CUDA and this machine has none (a plan made elsewhere may ask for it).
void require_device_available(const at::Device& device, const std::string& source);

// The parts of a config that decide the computation (not where results go, nor the thread count).
nlohmann::json run_identity(nlohmann::json config);

// Writes run_dir/ckpt atomically: `fill` writes its files into a fresh temporary folder, then
// state.json is added and the folder replaces the previous checkpoint by renames.
void write_checkpoint(const std::filesystem::path& run_dir, const nlohmann::json& identity, const nlohmann::json& state,
                      const std::function<void(const std::filesystem::path& dir)>& fill);

// Removes run_dir's checkpoint (ckpt/ and ckpt.old/) once a run no longer needs it.
void remove_checkpoint(const std::filesystem::path& run_dir);

// The run's checkpoint folder when it was made by the same config; nullopt otherwise.
std::optional<std::filesystem::path> usable_checkpoint(const std::filesystem::path& run_dir,
                                                       const nlohmann::json& identity);
// The pipeline's state JSON of a checkpoint folder.
nlohmann::json checkpoint_state(const std::filesystem::path& dir);

// Generator states in an archive under generator_<i>, so that a resumed run draws the same numbers.
void save_generators(torch::serialize::OutputArchive& archive, std::vector<at::Generator> generators);
void load_generators(torch::serialize::InputArchive& archive, std::vector<at::Generator> generators);

}  // namespace smyrf
