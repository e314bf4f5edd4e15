// `smyrf`: the harness's command line.
//   smyrf run CONFIG [--output FILE.h5]   run a sweep (resumes; prints the report at the end)
//   smyrf validate CONFIG                 load, expand and check every run; runs nothing
//   smyrf report FILE.h5 [--markdown]     the results as a table
//   smyrf report --paper glue|imdb|celeba FILE.h5... [--targets configs/paper/targets.json] [--markdown]
//                                         a paper table (experiments/paper_report.h) with our numbers
//                                         beside the paper's: files matched to rows by config name
//   smyrf score --task T --predictions FILE --labels FILE
//                                         GLUE/IMDB metrics of one number per line (class ids, or
//                                         scores for stsb) as one JSON object, NaN as null
//   smyrf methods                         registered attention methods and their options
//   smyrf attend FILE.h5 --group G --attention JSON --output OUT.h5 [--seed S] [--float64]
//                                         one method on one captured-QKV group: writes out_BHNE,
//                                         lse_BHN (when the method gives one) and the method's random
//                                         draws (aux/<name>) so independent code can check it
//   smyrf tokenize --tokenizer DIR (--input FILE | --text STR) [--pair-input FILE2 | --pair-text STR]
//                  [--max-length N] [--no-special-tokens] [--tokens] -o OUT.jsonl|-
//                                         token ids of each input line (core/text), one JSON line each:
//                                         {"ids": [...], "type_ids": [...]} (+ "tokens" with --tokens)
//   smyrf encode --model DIR (--input TEXT | --ids JSONL) -o OUT.h5 [--attention JSON]
//                [--layers L,..] [--max-length N] [--seed S] [--float64]
//                                         a BERT/RoBERTa directory's hidden states, sentence
//                                         embeddings, pooler output and classifier logits
//   smyrf fid-stats | fid | kid | inception-score
//                                         image metrics over FID Inception-v3 (issue 6); usage in
//                                         their block below (experiments/image_metrics.h)
//   smyrf biggan-forward --model biggan.json --weights G.safetensors --inputs IN.h5 -o OUT.h5
//                [--discriminator D.safetensors] [--attention JSON]
//                                         BigGAN G (and D) in eval mode on z, y (and x) from HDF5
//   smyrf worker ...                      internal: one run in its own process (used by `run`)
// The only place where exceptions become exit codes: 0 ok, 1 runs failed or internal error,
// 2 bad config, 3 file problem.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <thread>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <torch/cuda.h>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/text/tokenizer.h"
#include "core/util/hdf5_file.h"
#include "core/util/progress.h"
#include "core/util/check.h"
#include "core/util/strings.h"
#include "experiments/encode.h"
#include "experiments/pipelines/biggan_common.h"
#include "experiments/image_metrics.h"
#include "experiments/paper_report.h"
#include "experiments/pipelines/pipeline.h"
#include "experiments/report.h"
#include "experiments/runner.h"
#include "experiments/task_metrics.h"

namespace {

std::string self_executable(const char* argv0) {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : exe.string();
}

// `smyrf tokenize`: lines are split on '\n' with a trailing '\r' dropped (no final empty line after a
// trailing newline); every line, empty ones included, gives one output line.
struct TokenizeArgs {
  std::string tokenizer_dir, input, text, pair_input, pair_text, output;
  size_t max_length = 0;
  bool no_special_tokens = false, tokens = false, has_pair_text = false;
};

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw smyrf::IoError(fmt::format("cannot read input file '{}'", path));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return smyrf::split_lines(buffer.str());
}

int run_tokenize(const TokenizeArgs& args) {
  const auto tokenizer = smyrf::load_tokenizer(args.tokenizer_dir);
  const std::vector<std::string> lines = args.input.empty() ? std::vector<std::string>{args.text} : read_lines(args.input);
  std::optional<std::vector<std::string>> pairs;
  if (!args.pair_input.empty()) pairs = read_lines(args.pair_input);
  if (args.has_pair_text) pairs = std::vector<std::string>{args.pair_text};
  if (pairs && pairs->size() != lines.size()) {
    throw smyrf::ConfigError(fmt::format("--pair-input has {} lines but the input has {}; pairs are matched line by line",
                                         pairs->size(), lines.size()));
  }
  std::ofstream file;
  if (args.output != "-") {
    file.open(args.output, std::ios::binary);
    if (!file) throw smyrf::IoError(fmt::format("cannot write '{}'", args.output));
  }
  std::ostream& out = args.output == "-" ? std::cout : file;
  for (size_t i = 0; i < lines.size(); ++i) {
    std::optional<std::vector<int64_t>> pair_ids;
    if (pairs) pair_ids = tokenizer->ids_of((*pairs)[i]);
    const smyrf::Encoding e =
        tokenizer->post_process(tokenizer->ids_of(lines[i]), std::move(pair_ids), args.max_length, !args.no_special_tokens);
    nlohmann::json row = {{"ids", e.ids}, {"type_ids", e.type_ids}};
    if (args.tokens) {
      std::vector<std::string> tokens;
      for (int64_t id : e.ids) tokens.push_back(tokenizer->id_to_token(id).value_or(""));
      row["tokens"] = tokens;
    }
    out << row.dump() << '\n';
  }
  out.flush();
  if (!out) throw smyrf::IoError(fmt::format("writing '{}' failed", args.output));
  return 0;
}

// `smyrf score`: one number per line; trailing blank lines are dropped, any other blank line or a
// line that is not a number is an error naming file and line (predictions and labels pair by line).
std::vector<double> read_numbers(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    throw smyrf::IoError(fmt::format("'{}' is a directory; give a text file with one number per line", path));
  }
  std::vector<std::string> lines = read_lines(path);
  const auto blank = [](const std::string& s) { return s.find_first_not_of(" \t\r") == std::string::npos; };
  while (!lines.empty() && blank(lines.back())) lines.pop_back();
  std::vector<double> values;
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const size_t begin = line.find_first_not_of(" \t"), end = line.find_last_not_of(" \t\r");
    if (begin == std::string::npos) {
      throw smyrf::ConfigError(fmt::format("'{}' line {} is empty; write one number per line", path, i + 1));
    }
    const std::string text = line.substr(begin, end - begin + 1);
    char* stop = nullptr;
    const double v = std::strtod(text.c_str(), &stop);
    if (stop != text.c_str() + text.size()) {
      throw smyrf::ConfigError(fmt::format("'{}' line {}: '{}' is not a number; write one number per line", path, i + 1,
                                           text));
    }
    values.push_back(v);
  }
  return values;
}

int run_score(const std::string& task, const std::string& predictions_path, const std::string& labels_path) {
  const std::vector<std::string> names = smyrf::task_metric_names(task);  // an unknown task fails before any file
  const auto metrics = smyrf::task_metrics(task, read_numbers(predictions_path), read_numbers(labels_path));
  nlohmann::ordered_json out = nlohmann::ordered_json::object();
  for (const auto& name : names) out[name] = metrics.at(name);  // NaN dumps as null
  fmt::print("{}\n", out.dump());
  return 0;
}

// ---- image metrics (issue 6): FID / KID / IS over FID Inception-v3 (experiments/image_metrics.h)
//   smyrf fid-stats --weights W.safetensors --images IMAGES.h5 --output STATS.h5 [--dataset imgs]
//                   [--batch 50] [--features-output F.h5] [--device auto|cpu|cuda] [--threads N]
//                   [--no-progress]
//       pool3 statistics of the uint8 (N, 3, H, W) images in IMAGES.h5 (BigGAN-PyTorch make_hdf5
//       layout); --features-output also keeps the raw pool3 [N, 2048] and logits [N, 1008]
//   smyrf fid --stats A.h5 --stats B.h5              {"fid": x}
//   smyrf kid --features A.h5 --features B.h5 [--subsets 100] [--subset-size 1000] [--seed 0]
//                                                    {"kid_mean", "kid_std", "subsets", "subset_size"}
//   smyrf inception-score --features F.h5 [--splits 10]   {"is_mean", "is_std", "splits"}
// Files that record different feature networks or weights are refused (exit 2).
struct ImageMetricCommands {
  CLI::App* fid_stats = nullptr;
  CLI::App* fid = nullptr;
  CLI::App* kid = nullptr;
  CLI::App* inception_score = nullptr;
  std::string weights, images, dataset = "imgs", output, features_output, device = "auto";
  int64_t batch = 50;
  int threads = 0;
  bool no_progress = false;
  std::vector<std::string> stats_files, feature_files;
  int64_t subsets = 100, subset_size = 1000, splits = 10;
  uint64_t seed = 0;
};

void add_image_metric_commands(CLI::App& app, ImageMetricCommands& c) {
  c.fid_stats = app.add_subcommand("fid-stats", "FID Inception-v3 pool3 statistics of uint8 images in HDF5");
  c.fid_stats->add_option("--weights", c.weights, "inception_fid.safetensors (scripts/convert_fid_inception.py)")->required();
  c.fid_stats->add_option("--images", c.images, "HDF5 file with uint8 images (N, 3, H, W)")->required();
  c.fid_stats->add_option("--dataset", c.dataset, "dataset holding the images (default imgs)");
  c.fid_stats->add_option("--output,-o", c.output, "statistics file (.h5): /mu, /sigma")->required();
  c.fid_stats->add_option("--batch", c.batch, "images per forward pass (default 50)");
  c.fid_stats->add_option("--features-output", c.features_output, "also write /pool3 and /logits here (.h5)");
  c.fid_stats->add_option("--device", c.device, "auto (CUDA when available), cpu or cuda[:i]");
  c.fid_stats->add_option("--threads", c.threads, "CPU threads (default: all cores)");
  c.fid_stats->add_flag("--no-progress", c.no_progress, "no progress bar");

  c.fid = app.add_subcommand("fid", "Frechet Inception Distance between two statistics files (JSON)");
  c.fid->add_option("--stats", c.stats_files, "statistics file (.h5), given twice")->required();

  c.kid = app.add_subcommand("kid", "Kernel Inception Distance between two features files (JSON)");
  c.kid->add_option("--features", c.feature_files, "features file (.h5) with /pool3, given twice")->required();
  c.kid->add_option("--subsets", c.subsets, "random subsets averaged over (default 100)");
  c.kid->add_option("--subset-size", c.subset_size, "rows per subset, capped at the smaller set (default 1000)");
  c.kid->add_option("--seed", c.seed, "seed of the subset draws (default 0)");

  c.inception_score = app.add_subcommand("inception-score", "Inception Score of a features file's /logits (JSON)");
  c.inception_score->add_option("--features", c.feature_files, "features file (.h5) with /logits")->required();
  c.inception_score->add_option("--splits", c.splits, "consecutive splits (default 10)");
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
    throw smyrf::ConfigError(fmt::format("smyrf {} compares two files: give {} exactly twice (got {})", command, option,
                                         files.size()));
}

int run_fid_stats(const ImageMetricCommands& c) {
  if (c.batch < 1) throw smyrf::ConfigError(fmt::format("--batch must be >= 1, got {}", c.batch));
  at::Device device(at::kCPU);
  if (c.device == "auto") {
    if (torch::cuda::is_available()) device = at::Device(at::kCUDA);
  } else {
    try {
      device = at::Device(c.device);
    } catch (const c10::Error&) {
      throw smyrf::ConfigError(fmt::format("--device '{}' is not a device: use auto, cpu or cuda[:i]", c.device));
    }
    if (device.is_cuda() && !torch::cuda::is_available())
      throw smyrf::ConfigError(fmt::format("--device {}: no CUDA device is available", c.device));
  }
  const smyrf::H5File images = smyrf::H5File::open(c.images, /*writable=*/false);
  if (!images.is_dataset(c.dataset))
    throw smyrf::IoError(fmt::format("'{}' has no dataset '/{}': images are read as uint8 (N, 3, H, W) from /imgs "
                                     "(BigGAN-PyTorch's make_hdf5 layout); name another with --dataset",
                                     c.images, c.dataset));
  const std::vector<int64_t> dims = images.dataset_dims(c.dataset);
  if (dims.size() != 4 || dims[1] != 3 || dims[2] < 1 || dims[3] < 1)
    throw smyrf::IoError(fmt::format("'{}': /{} has shape [{}], expected uint8 images (N, 3, H, W)", c.images,
                                     c.dataset, smyrf::join([&] {
                                       std::vector<std::string> parts;
                                       for (int64_t d : dims) parts.push_back(std::to_string(d));
                                       return parts;
                                     }(), ", ")));
  try {
    images.read_array_u8(c.dataset, 0, 0);  // checks the element type, reads nothing
  } catch (const smyrf::Error& e) {
    throw smyrf::IoError(fmt::format("{} (images are stored as uint8 0..255, as BigGAN-PyTorch's make_hdf5 writes them)",
                                     e.what()));
  }
  const int64_t n = dims[0];
  if (n < 2) throw smyrf::ConfigError(fmt::format("'{}' holds {} image(s); statistics need at least 2", c.images, n));

  // LibTorch starts with one thread on these machines.
  at::set_num_threads(c.threads > 0 ? c.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  smyrf::FidInceptionV3 net = smyrf::FidInceptionV3Impl::load(c.weights);
  net->to(device);
  std::optional<smyrf::ProgressBar> bar;
  if (!c.no_progress) bar.emplace("inception", n);
  int64_t shown_twentieths = 0;
  const auto progress = [&](int64_t done, int64_t total) {
    // A log gets about 20 lines, a terminal one redrawn line.
    if (!bar || (!bar->interactive() && done * 20 / total == shown_twentieths && done != total)) return;
    shown_twentieths = done * 20 / total;
    bar->update(done);
  };
  const smyrf::InceptionBatchOutputs outputs = smyrf::run_inception(
      net,
      [&](int64_t start, int64_t count) {
        smyrf::H5Array<uint8_t> batch = images.read_array_u8(c.dataset, start, count);
        return at::from_blob(batch.data.data(), batch.dims, at::kByte).clone();
      },
      n, c.batch, progress);
  if (bar) bar->finish();
  const smyrf::FeatureSource source = smyrf::fid_feature_source(net, fmt::format("{}:/{}", c.images, c.dataset));
  smyrf::write_feature_stats(c.output, smyrf::feature_stats(outputs.pool3_N2048), source);
  if (!c.features_output.empty()) smyrf::write_inception_features(c.features_output, outputs, source);
  fmt::print("{}: {} images ({}x{}) -> pool3 statistics {}{} (device {})\n", c.images, n, dims[2], dims[3], c.output,
             c.features_output.empty() ? "" : ", features " + c.features_output, device.str());
  warn_about_feature_files({}, {n}, {c.images});
  return 0;
}

// Runs the image-metric subcommand that was given; nullopt when it was another one.
std::optional<int> run_image_metric_command(const ImageMetricCommands& c) {
  if (*c.fid_stats) return run_fid_stats(c);
  if (*c.fid) {
    require_two(c.stats_files, "fid", "--stats");
    const smyrf::StoredFeatureStats a = smyrf::read_feature_stats(c.stats_files[0]);
    const smyrf::StoredFeatureStats b = smyrf::read_feature_stats(c.stats_files[1]);
    warn_about_feature_files(smyrf::check_same_features(a.source, c.stats_files[0], b.source, c.stats_files[1]),
                             {a.stats.count, b.stats.count}, c.stats_files);
    nlohmann::ordered_json out = {{"fid", smyrf::frechet_distance(a.stats, b.stats)}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  if (*c.kid) {
    require_two(c.feature_files, "kid", "--features");
    const at::Tensor a = smyrf::read_feature_array(c.feature_files[0], "pool3");
    const at::Tensor b = smyrf::read_feature_array(c.feature_files[1], "pool3");
    warn_about_feature_files(smyrf::check_same_features(smyrf::read_feature_source(c.feature_files[0]), c.feature_files[0],
                                                        smyrf::read_feature_source(c.feature_files[1]), c.feature_files[1]),
                             {}, {});
    const smyrf::MeanStd k = smyrf::kid(a, b, c.subsets, c.subset_size, c.seed);
    nlohmann::ordered_json out = {{"kid_mean", k.mean},
                                  {"kid_std", k.std},
                                  {"subsets", c.subsets},
                                  {"subset_size", std::min({c.subset_size, a.size(0), b.size(0)})}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  if (*c.inception_score) {
    if (c.feature_files.size() != 1)
      throw smyrf::ConfigError(fmt::format("smyrf inception-score takes one --features file, got {}", c.feature_files.size()));
    const smyrf::MeanStd is = smyrf::inception_score(smyrf::read_feature_array(c.feature_files[0], "logits"), c.splits);
    nlohmann::ordered_json out = {{"is_mean", is.mean}, {"is_std", is.std}, {"splits", c.splits}};
    fmt::print("{}\n", out.dump());
    return 0;
  }
  return std::nullopt;
}
// ---- end of image metrics (issue 6)

int main_impl(int argc, char** argv) {
  CLI::App app{"smyrf: benchmark and reproduce efficient attention (SMYRF and peers)"};
  app.require_subcommand(1);

  std::string config_path, output, run_id, result_path;
  bool markdown = false, no_progress = false;

  auto* run = app.add_subcommand("run", "Run every point of a config's sweep into its HDF5 results file");
  run->add_option("config", config_path, "experiment config (JSON)")->required();
  run->add_option("--output,-o", output, "results file (overrides output.path)");
  run->add_flag("--no-progress", no_progress, "no progress bar");

  auto* validate = app.add_subcommand("validate", "Check a config: every run expanded and validated, nothing run");
  validate->add_option("config", config_path, "experiment config (JSON)")->required();

  std::vector<std::string> report_files;
  std::string paper_table, targets_path = smyrf::kDefaultPaperTargetsPath;
  auto* report = app.add_subcommand("report", "Print a results file as a table, or results beside a paper table");
  report->add_option("files", report_files, "results file (.h5); several with --paper")->required();
  auto* paper_option = report->add_option("--paper", paper_table, "compare with a paper table: glue | imdb | celeba");
  report->add_option("--targets", targets_path, "paper targets file (default configs/paper/targets.json)")
      ->needs(paper_option);
  report->add_flag("--markdown", markdown, "GitHub markdown table");

  std::string score_task, score_predictions, score_labels;
  auto* score = app.add_subcommand("score", "GLUE/IMDB metrics of predictions against labels (JSON)");
  score->add_option("--task", score_task, "cola, sst2, mrpc, stsb, qqp, mnli, qnli, rte, wnli or imdb")->required();
  score->add_option("--predictions", score_predictions, "file with one prediction per line")->required();
  score->add_option("--labels", score_labels, "file with one label per line")->required();

  auto* methods = app.add_subcommand("methods", "List the registered attention methods");

  std::string attend_input, attend_group, attend_json, attend_output;
  uint64_t attend_seed = 0;
  bool attend_f64 = false;
  auto* attend = app.add_subcommand("attend", "Run one attention method on a captured-QKV group and write its output");
  attend->add_option("file", attend_input, "captured-QKV file (.h5; format in results/README.md)")->required();
  attend->add_option("--group", attend_group, "group inside the file")->required();
  attend->add_option("--attention", attend_json, R"(attention object, e.g. '{"method": "smyrf"}')")->required();
  attend->add_option("--output,-o", attend_output, "output file (.h5)")->required();
  attend->add_option("--seed", attend_seed, "generator seed");
  attend->add_flag("--float64", attend_f64, "compute in float64 (default float32)");

  TokenizeArgs tok;
  auto* tokenize = app.add_subcommand("tokenize", "Token ids of each input line (BERT WordPiece / RoBERTa BPE), as JSON lines");
  tokenize->add_option("--tokenizer", tok.tokenizer_dir, "folder with tokenizer.json, vocab.txt or vocab.json + merges.txt")
      ->required();
  auto* tok_input = tokenize->add_option("--input", tok.input, "text file, one sequence per line");
  auto* tok_text = tokenize->add_option("--text", tok.text, "one sequence given inline");
  tok_input->excludes(tok_text);
  auto* tok_pair_input = tokenize->add_option("--pair-input", tok.pair_input, "second sequences, line by line")->needs(tok_input);
  auto* tok_pair_text =
      tokenize->add_option("--pair-text", tok.pair_text, "second sequence given inline")->needs(tok_text)->excludes(tok_pair_input);
  tokenize->add_option("--max-length", tok.max_length, "truncate to N ids including special tokens (pairs: longest first); 0 = no limit");
  tokenize->add_flag("--no-special-tokens", tok.no_special_tokens, "no [CLS]/[SEP] (<s>/</s>)");
  tokenize->add_flag("--tokens", tok.tokens, "also write the token strings");
  tokenize->add_option("--output,-o", tok.output, "output .jsonl file, or - for stdout")->required();

  smyrf::EncodeRequest enc;
  auto* encode = app.add_subcommand("encode", "Run a BERT/RoBERTa model directory on text or ids; hidden states etc. to HDF5");
  encode->add_option("--model", enc.model_dir, "Hugging Face directory: config.json, model.safetensors, tokenizer")->required();
  auto* enc_input = encode->add_option("--input", enc.text_path, "text file, one sequence per line");
  encode->add_option("--ids", enc.ids_path, "JSONL of {\"ids\": [...], \"type_ids\": [...]} (smyrf tokenize)")->excludes(enc_input);
  encode->add_option("--output,-o", enc.output_path, "output file (.h5)")->required();
  encode->add_option("--attention", enc.attention_json, R"(attention object, e.g. '{"method": "smyrf"}' (default dense))");
  encode->add_option("--layers", enc.attention_layers, "layers that use --attention (default all)")->delimiter(',');
  encode->add_option("--max-length", enc.max_length, "truncate text lines to N tokens (default the model's limit)");
  encode->add_option("--seed", enc.seed, "generator seed");
  encode->add_flag("--float64", enc.float64, "compute in float64 (default float32)");

  struct {
    std::string model, weights, discriminator, inputs, output, attention;
  } gan;
  auto* biggan_forward =
      app.add_subcommand("biggan-forward", "BigGAN G (and D) in eval mode on inputs from HDF5 (checks against other code)");
  biggan_forward->add_option("--model", gan.model, "biggan.json (scripts/convert_biggan_pytorch.py writes one)")->required();
  biggan_forward->add_option("--weights", gan.weights, "generator.safetensors")->required();
  biggan_forward->add_option("--discriminator", gan.discriminator, "discriminator.safetensors: also D(x, y)");
  biggan_forward->add_option("--inputs", gan.inputs, "HDF5 with z [B, dim_z], y [B] (and x [B, 3, R, R])")->required();
  biggan_forward->add_option("--output,-o", gan.output, "HDF5 to write: images (and d_out)")->required();
  biggan_forward->add_option("--attention", gan.attention, R"(G's attention, e.g. '{"method": "smyrf"}' (default dense))");

  auto* worker = app.add_subcommand("worker", "Internal: run one sweep point (used by `smyrf run`)");
  worker->group("");  // hidden from --help
  worker->add_option("config", config_path)->required();
  worker->add_option("--run-id", run_id)->required();
  worker->add_option("--result", result_path)->required();
  std::string worker_output, worker_progress;
  worker->add_option("--output", worker_output);
  worker->add_option("--progress", worker_progress);

  ImageMetricCommands image_metrics;  // image metrics (issue 6)
  add_image_metric_commands(app, image_metrics);
  CLI11_PARSE(app, argc, argv);
  if (const auto rc = run_image_metric_command(image_metrics)) return *rc;  // image metrics (issue 6)

  if (*worker) return smyrf::run_worker(config_path, run_id, result_path, worker_output, worker_progress);
  if (*tokenize) {
    if (tok_input->count() == 0 && tok_text->count() == 0) throw smyrf::ConfigError("smyrf tokenize needs --input FILE or --text STR");
    tok.has_pair_text = tok_pair_text->count() > 0;
    return run_tokenize(tok);
  }
  if (*biggan_forward) {
    smyrf::biggan_forward_h5(gan.model, gan.weights, gan.discriminator, gan.inputs, gan.output, gan.attention);
    return 0;
  }
  if (*encode) {
    const int64_t n = smyrf::encode_to_hdf5(enc);
    fmt::print("{}: {} sequences -> {}\n", enc.model_dir, n, enc.output_path);
    return 0;
  }
  if (*methods) {
    for (const auto& name : smyrf::attention_method_names())
      fmt::print("{:8} {}\n", name, smyrf::make_attention({{"method", name}})->options_json().dump());
    return 0;
  }
  if (*attend) {
    nlohmann::json attention;
    try {
      attention = nlohmann::json::parse(attend_json);
    } catch (const nlohmann::json::parse_error& e) {
      throw smyrf::ConfigError(fmt::format("--attention is not valid JSON ({}); write it like '{{\"method\": \"smyrf\"}}'",
                                           e.what()));
    }
    const smyrf::AttentionInputs inputs =
        smyrf::load_captured_qkv(attend_input, attend_group, attend_f64 ? at::kDouble : at::kFloat, "smyrf attend");
    const auto method = smyrf::make_attention(
        smyrf::resolve_memory_budget(attention, smyrf::shape_of(inputs), "--attention", "").attention, "--attention");
    auto generator = at::make_generator<at::CPUGeneratorImpl>(attend_seed);
    at::NoGradGuard no_grad;
    const smyrf::AttentionOutput out = method->forward(inputs, generator);
    auto file = smyrf::H5File::create(attend_output);
    file.set_attr("/", "attention_json", method->options_json().dump());
    file.set_attr("/", "seed", static_cast<int64_t>(attend_seed));
    const auto write = [&](const std::string& path, const at::Tensor& t) {
      const at::Tensor x = t.detach().to(at::kDouble).contiguous();
      file.write_array(path, std::vector<double>(x.data_ptr<double>(), x.data_ptr<double>() + x.numel()),
                       std::vector<int64_t>(x.sizes().begin(), x.sizes().end()));
    };
    write("/out_BHNE", out.out_BHNE);
    if (out.lse_BHN) write("/lse_BHN", *out.lse_BHN);
    file.create_groups("/aux");
    for (const auto& [name, t] : out.aux) write("/aux/" + name, t);
    fmt::print("{}: {} on {}:{} -> {}\n", method->name(), method->options_json().dump(), attend_input, attend_group,
               attend_output);
    return 0;
  }
  if (*validate) {
    const auto plan = smyrf::plan_experiment(config_path, std::nullopt);
    fmt::print("{}: OK — pipeline {}, {} runs, results to {}\n", config_path, plan.pipeline,
               plan.experiment.runs.size(), plan.output_path);
    return 0;
  }
  if (*score) return run_score(score_task, score_predictions, score_labels);
  if (*report) {
    if (paper_option->count() > 0) {
      fmt::print("{}", smyrf::format_paper_report(targets_path, paper_table, report_files, markdown));
      return 0;
    }
    if (report_files.size() != 1) {
      throw smyrf::ConfigError(fmt::format("smyrf report takes one results file, got {}; several files are read "
                                           "together only with --paper glue|imdb|celeba",
                                           report_files.size()));
    }
    fmt::print("{}", smyrf::format_report(report_files.front(), markdown));
    return 0;
  }
  smyrf::RunnerOptions options;
  options.config_path = config_path;
  if (!output.empty()) options.output_override = output;
  options.worker_executable = self_executable(argv[0]);
  options.progress = !no_progress;
  const auto summary = smyrf::run_experiment(options);
  fmt::print("\n{}", smyrf::format_report(summary.output_path, false));
  fmt::print("\n{} runs: {} completed, {} already complete, {} failed -> {}\n", summary.total, summary.completed,
             summary.skipped, summary.failed, summary.output_path);
  for (const auto& f : summary.failures) fmt::print(stderr, "failed: {}\n", f);
  return summary.failed > 0 ? 1 : 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Same seed, same bits: with MKL's default MKL_DYNAMIC on, MKL may use fewer threads than asked,
  // and with them another summation order. Under load, 1 of 8 identical fine-tuning runs here gave
  // another first-step loss (and a killed-and-resumed run diverged, tests/test_finetune.cpp); with
  // MKL_DYNAMIC=FALSE 12 of 12 agreed. Set before the first BLAS call; a user's own setting wins.
  setenv("MKL_DYNAMIC", "FALSE", /*overwrite=*/0);
  try {
    return main_impl(argc, argv);
  } catch (const smyrf::ConfigError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  } catch (const smyrf::IoError& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 3;
  } catch (const c10::Error& e) {
    fmt::print(stderr, "error: {}\n", e.what_without_backtrace());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "error: out of memory; lower the sizes in the config\n");
    return 1;
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
