// Training checkpoints; see checkpoint.h.
#include "experiments/engines/checkpoint.h"

#include <fmt/format.h>
#include <torch/cuda.h>
#include <torch/serialize/archive.h>

#include <map>
#include <mutex>

#include "core/util/check.h"
#include "core/util/file_writer.h"
#include "core/util/json_options.h"
#include "core/util/json_parse.h"
#include "core/util/text_file.h"

namespace smyrf {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string output_sibling(const json& config, const RunContext& ctx, const std::string& kind) {
  JsonReader r(config.value("output", json::object()), "output", ctx.source);
  std::string path;
  std::map<std::string, std::string> folders{{"checkpoints", ""}, {"samples", ""}, {"models", ""}};
  r.get("path", path);
  for (auto& [name, folder] : folders) r.get(name.c_str(), folder);
  r.finish();
  const std::string& chosen = folders.at(kind);
  if (!chosen.empty()) return chosen;
  if (!ctx.output_path.empty()) path = ctx.output_path;
  fs::path p(path);
  if (p.extension() == ".h5") p.replace_extension();
  return p.string() + "." + kind;
}

std::string checkpoints_root(const json& config, const RunContext& ctx) {
  return output_sibling(config, ctx, "checkpoints");
}

at::Device training_device(const json& config, const std::string& source, bool require_available) {
  const std::string device = config.value("device", std::string("cpu"));
  if (device == "cpu") return at::Device(at::kCPU);
  if (device != "cuda")
    throw ConfigError(fmt::format("config '{}': 'device' is '{}'; training runs on \"cpu\" or \"cuda\"", source, device));
  if (require_available && !torch::cuda::is_available())
    throw ConfigError(fmt::format("config '{}': 'device' is \"cuda\" but this machine has no usable CUDA device; use "
                                  "\"cpu\"", source));
  return at::Device(at::kCUDA, 0);
}

void require_device_available(const at::Device& device, const std::string& source) {
  if (device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError(fmt::format("config '{}': 'device' is \"cuda\" but this machine has no usable CUDA device; use "
                                  "\"cpu\"", source));
}

json run_identity(json config) {
  config.erase("output");
  config.erase("threads");
  return config;
}

void write_checkpoint(const fs::path& run_dir, const json& identity, const json& state,
                      const std::function<void(const fs::path& dir)>& fill) {
  const fs::path tmp = run_dir / "ckpt.tmp", current = run_dir / "ckpt", old = run_dir / "ckpt.old";
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    fill(tmp);
    write_whole_file((tmp / "state.json").string(), json{{"identity", identity}, {"state", state}}.dump(1),
                     "checkpoint file");
  } catch (...) {
    std::error_code ignored;  // a half-written copy only takes space (a full disk's, perhaps)
    fs::remove_all(tmp, ignored);
    throw;
  }
  // A crash at any point leaves ckpt or ckpt.old complete.
  fs::remove_all(old);
  if (fs::exists(current)) fs::rename(current, old);
  fs::rename(tmp, current);
  fs::remove_all(old);
}

void remove_checkpoint(const fs::path& run_dir) {
  for (const char* name : {"ckpt", "ckpt.old"}) fs::remove_all(run_dir / name);
}

std::optional<fs::path> usable_checkpoint(const fs::path& run_dir, const json& identity) {
  for (const char* name : {"ckpt", "ckpt.old"}) {
    const fs::path dir = run_dir / name;
    if (!fs::is_regular_file(dir / "state.json")) continue;
    const json saved = read_json_file_or_discarded((dir / "state.json").string());
    if (saved.is_object() && saved.contains("identity") && saved["identity"] == identity) return dir;
    fmt::print(stderr, "checkpoint '{}' was made with another config: starting over\n", dir.string());
    return std::nullopt;
  }
  return std::nullopt;
}

json checkpoint_state(const fs::path& dir) {
  const std::string path = (dir / "state.json").string();
  const json saved = parse_json(read_text_file(path, "checkpoint state"), {fmt::format("checkpoint state '{}'", path),
                                                                         "delete the checkpoint folder to start over"});
  if (!saved.is_object() || !saved.contains("state"))
    throw IoError(fmt::format("checkpoint state '{}' has no \"state\"; delete the checkpoint folder to start over", path));
  return saved.at("state");
}

void save_generators(torch::serialize::OutputArchive& archive, std::vector<at::Generator> generators) {
  for (size_t i = 0; i < generators.size(); ++i) {
    std::lock_guard<std::mutex> lock(generators[i].mutex());
    archive.write("generator_" + std::to_string(i), generators[i].get_state(), /*is_buffer=*/true);
  }
}

void load_generators(torch::serialize::InputArchive& archive, std::vector<at::Generator> generators) {
  for (size_t i = 0; i < generators.size(); ++i) {
    at::Tensor state;
    archive.read("generator_" + std::to_string(i), state, /*is_buffer=*/true);
    std::lock_guard<std::mutex> lock(generators[i].mutex());
    generators[i].set_state(state);
  }
}

}  // namespace smyrf
