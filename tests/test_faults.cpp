// Faults while a sweep writes its results, end to end through the `smyrf` binary. What must hold:
// the run fails with a message naming the path and the cause, nothing already completed is lost,
// and a re-run completes the rest.
//   ReadOnlyOutputFolderFailsBeforeComputing   a read-only mount: exit 3 naming the file, no worker run
//   DiskFullDuringAResultsWriteKeepsTheFile     a full tmpfs during a results update: exit 3 naming the
//                                               path and "No space left on device"; the file as before;
//                                               a re-run with space completes
//   DiskFullDuringACheckpointWriteKeepsThePreviousOne
//                                               a tmpfs with room for 1.5 checkpoints: the second
//                                               fails naming the file and the cause, the first is
//                                               intact, a re-run resumes from it to the same results
//   AWorkerOverItsMemoryLimitFailsNamingIt      --worker-memory: the run that needs more fails naming
//                                               the limit, the other run completes
//   SigkillAtRandomMomentsLosesNothing          SIGKILL at 50 random moments of a sweep (results-file
//                                               updates included): after each the file opens, every
//                                               completed run equals an uninterrupted run's, and the
//                                               killed sweep's lock does not block the next one
//   SigkillInsideResultsUpdatesLosesNothing     50 SIGKILLs aimed inside results-file updates (while
//                                               the update's temporary copy exists): the same checks
// The disk tests mount a small tmpfs in a private mount namespace (unshare -m), which needs root or
// CAP_SYS_ADMIN; without it they are skipped, saying so.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

#include "core/util/text_file.h"
#include "tests/support/cli_test_support.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;
using test::fresh_dir;
using test::run_cli;
using test::run_shell;
using test::smoke_config;
using test::stored_runs;

// fidelity_tiny reduced to `sweep`, under one experiment name so that configs can share a file.
std::string fidelity(const fs::path& dir, const std::string& file, const nlohmann::json& sweep) {
  const std::string config = smoke_config(dir, "fidelity_tiny", {{"name", "faults"}, {"sweep", sweep}});
  fs::rename(config, dir / file);
  return (dir / file).string();
}

const nlohmann::json kDenseOnly = nlohmann::json::array({{{"attention.method", {"dense"}}}});
const nlohmann::json kDenseAndSmyrf = nlohmann::json::array(
    {{{"attention.method", {"dense"}}},
     {{"attention.method", {"smyrf"}}, {"attention.n_hashes", {1}}, {"attention.q_cluster_size", {16}}}});

// Runs `script` (sh) in a private mount namespace; false when this machine does not allow one.
bool mount_namespace_available() {
  return run_shell("unshare -m sh -c 'mount -t tmpfs tmpfs /mnt && umount /mnt'").exit_code == 0;
}

#define SKIP_WITHOUT_MOUNT_NAMESPACE()                                                                        \
  if (!mount_namespace_available())                                                                           \
  GTEST_SKIP() << "needs `unshare -m` and tmpfs mounts (root or CAP_SYS_ADMIN); this machine refuses them"

TEST(Faults, ReadOnlyOutputFolderFailsBeforeComputing) {
  SKIP_WITHOUT_MOUNT_NAMESPACE();
  const fs::path dir = fresh_dir("faults_ro");
  const std::string config = fidelity(dir, "c.json", kDenseOnly);
  fs::create_directories(dir / "mnt");
  const std::string out = (dir / "mnt" / "out" / "r.h5").string();
  const auto r = run_shell(fmt::format(
      "unshare -m sh -c 'mount -t tmpfs tmpfs {0}/mnt && mkdir {0}/mnt/out && mount -o remount,ro {0}/mnt && "
      "{1} run --no-progress {2} --output {3}'",
      dir.string(), SMYRF_CLI_PATH, config, out));
  EXPECT_EQ(r.exit_code, 3) << r.output;
  EXPECT_NE(r.output.find(out), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("Read-only file system"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("runs:"), std::string::npos) << "no run may start: " << r.output;
}

TEST(Faults, DiskFullDuringAResultsWriteKeepsTheFile) {
  SKIP_WITHOUT_MOUNT_NAMESPACE();
  const fs::path dir = fresh_dir("faults_full");
  const std::string first = fidelity(dir, "first.json", kDenseOnly), both = fidelity(dir, "both.json", kDenseAndSmyrf);
  fs::create_directories(dir / "mnt");
  // One run completes; the disk is filled to 16 KiB, less than a copy of the file needs; the next
  // run's update fails; with space again, a re-run completes.
  const std::string script = fmt::format(R"(set -e
mount -t tmpfs -o size=2m tmpfs {0}/mnt
{1} run --no-progress {2} --output {0}/mnt/r.h5 > {0}/first.log 2>&1
cp {0}/mnt/r.h5 {0}/before.h5
avail=$(df --output=avail -B1 {0}/mnt | tail -1)
head -c $((avail - 16384)) /dev/zero > {0}/mnt/fill || true
set +e
{1} run --no-progress {3} --output {0}/mnt/r.h5 > {0}/full.log 2>&1; echo $? > {0}/full.rc
cp {0}/mnt/r.h5 {0}/after.h5
ls {0}/mnt > {0}/left.txt
rm {0}/mnt/fill
{1} run --no-progress {3} --output {0}/mnt/r.h5 > {0}/final.log 2>&1; echo $? > {0}/final.rc
cp {0}/mnt/r.h5 {0}/final.h5
)",
                                         dir.string(), SMYRF_CLI_PATH, first, both);
  test::write_file(dir / "full.sh", script);
  const auto r = run_shell(fmt::format("unshare -m sh {}/full.sh", dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string full_log = read_text_file((dir / "full.log").string(), "test output");
  EXPECT_EQ(read_text_file((dir / "full.rc").string(), "test output"), "3\n") << full_log;
  EXPECT_NE(full_log.find("No space left on device"), std::string::npos) << full_log;
  EXPECT_NE(full_log.find((dir / "mnt" / "r.h5").string()), std::string::npos) << full_log;
  EXPECT_EQ(full_log.find("Segmentation"), std::string::npos) << full_log;
  EXPECT_EQ(read_text_file((dir / "left.txt").string(), "test output").find(".tmp-"), std::string::npos) << "a copy was left";
  test::expect_same_results((dir / "before.h5").string(), (dir / "after.h5").string());
  EXPECT_EQ(read_text_file((dir / "final.rc").string(), "test output"), "0\n");
  const auto final_runs = stored_runs((dir / "final.h5").string());
  ASSERT_EQ(final_runs.size(), 2u);
  for (const auto& [id, run] : final_runs) EXPECT_EQ(run.status, "complete") << id;
}

// GLUE fine-tuning (glue_tiny, SST-2 only, 4 steps) with a checkpoint after every step, kept in a
// tmpfs that holds one and a half checkpoints: the first fits, the second (written beside the first
// before replacing it) does not. The run fails naming the file and the cause; the first checkpoint
// is intact and no half-written copy is left; with space again, the re-run resumes from it and ends
// with the uninterrupted run's results.
TEST(Faults, DiskFullDuringACheckpointWriteKeepsThePreviousOne) {
  SKIP_WITHOUT_MOUNT_NAMESPACE();
  const fs::path dir = fresh_dir("faults_ckpt");
  fs::create_directories(dir / "mnt");
  const std::string config = test::smoke_config(
      dir, "glue_tiny",
      {{"model", {{"path", test::repo_path("models/all-MiniLM-L6-v2")}}},
       {"data", {{"dir", test::repo_path("tests/data/glue")}}},
       {"sweep", {{"data.task", {"sst2"}}}},
       {"train", {{"epochs", 1}, {"checkpoint_every", 1}, {"keep_checkpoint", true}}},
       {"output", {{"checkpoints", (dir / "mnt" / "ckpts").string()}}}});
  const std::string script = fmt::format(R"(set -e
{1} run --no-progress {2} --output {0}/reference.h5 > {0}/reference.log 2>&1
size=$(du -sb {0}/mnt/ckpts/*/ckpt | cut -f1)
rm -rf {0}/mnt/ckpts
mount -t tmpfs -o size=$((size * 3 / 2)) tmpfs {0}/mnt
set +e
{1} run --no-progress {2} --output {0}/r.h5 > {0}/full.log 2>&1; echo $? > {0}/full.rc
cp {0}/r.h5 {0}/failed.h5
find {0}/mnt > {0}/left.txt
mount -o remount,size=$((size * 4)) {0}/mnt
{1} run --no-progress {2} --output {0}/r.h5 > {0}/final.log 2>&1; echo $? > {0}/final.rc
)",
                                         dir.string(), SMYRF_CLI_PATH, config);
  test::write_file(dir / "ckpt.sh", script);
  const auto r = run_shell(fmt::format("unshare -m sh {}/ckpt.sh", dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output << read_text_file((dir / "reference.log").string(), "test output");
  auto text = [&](const char* name) { return read_text_file((dir / name).string(), "test output"); };
  const std::string full_log = text("full.log");
  EXPECT_EQ(text("full.rc"), "1\n") << full_log;
  EXPECT_NE(full_log.find("No space left on device"), std::string::npos) << full_log;
  EXPECT_NE(full_log.find((dir / "mnt" / "ckpts").string()), std::string::npos) << full_log;
  EXPECT_EQ(text("left.txt").find("ckpt.tmp"), std::string::npos) << "a half-written checkpoint was left:\n"
                                                                    << text("left.txt");
  EXPECT_NE(text("left.txt").find("/ckpt/state.json"), std::string::npos) << text("left.txt");
  const auto failed = stored_runs((dir / "failed.h5").string());
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_EQ(failed.begin()->second.status, "failed");
  const std::string final_log = text("final.log");
  EXPECT_EQ(text("final.rc"), "0\n") << final_log;
  const auto final_runs = stored_runs((dir / "r.h5").string());
  ASSERT_EQ(final_runs.size(), 1u);
  EXPECT_EQ(final_runs.begin()->second.result.metrics.at("resumed_from_step").value, 1.0) << final_log;
  test::expect_same_results((dir / "reference.h5").string(), (dir / "r.h5").string());
}

TEST(Faults, AWorkerOverItsMemoryLimitFailsNamingIt) {
#if defined(__SANITIZE_ADDRESS__)
  // RLIMIT_DATA counts AddressSanitizer's own reservations, so no instrumented worker starts under it
  GTEST_SKIP() << "an AddressSanitizer build cannot run under RLIMIT_DATA; the normal build runs this test";
#endif
  const fs::path dir = fresh_dir("faults_memory");
  // dense at N = 6000 needs 2 x 2 x 6000^2 float32 scores (576 MB) at once; smyrf needs little
  const nlohmann::json sweep = nlohmann::json::array(
      {{{"attention.method", {"dense"}}, {"data.n_queries", {6000}}, {"data.key_lengths", {{6000, 6000}}}},
       {{"attention.method", {"smyrf"}}, {"attention.n_hashes", {1}}, {"attention.q_cluster_size", {16}}}});
  const std::string config = fidelity(dir, "memory.json", sweep), out = (dir / "memory.h5").string();
  const auto r = run_cli(fmt::format("run --no-progress --worker-memory 600M {} --output {}", config, out));
  EXPECT_EQ(r.exit_code, 1) << r.output;
  const auto runs = stored_runs(out);
  ASSERT_EQ(runs.size(), 2u) << r.output;
  for (const auto& [id, run] : runs) {
    if (id.find("dense") != std::string::npos) {
      EXPECT_EQ(run.status, "failed") << id;
      EXPECT_NE(run.error.find("the worker memory limit is 600 MiB"), std::string::npos) << run.error;
    } else {
      EXPECT_EQ(run.status, "complete") << id << ": " << run.error;
    }
  }
  EXPECT_EQ(run_cli(fmt::format("run --no-progress --worker-memory 12X {} --output {}", config, out)).exit_code, 2);
}

TEST(Faults, SigkillAtRandomMomentsLosesNothing) {
  const fs::path dir = fresh_dir("faults_kill");
  const std::string config = test::smoke_config(dir, "fidelity_tiny");
  const std::string reference = (dir / "reference.h5").string(), out = (dir / "killed.h5").string();
  const auto start = std::chrono::steady_clock::now();
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}", config, reference)).exit_code, 0);
  const double sweep_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto expected = stored_runs(reference);
  std::mt19937 rng(2026);
  std::uniform_real_distribution<double> moment(0.0, sweep_s);
  int completions = 0;
  for (int kill = 0; kill < 50; ++kill) {
    const pid_t pid = test::start_run_in_background(config, out);
    ASSERT_GT(pid, 0);
    std::this_thread::sleep_for(std::chrono::duration<double>(moment(rng)));
    ::kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!fs::exists(out)) continue;  // killed before the file was made
    const auto runs = stored_runs(out);  // the file opens
    size_t complete = 0;
    for (const auto& [id, run] : runs) {
      if (run.status != "complete") continue;
      ++complete;
      ASSERT_TRUE(expected.count(id)) << id;
      for (const auto& [name, metric] : run.result.metrics)
        if (name == "rel_fro_error" || name == "max_abs_error" || name == "mean_row_cosine")
          EXPECT_EQ(metric.value, expected.at(id).result.metrics.at(name).value) << "kill " << kill << ": " << id;
    }
    if (complete == expected.size()) {  // this sweep finished before the kill: start another
      ++completions;
      fs::remove(out);
    }
  }
  // what the last kill left, finished by a re-run (the dead runner's lock does not block it)
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}", config, out)).exit_code, 0);
  test::expect_same_results(reference, out);
  std::cout << "SIGKILL test: 50 kills, " << completions << " sweeps finished between kills\n";
}

// Kills aimed at results-file updates: the test watches the output folder and kills the runner a
// random 0-3 ms after the temporary copy of one of its updates appears (a random one of the sweep's
// updates, so kills fall across mark-running and completion updates alike). A kill counts as inside
// an update when the copy is still there after the runner died. After each: the file opens, every
// completed run equals the uninterrupted reference, and the next run starts despite the leftover.
TEST(Faults, SigkillInsideResultsUpdatesLosesNothing) {
  const fs::path dir = fresh_dir("faults_kill_update");
  const std::string config = test::smoke_config(dir, "fidelity_tiny");
  const std::string reference = (dir / "reference.h5").string(), out = (dir / "killed.h5").string();
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}", config, reference)).exit_code, 0);
  const auto expected = stored_runs(reference);
  auto temporary_copy_exists = [&] {
    for (const auto& entry : fs::directory_iterator(dir))
      if (entry.path().filename().string().rfind("killed.h5.tmp-", 0) == 0) return true;
    return false;
  };
  std::mt19937 rng(17);
  std::uniform_int_distribution<int> skip(0, 2 * static_cast<int>(expected.size()) - 1), delay_us(0, 3000);
  int inside = 0, attempts = 0;
  for (; inside < 50 && attempts < 400; ++attempts) {
    const pid_t pid = test::start_run_in_background(config, out);
    ASSERT_GT(pid, 0);
    // wait for the (skip+1)-th temporary copy of this runner, or its end
    int seen = 0, status = 0;
    const int target = skip(rng);
    bool was_present = temporary_copy_exists(), exited = false;  // a dead runner's copy is not this one's
    while (!exited) {
      const bool present = temporary_copy_exists();
      if (present && !was_present && seen++ == target) break;
      was_present = present;
      exited = waitpid(pid, &status, WNOHANG) == pid;
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    if (exited) {  // the sweep finished first: start another
      fs::remove(out);
      continue;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us(rng)));
    ::kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    if (temporary_copy_exists()) ++inside;
    if (!fs::exists(out)) continue;      // killed while the file was being created
    const auto runs = stored_runs(out);  // the file opens
    for (const auto& [id, run] : runs) {
      if (run.status != "complete") continue;
      ASSERT_TRUE(expected.count(id)) << id;
      for (const char* name : {"rel_fro_error", "max_abs_error", "mean_row_cosine"})
        EXPECT_EQ(run.result.metrics.at(name).value, expected.at(id).result.metrics.at(name).value)
            << "attempt " << attempts << ": " << id;
    }
  }
  EXPECT_GE(inside, 50) << "only " << inside << " of " << attempts << " kills landed inside an update";
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}", config, out)).exit_code, 0);
  test::expect_same_results(reference, out);
  EXPECT_FALSE(temporary_copy_exists()) << "the dead runners' copies were not cleaned up";
  std::cout << "SIGKILL inside updates: " << inside << " of " << attempts << " kills inside an update\n";
}

}  // namespace
}  // namespace smyrf
