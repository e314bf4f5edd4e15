// Command family: images and image models.
//   smyrf fid-stats --weights W.safetensors --images IMAGES.h5 --output STATS.h5 [--dataset imgs]
//                   [--batch 50] [--features-output F.h5] [--device auto|cpu|cuda] [--threads N]
//                   [--no-progress]
//       pool3 statistics of the uint8 (N, 3, H, W) images in IMAGES.h5 (BigGAN-PyTorch make_hdf5
//       layout); --features-output also keeps the raw pool3 [N, 2048] and logits [N, 1008]
//   smyrf fid --stats A.h5 --stats B.h5              {"fid": x}
//   smyrf kid --features A.h5 --features B.h5 [--subsets 100] [--subset-size 1000] [--seed 0]
//                                                    {"kid_mean", "kid_std", "subsets", "subset_size"}
//   smyrf inception-score --features F.h5 [--splits 10]   {"is_mean", "is_std", "splits"}
//       Files that record different feature networks or weights are refused (exit 2); the metrics
//       are experiments/metrics/image_metrics.h.
//   smyrf biggan-forward --model biggan.json --weights G.safetensors --inputs IN.h5 -o OUT.h5
//                [--discriminator D.safetensors] [--attention JSON]
//       BigGAN G (and D) in eval mode, for checks against other implementations:
//         IN.h5: z [B, dim_z], y [B] (class ids as numbers); with --discriminator also x [B, 3, R, R]
//         OUT.h5: images [B, 3, R, R] (G(z, y)), with --discriminator also d_out [B] (D(x, y)); float32
//       --attention: G's method (default BigGAN's dense softmax).
// Tested by tests/python/test_fid.py (against pytorch-fid's formulas, scipy) and
// tests/python/test_biggan_convert.py (against a reference BigGAN in PyTorch).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <torch/cuda.h>

#include <algorithm>
#include <fstream>
#include <memory>
#include <optional>

#include "core/models/biggan.h"
#include "core/models/inception_fid.h"
#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/json_options.h"
#include "core/util/json_parse.h"
#include "core/util/progress.h"
#include "core/util/strings.h"
#include "core/util/tensor_threads.h"
#include "core/util/text_file.h"
#include "experiments/cli/attention_argument.h"
#include "experiments/cli/command_table.h"
#include "experiments/engines/biggan_common.h"
#include "experiments/io/tensor_h5.h"
#include "experiments/metrics/image_metrics.h"

namespace smyrf {
namespace {

struct ImageArgs {
  std::string weights, images, dataset = "imgs", output, features_output, device = "auto";
  int64_t batch = 50;
  int threads = 0;
  bool no_progress = false;
  std::vector<std::string> stats_files, feature_files;
  int64_t subsets = 100, subset_size = 1000, splits = 10;
  uint64_t seed = 0;
};

at::Device device_of(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? at::Device(at::kCUDA) : at::Device(at::kCPU);
  at::Device device(at::kCPU);
  try {
    device = at::Device(name);
  } catch (const c10::Error&) {
    throw ConfigError(fmt::format("--device '{}' is not a device: use auto, cpu or cuda[:i]", name));
  }
  if (device.is_cuda() && !torch::cuda::is_available())
    throw ConfigError(fmt::format("--device {}: no CUDA device is available", name));
  return device;
}

// pytorch-fid's threshold: below 2048 samples the 2048-d covariance is singular.
constexpr int64_t kFidMinRecommendedCount = 2048;

void warn_about_feature_files(const std::vector<std::string>& warnings, const std::vector<int64_t>& counts,
                              const std::vector<std::string>& paths) {
  for (const auto& w : warnings) fmt::print(stderr, "warning: {}\n", w);
  for (size_t i = 0; i < counts.size(); ++i)
    if (counts[i] >= 0 && counts[i] < kFidMinRecommendedCount)
      fmt::print(stderr, "warning: '{}' comes from {} images; below {} the covariance is singular and FID/KID are "
                 "not comparable with published numbers (report N with every score)\n",
                 paths[i], counts[i], kFidMinRecommendedCount);
}

void require_two(const std::vector<std::string>& files, const std::string& command, const std::string& option) {
  if (files.size() != 2)
    throw ConfigError(fmt::format("smyrf {} compares two files: give {} exactly twice (got {})", command, option,
                                         files.size()));
}

int fid_stats_command(const ImageArgs& c) {
  if (c.batch < 1) throw ConfigError(fmt::format("--batch must be >= 1, got {}", c.batch));
  const at::Device device = device_of(c.device);
  const H5File images = H5File::open(c.images, /*writable=*/false);
  if (!images.is_dataset(c.dataset))
    throw IoError(fmt::format("'{}' has no dataset '/{}': images are read as uint8 (N, 3, H, W) from /imgs "
                                     "(BigGAN-PyTorch's make_hdf5 layout); name another with --dataset",
                                     c.images, c.dataset));
  const std::vector<int64_t> dims = images.dataset_dims(c.dataset);
  if (dims.size() != 4 || dims[1] != 3 || dims[2] < 1 || dims[3] < 1)
    throw IoError(fmt::format("'{}': /{} has shape [{}], expected uint8 images (N, 3, H, W)", c.images,
                                     c.dataset, join([&] {
                                       std::vector<std::string> parts;
                                       for (int64_t d : dims) parts.push_back(std::to_string(d));
                                       return parts;
                                     }(), ", ")));
  try {
    images.read_array_u8(c.dataset, 0, 0);  // checks the element type, reads nothing
  } catch (const Error& e) {
    throw IoError(fmt::format("{} (images are stored as uint8 0..255, as BigGAN-PyTorch's make_hdf5 writes them)",
                                     e.what()));
  }
  const int64_t n = dims[0];
  if (n < 2) throw ConfigError(fmt::format("'{}' holds {} image(s); statistics need at least 2", c.images, n));

  set_torch_threads(c.threads);
  FidInceptionV3 net = FidInceptionV3Impl::load(c.weights);
  net->to(device);
  std::optional<ProgressBar> bar;
  if (!c.no_progress) bar.emplace("inception", n);
  int64_t shown_twentieths = 0;
  const auto progress = [&](int64_t done, int64_t total) {
    // A log gets about 20 lines, a terminal one redrawn line.
    if (!bar || (!bar->interactive() && done * 20 / total == shown_twentieths && done != total)) return;
    shown_twentieths = done * 20 / total;
    bar->update(done);
  };
  const InceptionBatchOutputs outputs = run_inception(
      net,
      [&](int64_t start, int64_t count) {
        H5Array<uint8_t> batch = images.read_array_u8(c.dataset, start, count);
        return at::from_blob(batch.data.data(), batch.dims, at::kByte).clone();
      },
      n, c.batch, progress);
  if (bar) bar->finish();
  const FeatureSource source = fid_feature_source(net, fmt::format("{}:/{}", c.images, c.dataset));
  write_feature_stats(c.output, feature_stats(outputs.pool3_B2048), source);
  if (!c.features_output.empty()) write_inception_features(c.features_output, outputs, source);
  fmt::print("{}: {} images ({}x{}) -> pool3 statistics {}{} (device {})\n", c.images, n, dims[2], dims[3], c.output,
             c.features_output.empty() ? "" : ", features " + c.features_output, device.str());
  warn_about_feature_files({}, {n}, {c.images});
  return 0;
}

int fid_command(const ImageArgs& c) {
  require_two(c.stats_files, "fid", "--stats");
  const StoredFeatureStats a = read_feature_stats(c.stats_files[0]);
  const StoredFeatureStats b = read_feature_stats(c.stats_files[1]);
  warn_about_feature_files(check_same_features(a.source, c.stats_files[0], b.source, c.stats_files[1]),
                           {a.stats.count, b.stats.count}, c.stats_files);
  nlohmann::ordered_json out = {{"fid", frechet_distance(a.stats, b.stats)}};
  fmt::print("{}\n", out.dump());
  return 0;
}

int kid_command(const ImageArgs& c) {
  require_two(c.feature_files, "kid", "--features");
  const at::Tensor a = read_feature_array(c.feature_files[0], "pool3");
  const at::Tensor b = read_feature_array(c.feature_files[1], "pool3");
  warn_about_feature_files(check_same_features(read_feature_source(c.feature_files[0]), c.feature_files[0],
                                               read_feature_source(c.feature_files[1]), c.feature_files[1]),
                           {}, {});
  const MeanStd k = kid(a, b, c.subsets, c.subset_size, c.seed);
  nlohmann::ordered_json out = {{"kid_mean", k.mean},
                                {"kid_std", k.std},
                                {"subsets", c.subsets},
                                {"subset_size", std::min({c.subset_size, a.size(0), b.size(0)})}};
  fmt::print("{}\n", out.dump());
  return 0;
}

int inception_score_command(const ImageArgs& c) {
  if (c.feature_files.size() != 1)
    throw ConfigError(fmt::format("smyrf inception-score takes one --features file, got {}", c.feature_files.size()));
  const MeanStd is = inception_score(read_feature_array(c.feature_files[0], "logits"), c.splits);
  nlohmann::ordered_json out = {{"is_mean", is.mean}, {"is_std", is.std}, {"splits", c.splits}};
  fmt::print("{}\n", out.dump());
  return 0;
}

struct BigGanForwardArgs {
  std::string model, weights, discriminator, inputs, output, attention;
};

int biggan_forward_command(const BigGanForwardArgs& args) {
  const nlohmann::json arch = parse_json(read_text_file(args.model, "BigGAN architecture file"),
                                        {fmt::format("'{}' (a biggan.json)", args.model),
                                         "re-run scripts/convert_biggan_pytorch.py"});
  JsonReader reader(arch, "", args.model);
  const BigGanConfig config = BigGanConfig::from_json(reader);
  reader.finish();
  const GeneratorAttention method =
      build_generator_attention(parse_attention_argument(args.attention, "--attention"), config, "--attention");
  const H5File inputs = H5File::open(args.inputs, /*writable=*/false);
  const at::Tensor z = read_tensor(inputs, "z").to(at::kFloat);
  const at::Tensor y = read_tensor(inputs, "y").round().to(at::kLong);
  at::NoGradGuard no_grad;
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(0);
  BigGanGenerator g(config);
  load_module_state(*g, args.weights);
  if (g->attention()) g->attention()->set_method(method.method);
  g->eval();
  const at::Tensor images = g->forward(z, y, generator).contiguous();
  H5File out = H5File::create(args.output);
  write_tensor(out, "images", images, StoredPrecision::kFloat32);
  if (!args.discriminator.empty()) {
    BigGanDiscriminator d(config);
    load_module_state(*d, args.discriminator);
    d->eval();
    write_tensor(out, "d_out", d->forward(read_tensor(inputs, "x").to(at::kFloat), y, generator), StoredPrecision::kFloat32);
  }
  return 0;
}

void add_fid_stats_command(CLI::App& app, CommandTable& table, const std::shared_ptr<ImageArgs>& c) {
  auto* fid_stats = app.add_subcommand("fid-stats", "FID Inception-v3 pool3 statistics of uint8 images in HDF5");
  fid_stats->add_option("--weights", c->weights, "inception_fid.safetensors (scripts/convert_fid_inception.py)")->required();
  fid_stats->add_option("--images", c->images, "HDF5 file with uint8 images (N, 3, H, W)")->required();
  fid_stats->add_option("--dataset", c->dataset, "dataset holding the images (default imgs)");
  fid_stats->add_option("--output,-o", c->output, "statistics file (.h5): /mu, /sigma")->required();
  fid_stats->add_option("--batch", c->batch, "images per forward pass (default 50)");
  fid_stats->add_option("--features-output", c->features_output, "also write /pool3 and /logits here (.h5)");
  fid_stats->add_option("--device", c->device, "auto (CUDA when available), cpu or cuda[:i]");
  fid_stats->add_option("--threads", c->threads, "CPU threads (default: all cores)");
  fid_stats->add_flag("--no-progress", c->no_progress, "no progress bar");
  table.add(fid_stats, [c] { return fid_stats_command(*c); });
}

void add_biggan_forward_command(CLI::App& app, CommandTable& table) {
  auto g = std::make_shared<BigGanForwardArgs>();
  auto* forward =
      app.add_subcommand("biggan-forward", "BigGAN G (and D) in eval mode on inputs from HDF5 (checks against other code)");
  forward->add_option("--model", g->model, "biggan.json (scripts/convert_biggan_pytorch.py writes one)")->required();
  forward->add_option("--weights", g->weights, "generator.safetensors")->required();
  forward->add_option("--discriminator", g->discriminator, "discriminator.safetensors: also D(x, y)");
  forward->add_option("--inputs", g->inputs, "HDF5 with z [B, dim_z], y [B] (and x [B, 3, R, R])")->required();
  forward->add_option("--output,-o", g->output, "HDF5 to write: images (and d_out)")->required();
  forward->add_option("--attention", g->attention, R"(G's attention, e.g. '{"method": "smyrf"}' (default dense))");
  table.add(forward, [g] { return biggan_forward_command(*g); });
}

}  // namespace

void add_image_commands(CLI::App& app, CommandTable& table) {
  auto c = std::make_shared<ImageArgs>();
  add_fid_stats_command(app, table, c);
  auto* fid = app.add_subcommand("fid", "Frechet Inception Distance between two statistics files (JSON)");
  fid->add_option("--stats", c->stats_files, "statistics file (.h5), given twice")->required();
  table.add(fid, [c] { return fid_command(*c); });

  auto* kid_cmd = app.add_subcommand("kid", "Kernel Inception Distance between two features files (JSON)");
  kid_cmd->add_option("--features", c->feature_files, "features file (.h5) with /pool3, given twice")->required();
  kid_cmd->add_option("--subsets", c->subsets, "random subsets averaged over (default 100)");
  kid_cmd->add_option("--subset-size", c->subset_size, "rows per subset, capped at the smaller set (default 1000)");
  kid_cmd->add_option("--seed", c->seed, "seed of the subset draws (default 0)");
  table.add(kid_cmd, [c] { return kid_command(*c); });

  auto* is = app.add_subcommand("inception-score", "Inception Score of a features file's /logits (JSON)");
  is->add_option("--features", c->feature_files, "features file (.h5) with /logits")->required();
  is->add_option("--splits", c->splits, "consecutive splits (default 10)");
  table.add(is, [c] { return inception_score_command(*c); });
  add_biggan_forward_command(app, table);
}

}  // namespace smyrf
