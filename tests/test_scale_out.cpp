// Sweeps beyond one process, through the binary: `smyrf run --jobs N` gives the results of
// --jobs 1; `--shard I/N` files merged with `smyrf merge` give the results of the whole sweep (and
// merging again, or in two goes, changes nothing); merge refuses foreign files and reports missing
// and duplicate runs; a second writer of a results file is refused; `smyrf status` lists what is
// complete, failed and missing; a training run asked to stop (SIGUSR1, as Slurm does before a time
// limit) checkpoints, is recorded "interrupted", makes `smyrf run` exit 75, and resumes to the
// result of an uninterrupted run. The Slurm side is tests/test_slurm.cpp.
#include <gtest/gtest.h>
#include <signal.h>

#include <filesystem>
#include <set>

#include "core/util/tensor_threads.h"
#include "experiments/runner/results_store.h"
#include "support/cli_test_support.h"

namespace smyrf {
namespace scale_out_test {

namespace fs = std::filesystem;
using test::expect_same_results;
using test::fresh_dir;
using test::repo_path;
using test::run_cli;
using test::stored_runs;
using test::write_file;

std::string fidelity_config(const fs::path& dir) { return test::smoke_config(dir, "fidelity_tiny"); }

TEST(ScaleOut, TwoJobsGiveTheResultsOfOne) {
  const fs::path dir = fresh_dir("scale_out_jobs");
  const std::string config = fidelity_config(dir);
  const auto one = run_cli("run --no-progress " + config + " --output " + (dir / "one.h5").string());
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const auto two = run_cli("run --no-progress --jobs 2 " + config + " --output " + (dir / "two.h5").string());
  ASSERT_EQ(two.exit_code, 0) << two.output;
  EXPECT_NE(two.output.find("9 runs: 9 completed"), std::string::npos) << two.output;
  expect_same_results((dir / "one.h5").string(), (dir / "two.h5").string());
  // each run's worker log is kept beside the results
  EXPECT_TRUE(fs::is_regular_file(dir / "two.logs" / "method=dense.log"));

  // A config that leaves `threads` to the machine: each of N workers gets cores / N.
  fs::create_directories(dir / "machine_threads");
  const std::string all_cores = test::smoke_config(dir / "machine_threads", "fidelity_tiny", {{"threads", 0}});
  const int cores = available_cores();
  for (const int jobs : {1, 2}) {
    const std::string out = (dir / fmt::format("threads_{}.h5", jobs)).string();
    ASSERT_EQ(run_cli(fmt::format("run --no-progress --jobs {} {} --output {}", jobs, all_cores, out)).exit_code, 0);
    for (const auto& [id, run] : stored_runs(out))
      EXPECT_EQ(run.result.metrics.at("threads").value, std::max(1, cores / jobs)) << id << " with --jobs " << jobs;
  }
  // --gpus: worker slot k sees only the k-th device (CPU runs here: the note shows what each saw).
  const auto pinned = run_cli("run --no-progress --gpus 7,9 " + config + " --output " + (dir / "gpus.h5").string());
  ASSERT_EQ(pinned.exit_code, 0) << pinned.output;
  std::set<std::string> seen;
  for (const auto& [id, run] : stored_runs((dir / "gpus.h5").string())) seen.insert(run.result.notes.at("cuda_visible_devices"));
  EXPECT_EQ(seen, (std::set<std::string>{"7", "9"}));
  const auto bad = run_cli("run --no-progress --jobs 3 --gpus 0,1 " + config + " --output " + (dir / "x.h5").string());
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("one worker per GPU"), std::string::npos) << bad.output;
}

TEST(ScaleOut, ShardsMergeIntoTheWholeSweepAndMergingAgainChangesNothing) {
  const fs::path dir = fresh_dir("scale_out_shards");
  const std::string config = fidelity_config(dir);
  const std::string whole = (dir / "whole.h5").string(), merged = (dir / "merged.h5").string();
  ASSERT_EQ(run_cli("run --no-progress " + config + " --output " + whole).exit_code, 0);
  std::vector<std::string> shards;
  for (int i = 0; i < 3; ++i) {
    shards.push_back((dir / fmt::format("s{}.h5", i)).string());
    const auto r = run_cli(fmt::format("run --no-progress --shard {}/3 {} --output {}", i, config, shards.back()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("3 runs: 3 completed"), std::string::npos) << r.output;
  }
  // Two shards first: the third shard's runs are reported missing.
  const auto partial = run_cli(fmt::format("merge {} {} {}", merged, shards[0], shards[1]));
  EXPECT_EQ(partial.exit_code, 1) << partial.output;
  EXPECT_NE(partial.output.find("missing: shard 2/3 (not given; 3 runs"), std::string::npos) << partial.output;
  const auto rest = run_cli(fmt::format("merge {} {}", merged, shards[2]));
  ASSERT_EQ(rest.exit_code, 0) << rest.output;
  EXPECT_NE(rest.output.find("9 of 9 runs complete"), std::string::npos) << rest.output;
  expect_same_results(whole, merged);
  const auto provenance = stored_runs(merged).at("method=dense").provenance;
  EXPECT_EQ(provenance.at("shard"), "0/3");
  EXPECT_EQ(provenance.at("shard_file"), shards[0]);

  // A run left "running" in a shard whose Slurm array has ended died with its task: with
  // --ended-array the merge records it failed, naming the array and the task.
  const std::string s1_dead = (dir / "s1_dead.h5").string();
  fs::copy_file(shards[1], s1_dead);
  const std::string dead_id = ResultsStore::open_existing(s1_dead).header().shard->run_ids.at(0);
  {
    ResultsStore store = ResultsStore::open_existing(s1_dead);
    store.mark_running(stored_runs(s1_dead).at(dead_id).info);
  }
  const std::string with_dead = (dir / "with_dead.h5").string();
  const auto ended = run_cli(fmt::format("merge {} {} {} {} --ended-array 4242", with_dead, shards[0], s1_dead, shards[2]));
  EXPECT_EQ(ended.exit_code, 1) << ended.output;
  const StoredRun dead = stored_runs(with_dead).at(dead_id);
  EXPECT_EQ(dead.status, "failed");
  EXPECT_NE(dead.error.find("its Slurm task (array job 4242, task 1) ended while the run was running"), std::string::npos)
      << dead.error;
  run_cli(fmt::format("merge {} {}", (dir / "no_end.h5").string(), s1_dead));  // exit 1: shards 0, 2 missing
  EXPECT_EQ(stored_runs((dir / "no_end.h5").string()).at(dead_id).status, "running") << "without --ended-array";

  // Merging everything again imports nothing; a shard given twice is a duplicate.
  const auto again = run_cli(fmt::format("merge {} {} {} {}", merged, shards[0], shards[1], shards[2]));
  ASSERT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("0 runs imported, 9 already there"), std::string::npos) << again.output;
  const auto twice = run_cli(fmt::format("merge {} {} {}", (dir / "dup.h5").string(), shards[0], shards[0]));
  EXPECT_EQ(twice.exit_code, 1);
  EXPECT_NE(twice.output.find("duplicate: method=dense (kept from"), std::string::npos) << twice.output;
}

TEST(ScaleOut, MergeRefusesFilesThatAreNotShardsOfTheSameSweep) {
  const fs::path dir = fresh_dir("scale_out_refusals");
  const std::string config = fidelity_config(dir);
  const std::string s0 = (dir / "s0.h5").string(), whole = (dir / "whole.h5").string();
  ASSERT_EQ(run_cli(fmt::format("run --no-progress --shard 0/4 {} --output {}", config, s0)).exit_code, 0);
  ASSERT_EQ(run_cli(fmt::format("run --no-progress --shard 0/2 {} --output {}", config, (dir / "h0.h5").string())).exit_code, 0);
  const std::string other = write_file(dir / "other.json", nlohmann::json{{"version", 1},
      {"extends", repo_path("configs/smoke/fidelity_tiny.json")}, {"seed", 2}}.dump());
  ASSERT_EQ(run_cli(fmt::format("run --no-progress --shard 1/4 {} --output {}", other, (dir / "o1.h5").string())).exit_code, 0);
  ASSERT_EQ(run_cli(fmt::format("run --no-progress {} --output {}", config, whole)).exit_code, 0);

  const auto not_shard = run_cli(fmt::format("merge {} {} {}", (dir / "m1.h5").string(), s0, whole));
  EXPECT_EQ(not_shard.exit_code, 3);
  EXPECT_NE(not_shard.output.find("'" + whole + "' is not a shard file"), std::string::npos) << not_shard.output;
  const auto other_config = run_cli(fmt::format("merge {} {} {}", (dir / "m2.h5").string(), s0, (dir / "o1.h5").string()));
  EXPECT_EQ(other_config.exit_code, 3);
  EXPECT_NE(other_config.output.find("holds a shard of another config"), std::string::npos) << other_config.output;
  const auto other_split = run_cli(fmt::format("merge {} {} {}", (dir / "m3.h5").string(), s0, (dir / "h0.h5").string()));
  EXPECT_EQ(other_split.exit_code, 3);
  EXPECT_NE(other_split.output.find("is shard 0/2 but"), std::string::npos) << other_split.output;

  // A shard of another harness version.
  const std::string s0_copy = (dir / "s0_other_version.h5").string();
  fs::copy_file(s0, s0_copy);
  {
    H5File f = H5File::open(s0_copy, /*writable=*/true);
    f.set_attr("/", "harness_version", "0.0.1-other");
  }
  const auto other_version = run_cli(fmt::format("merge {} {} {}", (dir / "m4.h5").string(), s0, s0_copy));
  EXPECT_EQ(other_version.exit_code, 3);
  EXPECT_NE(other_version.output.find("was written by harness version 0.0.1-other"), std::string::npos)
      << other_version.output;

  for (const char* spec : {"4/4", "1/0", "-1/4", "a/4", "2"}) {
    const auto r = run_cli(fmt::format("run --no-progress --shard {} {}", spec, config));
    EXPECT_EQ(r.exit_code, 2) << spec;
    EXPECT_NE(r.output.find("give I/N with 0 <= I < N"), std::string::npos) << spec << ": " << r.output;
  }
  const auto too_many = run_cli(fmt::format("run --no-progress --shard 0/10 {}", config));
  EXPECT_EQ(too_many.exit_code, 2);
  EXPECT_NE(too_many.output.find("has 9 runs, so at most 9 shards"), std::string::npos) << too_many.output;
  const auto wrong_file = run_cli(fmt::format("run --no-progress --shard 1/4 {} --output {}", config, s0));
  EXPECT_EQ(wrong_file.exit_code, 3);
  EXPECT_NE(wrong_file.output.find("is shard 0/4, but this run writes shard 1/4"), std::string::npos) << wrong_file.output;
}

TEST(ScaleOut, ASecondWriterOfAResultsFileIsRefused) {
  const fs::path dir = fresh_dir("scale_out_lock");
  const std::string out = (dir / "locked.h5").string();
  const WriterLock held(out);
  const auto r = run_cli(fmt::format("run --no-progress {} --output {}", fidelity_config(dir), out));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_NE(r.output.find(fmt::format("'{}' is being written by another smyrf process (pid {}", out, getpid())),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(fs::exists(out)) << "the refused run must not touch the file";
}

TEST(ScaleOut, StatusListsCompleteFailedAndMissingRuns) {
  const fs::path dir = fresh_dir("scale_out_status");
  const std::string config = fidelity_config(dir);
  const std::string s1 = (dir / "s1.h5").string();
  ASSERT_EQ(run_cli(fmt::format("run --no-progress --shard 1/3 {} --output {}", config, s1)).exit_code, 0);
  const auto complete = run_cli("status " + s1);
  EXPECT_EQ(complete.exit_code, 0) << complete.output;
  EXPECT_NE(complete.output.find("3 runs, 3 complete"), std::string::npos) << complete.output;

  // A run marked failed and one removed: status says so, with the error and the worker log.
  {
    ResultsStore store = ResultsStore::open_existing(s1);
    const std::vector<std::string> ids = store.run_ids();
    store.fail(ids[0], "worker killed by signal 9 (Killed)");
  }
  const auto failed = run_cli("status " + s1);
  EXPECT_EQ(failed.exit_code, 1);
  EXPECT_NE(failed.output.find("1 failed"), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("worker killed by signal 9"), std::string::npos) << failed.output;
  EXPECT_NE(failed.output.find("log: " + (dir / "s1.logs").string()), std::string::npos) << failed.output;
  const auto missing = run_cli("status " + dir.string());
  EXPECT_EQ(missing.exit_code, 3);
  EXPECT_NE(missing.output.find("is a folder without submission.json"), std::string::npos) << missing.output;
}

TEST(ScaleOut, ATrainingRunAskedToStopCheckpointsExits75AndResumesToTheSameResult) {
  const fs::path dir = fresh_dir("scale_out_interrupt");
  const std::string config =
      test::smoke_config(dir, "celeba_biggan_tiny", {{"data", {{"path", repo_path("tests/data/celebahq_tiny")}}}});
  const std::string whole = (dir / "whole.h5").string(), stopped = (dir / "stopped.h5").string();
  ASSERT_EQ(run_cli("run --no-progress " + config + " --output " + whole).exit_code, 0);

  const auto [step, code] = test::signal_run_after_checkpoint(config, stopped, "run", 10, SIGUSR1);
  ASSERT_GE(step, 10) << "no checkpoint appeared";
  ASSERT_EQ(code, 75) << "smyrf run exits 75 when asked to stop, so that a batch script requeues it";
  const StoredRun interrupted = stored_runs(stopped).at("run");
  ASSERT_EQ(interrupted.status, "interrupted");
  EXPECT_NE(interrupted.error.find("stopped on signal 10 after step"), std::string::npos) << interrupted.error;
  const auto status = run_cli("status " + stopped);
  EXPECT_NE(status.output.find("interrupted"), std::string::npos) << status.output;

  const auto resumed = run_cli("run --no-progress " + config + " --output " + stopped);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.output;
  const StoredRun b = stored_runs(stopped).at("run");
  ASSERT_EQ(b.status, "complete") << b.error;
  EXPECT_GT(b.result.metrics.at("resumed_from_step").value, step - 1) << "resumed from the checkpoint of the signal";
  expect_same_results(whole, stopped);  // curves included
}

}  // namespace scale_out_test
}  // namespace smyrf
