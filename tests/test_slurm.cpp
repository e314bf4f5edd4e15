// `smyrf submit --slurm` against a real Slurm: a one-node cluster (slurmctld, slurmd, munged from
// Debian's slurm-wlm and munge) that each test process starts on localhost with its state in a
// temporary folder (scripts/slurm/local_slurm.sh) and stops at the end, also after a failure.
// Checked: the --dry-run scripts against a golden file; an array's merged result equals `smyrf run`
// of the same config; a task requeued mid-run (scontrol requeue) resumes from its checkpoint; an
// array cancelled halfway and submitted again runs only the missing shards; a task killed outright
// (SIGKILL, as the OOM killer sends) leaves its run "failed" in the merged results and "stopped" in
// `smyrf status` while the other task completes, and submitting again finishes it from its
// checkpoint; a task that reaches its time limit gets USR1 first, checkpoints, requeues itself and
// resumes from that checkpoint. Without Slurm installed (scripts/setup.sh installs it) these tests
// fail, never skip.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>

#include "core/util/text_file.h"
#include "experiments/runner/results_store.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace slurm_test {

namespace fs = std::filesystem;
using test::expect_same_results;
using test::fresh_dir;
using test::repo_path;
using test::run_cli;
using test::run_shell;
using test::stored_runs;


class Slurm : public testing::Test {
 public:
  static void SetUpTestSuite() {
    state_ = fmt::format("/tmp/smyrf-slurm-{}", getpid());
    const auto started = run_shell(script() + " start " + state_);
    ASSERT_EQ(started.exit_code, 0) << "the local Slurm did not start (scripts/setup.sh installs slurm-wlm and munge):\n"
                                    << started.output;
    setenv("SLURM_CONF", (state_ + "/slurm.conf").c_str(), 1);
  }
  static void TearDownTestSuite() {
    const auto stopped = run_shell(script() + " stop " + state_);
    EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
    fs::remove_all(state_);
  }

 protected:
  static std::string script() { return repo_path("scripts/slurm/local_slurm.sh"); }
  static std::string state_;
};
std::string Slurm::state_;

// Waits until the cluster has no job left (pending or running); false after `seconds`.
bool wait_until_idle(int seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto q = run_shell("squeue -h");
    if (q.exit_code == 0 && q.output.empty()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

nlohmann::json submission_of(const fs::path& folder) {
  std::ifstream in(folder / "submission.json");
  return nlohmann::json::parse(in);
}

std::string fidelity_config(const fs::path& dir) { return test::smoke_config(dir, "fidelity_tiny"); }

std::string gan_config(const fs::path& dir, const nlohmann::json& train) {
  return test::smoke_config(dir, "celeba_biggan_tiny",
                            {{"data", {{"path", repo_path("tests/data/celebahq_tiny")}}}, {"train", train}});
}

TEST(SlurmDryRun, ScriptsMatchTheGoldenFile) {
  const fs::path dir = fresh_dir("slurm_dry_run");
  const std::string config = fidelity_config(dir);
  const auto r = run_cli(fmt::format("submit {} --slurm --dry-run --runs-per-task 4 --time 1:00:00 --partition debug "
                                     "--throttle 2 --sbatch=--qos=normal --sbatch '#SBATCH --constraint=a100' "
                                     "--setup 'source /opt/venv/bin/activate' --output {}/res.h5",
                                     config, dir.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // The scripts name the binary by its resolved path (/proc/self/exe) and the files under `dir`.
  const auto replace_all = [](std::string text, const std::string& from, const std::string& to) {
    for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
      text.replace(at, from.size(), to);
    return text;
  };
  std::string got = replace_all(r.output, fs::canonical(SMYRF_CLI_PATH).string(), "@SMYRF@");
  got = replace_all(replace_all(got, SMYRF_CLI_PATH, "@SMYRF@"), dir.string(), "@DIR@");
  EXPECT_EQ(got, read_text_file(repo_path("tests/data/slurm/dry_run.golden"), "the golden dry-run scripts"));
  EXPECT_FALSE(fs::exists(dir / "res.slurm")) << "--dry-run writes nothing";

  const auto no_where = run_cli("submit " + config + " --dry-run");
  EXPECT_EQ(no_where.exit_code, 2);
  EXPECT_NE(no_where.output.find("say where to submit: --slurm"), std::string::npos) << no_where.output;
  const auto no_sbatch = run_shell(fmt::format("PATH=/nonexistent {} submit {} --slurm", SMYRF_CLI_PATH, config));
  EXPECT_EQ(no_sbatch.exit_code, 3);
  EXPECT_NE(no_sbatch.output.find("needs Slurm's `sbatch` on PATH"), std::string::npos) << no_sbatch.output;
}

TEST_F(Slurm, AnArrayMergesToTheResultOfSmyrfRun) {
  const fs::path dir = fresh_dir("slurm_array");
  const std::string config = fidelity_config(dir);
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}/local.h5", config, dir.string())).exit_code, 0);
  const auto submitted = run_cli(fmt::format("submit {} --slurm --runs-per-task 3 --output {}/res.h5", config, dir.string()));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  EXPECT_NE(submitted.output.find("submitted 3 of 3 shards (9 runs in all)"), std::string::npos) << submitted.output;
  ASSERT_TRUE(wait_until_idle(900)) << run_shell("squeue").output;
  expect_same_results((dir / "local.h5").string(), (dir / "res.h5").string());
  EXPECT_TRUE(fs::is_regular_file(dir / "res.slurm" / "report.txt"));
  const auto status = run_cli("status " + (dir / "res.slurm").string());
  EXPECT_EQ(status.exit_code, 0) << status.output;
  EXPECT_NE(status.output.find("9 runs, 9 complete"), std::string::npos) << status.output;
  // Everything is done: submitting again submits nothing.
  const auto again = run_cli(fmt::format("submit {} --slurm --runs-per-task 3 --output {}/res.h5", config, dir.string()));
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.output.find("nothing to submit: all 9 runs are complete and merged"), std::string::npos) << again.output;
}

TEST_F(Slurm, ACancelledArraySubmittedAgainRunsOnlyTheMissingShards) {
  const fs::path dir = fresh_dir("slurm_cancel");
  const std::string config = fidelity_config(dir);
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}/local.h5", config, dir.string())).exit_code, 0);
  ASSERT_EQ(run_cli(fmt::format("submit {} --slurm --throttle 1 --output {}/res.h5", config, dir.string())).exit_code, 0);
  const fs::path shards = dir / "res.slurm" / "shards";
  const auto complete_shards = [&] {
    std::vector<int64_t> done;
    for (int i = 0; i < 9; ++i) {
      const fs::path f = shards / fmt::format("shard-{}-of-9.h5", i);
      if (fs::exists(f) && ResultsStore::open_existing(f.string()).status(
                               ResultsStore::open_existing(f.string()).header().shard->run_ids.at(0)) == "complete")
        done.push_back(i);
    }
    return done;
  };
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (complete_shards().size() < 3 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::string array = submission_of(dir / "res.slurm")["submissions"][0]["array_job"];
  run_shell("scancel " + array);
  ASSERT_TRUE(wait_until_idle(120));
  const std::vector<int64_t> done_before = complete_shards();
  ASSERT_GE(done_before.size(), 3u);
  ASSERT_LT(done_before.size(), 9u) << "the array finished before it was cancelled";

  const auto again = run_cli(fmt::format("submit {} --slurm --throttle 1 --output {}/res.h5", config, dir.string()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  const std::vector<int64_t> resubmitted = submission_of(dir / "res.slurm")["submissions"][1]["shards"];
  for (int64_t i : resubmitted)
    EXPECT_EQ(std::count(done_before.begin(), done_before.end(), i), 0) << "shard " << i << " was complete";
  EXPECT_EQ(resubmitted.size() + done_before.size(), 9u);
  ASSERT_TRUE(wait_until_idle(900));
  expect_same_results((dir / "local.h5").string(), (dir / "res.h5").string());
}

// The shard file's checkpoint step of the GAN run ("run"), 0 when there is none yet.
int64_t checkpoint_step(const fs::path& dir) {
  std::ifstream in(dir / "res.slurm" / "shards" / "shard-0-of-1.checkpoints" / "run" / "ckpt" / "state.json");
  const auto saved = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
  return saved.is_object() ? saved.at("state").at("step").get<int64_t>() : 0;
}

TEST_F(Slurm, ATaskRequeuedMidRunResumesFromItsCheckpoint) {
  const fs::path dir = fresh_dir("slurm_requeue");
  const std::string config = gan_config(dir, {{"iterations", 120}, {"checkpoint_every", 10}, {"sample_every", 0}});
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}/local.h5", config, dir.string())).exit_code, 0);
  ASSERT_EQ(run_cli(fmt::format("submit {} --slurm --output {}/res.h5", config, dir.string())).exit_code, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (checkpoint_step(dir) < 20 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_GE(checkpoint_step(dir), 20) << "no checkpoint appeared";
  const std::string array = submission_of(dir / "res.slurm")["submissions"][0]["array_job"];
  const auto requeued = run_shell("scontrol requeue " + array + "_0");
  ASSERT_EQ(requeued.exit_code, 0) << requeued.output;
  ASSERT_TRUE(wait_until_idle(900)) << run_shell("squeue").output;
  const StoredRun run = stored_runs((dir / "res.h5").string()).at("run");
  ASSERT_EQ(run.status, "complete") << run.error;
  EXPECT_GE(run.result.metrics.at("resumed_from_step").value, 20) << "the second start resumed, not restarted";
  expect_same_results((dir / "local.h5").string(), (dir / "res.h5").string());
}

TEST_F(Slurm, AKilledTaskLeavesItsRunStoppedTheRestGoesOnAndResubmittingFinishesIt) {
  const fs::path dir = fresh_dir("slurm_killed");
  const std::string config = test::smoke_config(
      dir, "celeba_biggan_tiny",
      {{"data", {{"path", repo_path("tests/data/celebahq_tiny")}}},
       {"train", {{"iterations", 60}, {"checkpoint_every", 10}, {"sample_every", 0}}},
       {"sweep", {{"seed", {1, 2}}}}});
  ASSERT_EQ(run_cli(fmt::format("submit {} --slurm --output {}/res.h5", config, dir.string())).exit_code, 0);
  const std::string array = submission_of(dir / "res.slurm")["submissions"][0]["array_job"];
  const fs::path ckpt = dir / "res.slurm" / "shards" / "shard-0-of-2.checkpoints" / "seed=1" / "ckpt" / "state.json";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(180);
  while (!fs::exists(ckpt) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(fs::exists(ckpt)) << "task 0 never checkpointed";
  // As the OOM killer would: SIGKILL to the task's `smyrf run` (its worker dies with it), no warning.
  const fs::path shard0 = dir / "res.slurm" / "shards" / "shard-0-of-2.h5";
  // ([-] keeps the pattern from matching the shell that runs pkill)
  ASSERT_EQ(run_shell("pkill -KILL -f -- '[-]-output " + shard0.string() + "'").exit_code, 0);
  ASSERT_TRUE(wait_until_idle(900)) << run_shell("squeue").output;

  // The merge job (after the array) records the dead task's run as failed, with Slurm's word.
  const auto first = stored_runs((dir / "res.h5").string());
  EXPECT_EQ(first.at("seed=2").status, "complete");
  EXPECT_EQ(first.at("seed=1").status, "failed");
  EXPECT_NE(first.at("seed=1").error.find("ended while the run was running"), std::string::npos)
      << first.at("seed=1").error;
  const auto status = run_cli("status " + (dir / "res.slurm").string());
  EXPECT_EQ(status.exit_code, 1) << status.output;
  EXPECT_NE(status.output.find("complete     seed=2"), std::string::npos) << "the other task went on:\n" << status.output;
  EXPECT_NE(status.output.find("stopped      seed=1"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("its Slurm task"), std::string::npos) << status.output;
  EXPECT_NE(status.output.find("task-" + array + "_0.out"), std::string::npos) << "the task's log is named";

  const auto again = run_cli(fmt::format("submit {} --slurm --output {}/res.h5", config, dir.string()));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("submitted 1 of 2 shards"), std::string::npos) << again.output;
  ASSERT_TRUE(wait_until_idle(900)) << run_shell("squeue").output;
  const auto runs = stored_runs((dir / "res.h5").string());
  EXPECT_EQ(runs.at("seed=1").status, "complete") << runs.at("seed=1").error;
  EXPECT_GT(runs.at("seed=1").result.metrics.at("resumed_from_step").value, 0) << "resumed from the killed task's checkpoint";
  EXPECT_EQ(runs.at("seed=2").status, "complete");
}

// How many times the task's log says it stopped on Slurm's signal and requeued itself.
int self_requeues(const fs::path& logs) {
  int count = 0;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(logs, ec)) {
    const std::string text = read_text_file(entry.path().string(), "a task log");
    for (size_t at = text.find("stopped early on Slurm's signal; requeueing"); at != std::string::npos;
         at = text.find("stopped early on Slurm's signal; requeueing", at + 1))
      ++count;
  }
  return count;
}

// A run far longer than its 1-minute limit: Slurm's USR1 comes 10-40 s into each start (slurmctld
// checks every 30 s); the run checkpoints, the task requeues itself, the next start resumes from
// that checkpoint and is stopped again. Two such stops are waited for (how much work a start gets
// done depends on the machine's load), then the job is cancelled.
TEST_F(Slurm, ATaskAtItsTimeLimitCheckpointsOnUsr1RequeuesItselfAndResumes) {
  const fs::path dir = fresh_dir("slurm_time_limit");
  const std::string config = gan_config(dir, {{"iterations", 100000}, {"checkpoint_every", 0}, {"sample_every", 0}});
  const auto submitted = run_cli(fmt::format("submit {} --slurm --time 1 --signal-lead 50 --output {}/res.h5", config,
                                             dir.string()));
  ASSERT_EQ(submitted.exit_code, 0) << submitted.output;
  const fs::path logs = dir / "res.slurm" / "logs";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(900);
  while (self_requeues(logs) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::seconds(1));
  ASSERT_GE(self_requeues(logs), 2) << run_shell("squeue").output;
  // The run's worker log of the second start (kept when that worker ended) says where it resumed.
  const fs::path worker_log = dir / "res.slurm" / "shards" / "shard-0-of-1.logs" / "run.log";
  const std::string log = read_text_file(worker_log.string(), "the run's worker log");
  EXPECT_NE(log.find("resuming 'run' from step"), std::string::npos) << worker_log << ":\n" << log;
  const StoredRun run = stored_runs((dir / "res.slurm" / "shards" / "shard-0-of-1.h5").string()).at("run");
  EXPECT_EQ(run.status, "interrupted") << "recorded so after each stop, until the next start marks it running";
  EXPECT_NE(run.error.find("stopped on signal 10 after step"), std::string::npos) << run.error;
  run_shell("scancel " + submission_of(dir / "res.slurm")["submissions"][0]["array_job"].get<std::string>() + " " +
        submission_of(dir / "res.slurm")["submissions"][0]["merge_job"].get<std::string>());
  EXPECT_TRUE(wait_until_idle(120)) << run_shell("squeue").output;
}

}  // namespace slurm_test
}  // namespace smyrf
