// The BigGAN pipelines end to end through the `smyrf` CLI: the smoke config trains a tiny BigGAN
// with SMYRF attention on the fixture image folder (finite losses, sample grids as PNG, a killed run
// resumes to the same state), image quality with Inception weights (random ones here: the numbers
// mean nothing, the path is what is checked) and without (notes say why), the pretrained sampling
// sweep (same latents in every run, SMYRF at full memory equals dense), and errors.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/models/biggan.h"
#include "core/models/inception_fid.h"
#include "core/models/safetensors.h"
#include "datasets/image_io.h"
#include "experiments/runner/results_store.h"
#include "tests/support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::curve_of;
using test::fresh_dir;
using test::merge_into;
using test::metric_value;
using test::repo_path;
using test::run_checkpoints;
using test::run_cli;
using test::stored_runs;
using test::write_file;

// The smoke config with the fixture folder made absolute, merged with `extra` (a JSON object).
std::string gan_smoke_config(const fs::path& dir, const std::string& name, const nlohmann::json& extra = {}) {
  nlohmann::json config = {{"version", 1},
                           {"extends", repo_path("configs/smoke/celeba_biggan_tiny.json")},
                           {"data", {{"path", repo_path("tests/data/celebahq_tiny")}}}};
  if (!extra.is_null()) merge_into(config, extra);
  return write_file(dir / (name + ".json"), config.dump(1));
}

fs::path samples_of(const std::string& h5, const std::string& run_id) {
  fs::path p(h5);
  p.replace_extension();
  return fs::path(p.string() + ".samples") / run_id;
}

TEST(CelebaBigGan, SmokeConfigTrainsWithSmyrfWritesGridsAndAKilledRunResumesToTheSameState) {
  const fs::path dir = fresh_dir("celeba_biggan_smoke");
  const std::string config = gan_smoke_config(dir, "smoke");
  const std::string whole = (dir / "whole.h5").string(), killed = (dir / "killed.h5").string();
  const auto uninterrupted = run_cli("run --no-progress " + config + " --output " + whole);
  ASSERT_EQ(uninterrupted.exit_code, 0) << uninterrupted.output;
  const StoredRun a = stored_runs(whole).at("run");
  ASSERT_EQ(a.status, "complete") << a.error;
  for (const char* name : {"g_loss", "d_loss_real", "d_loss_fake"}) {
    const auto& curve = curve_of(a, name);
    ASSERT_EQ(curve.size(), 5u) << name;  // 50 G steps logged every 10
    for (double v : curve) EXPECT_TRUE(std::isfinite(v)) << name;
  }
  EXPECT_EQ(curve_of(a, "step"), (std::vector<double>{10, 20, 30, 40, 50}));
  EXPECT_DOUBLE_EQ(metric_value(a, "memory_fraction"), 0.25);  // 2 hashes x 32 keys of 256
  EXPECT_EQ(metric_value(a, "train_images"), 12);
  EXPECT_EQ(metric_value(a, "resumed_from_step"), 0);
  EXPECT_NE(a.result.notes.at("fid").find("unavailable"), std::string::npos);  // no Inception weights given

  // Grids at steps 25 and 50, 4x4 images of 32 px with 2 px gutters, and final.png.
  const fs::path samples = samples_of(whole, "run");
  for (const char* png : {"step_000025.png", "step_000050.png", "final.png"}) {
    ASSERT_TRUE(fs::is_regular_file(samples / png)) << png;
    const RgbImage grid = decode_image((samples / png).string());
    EXPECT_EQ(grid.height, 4 * 32 + 5 * 2);
    EXPECT_EQ(grid.width, 4 * 32 + 5 * 2);
  }
  EXPECT_NE(decode_image((samples / "step_000025.png").string()).pixels_VWC,
            decode_image((samples / "step_000050.png").string()).pixels_VWC);
  EXPECT_FALSE(fs::exists(run_checkpoints(whole, "run"))) << "checkpoints are removed once the run completes";
  // The trained model stays, in the layout biggan_pretrained loads.
  fs::path models(whole);
  models.replace_extension();
  const fs::path model_dir = fs::path(models.string() + ".models") / "run";
  for (const char* file : {"biggan.json", "generator.safetensors", "discriminator.safetensors"})
    EXPECT_TRUE(fs::is_regular_file(model_dir / file)) << file;
  EXPECT_EQ(a.result.notes.at("model"), model_dir.string());

  // Killed after a checkpoint, then resumed: every curve and metric as in the uninterrupted run.
  const int64_t step_at_kill = test::kill_run_after_checkpoint(config, killed, "run", 20);
  ASSERT_GE(step_at_kill, 20) << "no checkpoint appeared";
  ASSERT_LT(step_at_kill, 50) << "the run finished before it could be killed";
  const auto resumed = run_cli("run --no-progress " + config + " --output " + killed);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const StoredRun b = stored_runs(killed).at("run");
  ASSERT_EQ(b.status, "complete") << b.error;
  EXPECT_GE(metric_value(b, "resumed_from_step"), 20);
  for (const char* name : {"g_loss", "d_loss_real", "d_loss_fake", "step"})
    EXPECT_EQ(curve_of(b, name), curve_of(a, name)) << name;
  for (const char* name : {"g_loss_final", "d_loss_real_final", "d_loss_fake_final", "memory_fraction"})
    EXPECT_EQ(metric_value(b, name), metric_value(a, name)) << name;
  EXPECT_EQ(decode_image((samples_of(killed, "run") / "final.png").string()).pixels_VWC,
            decode_image((samples / "final.png").string()).pixels_VWC);
}

TEST(CelebaBigGan, InceptionWeightsGiveFidKidAndIsWithTheirProtocol) {
  const fs::path dir = fresh_dir("celeba_biggan_fid");
  torch::manual_seed(0);
  FidInceptionV3 random_inception;  // random weights: only the path is under test
  const std::string weights = (dir / "inception.safetensors").string();
  write_safetensors(weights, module_state(*random_inception));
  // Named as the paper's SMYRF row, so that `report --paper celeba` finds it.
  const std::string config = gan_smoke_config(
      dir, "fid",
      {{"name", "paper_celeba_biggan_smyrf_128"},
       {"train", {{"iterations", 2}, {"checkpoint_every", 0}, {"sample_every", 0}}},
       {"eval", {{"inception_weights", weights}, {"samples", 16}, {"batch", 8}, {"kid_subsets", 5},
                 {"reference_stats", (dir / "reference.h5").string()}}}});
  const std::string out = (dir / "fid.h5").string();
  const auto first = run_cli("run --no-progress " + config + " --output " + out);
  ASSERT_EQ(first.exit_code, 0) << first.output;
  const StoredRun run = stored_runs(out).at("run");
  ASSERT_EQ(run.status, "complete") << run.error;
  EXPECT_GT(metric_value(run, "fid"), 0.0);
  EXPECT_TRUE(std::isfinite(metric_value(run, "kid_mean")));
  EXPECT_GE(metric_value(run, "inception_score"), 1.0 - 1e-9);
  EXPECT_NE(run.result.notes.at("fid").find("16 generated images"), std::string::npos) << run.result.notes.at("fid");
  EXPECT_NE(run.result.notes.at("fid").find("12 real images"), std::string::npos) << run.result.notes.at("fid");
  ASSERT_TRUE(fs::is_regular_file(dir / "reference.h5"));  // written for the next run
  const auto table = run_cli("report --paper celeba --targets " + repo_path("configs/paper/targets.json") + " " + out);
  ASSERT_EQ(table.exit_code, 0) << table.output;
  EXPECT_NE(table.output.find("25.03"), std::string::npos) << table.output;
  EXPECT_NE(table.output.find(fmt::format("{:.2f}", metric_value(run, "fid"))), std::string::npos) << table.output;
  EXPECT_NE(table.output.find("not run"), std::string::npos) << table.output;  // the dense row

  // A second experiment reads the stored reference statistics: same FID; KID needs features.
  const std::string again = (dir / "again.h5").string();
  const auto second = run_cli("run --no-progress " + config + " --output " + again);
  ASSERT_EQ(second.exit_code, 0) << second.output;
  const StoredRun reread = stored_runs(again).at("run");
  EXPECT_NEAR(metric_value(reread, "fid"), metric_value(run, "fid"), 1e-6 * metric_value(run, "fid"));
  EXPECT_NE(reread.result.notes.at("kid").find("unavailable"), std::string::npos);
}

TEST(CelebaBigGan, Bf16AutocastTrainsWithFiniteLossesOfItsOwn) {
  const fs::path dir = fresh_dir("celeba_biggan_bf16");
  std::map<std::string, double> first_g_loss;
  for (const char* precision : {"fp32", "bf16"}) {
    const std::string out = (dir / (std::string(precision) + ".h5")).string();
    const auto r = run_cli("run --no-progress " +
                           gan_smoke_config(dir, precision,
                                            {{"train", {{"iterations", 2}, {"log_every", 1}, {"checkpoint_every", 0},
                                                        {"sample_every", 0}, {"precision", precision}}}}) +
                           " --output " + out);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const StoredRun run = stored_runs(out).at("run");
    for (const char* name : {"g_loss", "d_loss_real", "d_loss_fake"})
      for (double v : curve_of(run, name)) EXPECT_TRUE(std::isfinite(v)) << precision << " " << name;
    first_g_loss[precision] = curve_of(run, "g_loss").at(0);
  }
  // Same seed and weights: a different first loss shows the bf16 run computed in bf16.
  EXPECT_NE(first_g_loss["bf16"], first_g_loss["fp32"]);
  EXPECT_NEAR(first_g_loss["bf16"], first_g_loss["fp32"], 0.1 * std::abs(first_g_loss["fp32"]) + 0.5);
}

// A converted-checkpoint folder with random weights: BigGAN-PyTorch's layout at 32x32.
std::string write_pretrained_dir(const fs::path& dir) {
  BigGanConfig c;
  c.resolution = 32;
  c.g_ch = c.d_ch = 16;
  c.dim_z = 20;
  c.n_classes = 5;
  c.shared_dim = 8;
  c.hier = true;
  c.g_attn = 16;
  c.d_attn = 0;
  torch::manual_seed(4);
  BigGanGenerator g(c);
  {
    at::NoGradGuard no_grad;
    g->attention()->named_parameters()["gamma"].fill_(1.0);  // trained models use their attention
  }
  const fs::path model = dir / "model";
  fs::create_directories(model);
  write_safetensors((model / "generator.safetensors").string(), module_state(*g));
  write_file(model / "biggan.json", c.to_json().dump(1));
  return model.string();
}

TEST(BigGanPretrained, SweepSwapsTheAttentionOverTheSameLatents) {
  const fs::path dir = fresh_dir("biggan_pretrained");
  const nlohmann::json config = {
      {"version", 1},
      {"name", "biggan_memory_tiny"},
      {"pipeline", "biggan_pretrained"},
      {"seed", 1},
      {"model", {{"dir", write_pretrained_dir(dir)}}},
      {"eval", {{"classes", {0, 3, 4}}}},
      {"sweep", nlohmann::json::array({{{"attention", nlohmann::json::array(
                                              {{{"method", "dense"}},
                                               {{"method", "smyrf"}, {"n_hashes", 1}, {"q_cluster_size", 256}},
                                               {{"method", "smyrf"}, {"n_hashes", 2}, {"memory_budget", 0.25}}})}}})},
      {"output", {{"path", (dir / "memory.h5").string()}}}};
  const std::string path = write_file(dir / "memory.json", config.dump(1));
  const auto result = run_cli("run --no-progress " + path);
  ASSERT_EQ(result.exit_code, 0) << result.output;
  const auto runs = stored_runs((dir / "memory.h5").string());
  ASSERT_EQ(runs.size(), 3u);
  std::map<double, std::vector<double>> samples_by_memory;
  for (const auto& [id, run] : runs) {
    ASSERT_EQ(run.status, "complete") << id << ": " << run.error;
    const NamedArray& s = run.result.tensors.at("samples");
    EXPECT_EQ(s.dims, (std::vector<int64_t>{3, 3, 32, 32})) << id;
    EXPECT_TRUE(fs::is_regular_file(run.result.notes.at("samples"))) << id;
    EXPECT_NE(run.result.notes.at("inception_score").find("unavailable"), std::string::npos);
    const double memory = metric_value(run, "memory_fraction");
    if (run.info.method == "smyrf" && memory == 1.0) {
      samples_by_memory[-1] = s.data;  // SMYRF with one cluster per hash: exact
    } else {
      samples_by_memory[memory] = s.data;
    }
  }
  ASSERT_TRUE(samples_by_memory.count(1.0) && samples_by_memory.count(-1) && samples_by_memory.count(0.25));
  double full_vs_dense = 0, quarter_vs_dense = 0;
  for (size_t i = 0; i < samples_by_memory[1.0].size(); ++i) {
    full_vs_dense = std::max(full_vs_dense, std::abs(samples_by_memory[-1][i] - samples_by_memory[1.0][i]));
    quarter_vs_dense = std::max(quarter_vs_dense, std::abs(samples_by_memory[0.25][i] - samples_by_memory[1.0][i]));
  }
  EXPECT_LT(full_vs_dense, 1e-5);
  EXPECT_GT(quarter_vs_dense, 1e-3);
}

TEST(CelebaBigGan, BadInputGivesClearErrors) {
  const fs::path dir = fresh_dir("celeba_biggan_errors");
  auto validate_error = [&](const nlohmann::json& extra) {
    const auto r = run_cli("validate " + gan_smoke_config(dir, "bad", extra));
    EXPECT_NE(r.exit_code, 0) << extra.dump();
    return r.output;
  };
  EXPECT_NE(validate_error({{"data", {{"path", (dir / "nowhere").string()}}}}).find("fetch_celebahq.md"),
            std::string::npos);
  EXPECT_NE(validate_error({{"model", {{"n_classes", 2}}}}).find("n_classes"), std::string::npos);
  EXPECT_NE(validate_error({{"train", {{"precision", "fp16"}}}}).find("bf16"), std::string::npos);
  EXPECT_NE(validate_error({{"data", {{"resolution", 64}}}}).find("model.resolution"), std::string::npos);
  EXPECT_NE(validate_error({{"attention", {{"q_cluster_size", 100}}}}).find("attention"), std::string::npos);
  EXPECT_NE(validate_error({{"train", {{"d_step", 2}}}}).find("d_steps"), std::string::npos);
  EXPECT_NE(validate_error({{"model", {{"g_attn", 4}}}}).find("g_attn"), std::string::npos);
  // A corrupt image fails the run naming the file, unless skipping is asked for.
  const fs::path folder = dir / "images";
  fs::create_directories(folder);
  for (const auto& entry : fs::directory_iterator(repo_path("tests/data/celebahq_tiny")))
    if (entry.path().extension() != ".md") fs::copy_file(entry.path(), folder / entry.path().filename());
  write_file(folder / "12.jpg", "not a jpeg");
  const std::string out = (dir / "corrupt.h5").string();
  const auto corrupt = run_cli("run --no-progress " +
                               gan_smoke_config(dir, "corrupt", {{"data", {{"path", folder.string()}}},
                                                                 {"train", {{"iterations", 1}}}}) +
                               " --output " + out);
  EXPECT_NE(corrupt.exit_code, 0);
  EXPECT_NE(stored_runs(out).at("run").error.find("12.jpg"), std::string::npos) << stored_runs(out).at("run").error;
  const std::string skipped_out = (dir / "skipped.h5").string();
  const auto skipped = run_cli("run --no-progress " +
                               gan_smoke_config(dir, "skip", {{"data", {{"path", folder.string()}, {"on_bad_image", "skip"}}},
                                                              {"train", {{"iterations", 1}}}}) +
                               " --output " + skipped_out);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.output;
  EXPECT_EQ(metric_value(stored_runs(skipped_out).at("run"), "skipped_images"), 1);
}

}  // namespace
}  // namespace smyrf
