// See runner.h. Process isolation: fork + exec of each worker with its stdout/stderr in a log file;
// a worker dies with the runner (PR_SET_PDEATHSIG) so a killed sweep leaves no stray processes.
#include "experiments/runner/runner.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <optional>
#include <sstream>
#include <thread>

#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"
#include "core/util/progress.h"
#include "core/util/provenance.h"
#include "core/util/tensor_threads.h"
#include "core/util/strings.h"
#include "experiments/runner/interrupt.h"
#include "experiments/runner/pipeline.h"
#include "experiments/runner/results_store.h"

namespace smyrf {
namespace {

namespace fs = std::filesystem;

std::string tail_of_file(const std::string& path, size_t max_chars) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  std::string s = ss.str();
  if (s.size() > max_chars) s = "..." + s.substr(s.size() - max_chars);
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

// Everything of a run's config that decides its result. The results file's location does not; other
// output keys (capture's captured_qkv file) do.
nlohmann::json identity_of(nlohmann::json config) {
  if (config.contains("output") && config["output"].is_object()) {
    config["output"].erase("path");
    if (config["output"].empty()) config.erase("output");
  }
  return config;
}

// The method's size knobs as the run sets them (the method fills in its defaults). A knob that a
// memory_budget chooses is decided when the run starts and logged as its budget_<knob> metric.
std::vector<std::pair<std::string, int64_t>> knobs_of(const nlohmann::json& attention) {
  if (!attention.is_object() || !attention.contains("method")) return {};
  nlohmann::json options = attention;
  options.erase("memory_budget");
  const auto method = make_attention(options);  // validated before any run starts
  const std::vector<std::string> budget_keys =
      attention.contains("memory_budget") && !attention.at("memory_budget").is_null()
          ? method->budget_knob(AttentionShape{}).keys
          : std::vector<std::string>{};
  const nlohmann::json resolved = method->options_json();
  std::vector<std::pair<std::string, int64_t>> knobs;
  for (const std::string& name : method->reported_knobs())
    if (std::find(budget_keys.begin(), budget_keys.end(), name) == budget_keys.end() &&
        resolved.value(name, nlohmann::json()).is_number_integer())
      knobs.emplace_back(name, resolved.at(name).get<int64_t>());
  return knobs;
}

RunInfo run_info_of(const RunSpec& run) {
  RunInfo info;
  info.run_id = run.run_id;
  info.resolved_config = run.config;
  info.sweep_point = run.sweep_point;
  const nlohmann::json attention = run.config.value("attention", nlohmann::json::object());
  info.method = attention.value("method", std::string());
  info.knobs = knobs_of(attention);
  info.seed = run.config.value("seed", int64_t{0});
  return info;
}

struct WorkerOutcome {
  enum class End { kComplete, kFailed, kInterrupted } end = End::kFailed;
  std::string error;
  RunResult result;
};

// One worker process of the sweep and where it reports.
struct ActiveWorker {
  pid_t pid = -1;
  const RunSpec* run = nullptr;
  std::string scratch;  // its own folder: result.h5, worker.log, progress.json
  size_t slot = 0;      // which --jobs slot (and GPU) it holds
  int64_t memory_limit_bytes = 0;  // the --worker-memory it runs under (0 = none)
  fs::file_time_type progress_seen{};
  std::string progress_text;  // what it last reported, for the bar
};

// What every worker of a sweep is started with.
struct WorkerLaunch {
  std::string exe, config_path, output_path;
  int default_threads = 0;            // when the config leaves `threads` at 0; 0 = every core
  std::vector<std::string> gpus;      // CUDA_VISIBLE_DEVICES per slot (empty: inherited)
  std::string logs_dir;               // each run's worker log is kept there as <run_id>.log
  int64_t memory_limit_bytes = 0;     // passed to the worker (--memory-limit); 0 = none
};

ActiveWorker start_worker(const WorkerLaunch& launch, const RunSpec& run, const std::string& scratch, size_t slot) {
  fs::create_directories(scratch);
  ActiveWorker w;
  w.run = &run;
  w.scratch = scratch;
  w.slot = slot;
  w.memory_limit_bytes = launch.memory_limit_bytes;
  const std::string result_path = scratch + "/result.h5", log_path = scratch + "/worker.log";
  const std::string progress_path = scratch + "/progress.json";
  fs::remove(result_path);
  fs::remove(progress_path);
  std::vector<std::string> args = {launch.exe,  "worker",   launch.config_path, "--run-id",   run.run_id,
                                   "--result",  result_path, "--output",        launch.output_path,
                                   "--progress", progress_path, "--threads", std::to_string(launch.default_threads),
                                   "--memory-limit", std::to_string(launch.memory_limit_bytes)};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string gpu = launch.gpus.empty() ? std::string() : launch.gpus[slot % launch.gpus.size()];
  const pid_t parent = getpid();
  const pid_t pid = fork();
  SMYRF_CHECK(pid >= 0, "could not start a worker process: {}", std::strerror(errno));
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the runner died before prctl took effect
    const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    if (!gpu.empty()) setenv("CUDA_VISIBLE_DEVICES", gpu.c_str(), 1);
    execv(launch.exe.c_str(), argv.data());
    const char message[] = "smyrf runner: could not execute the worker binary\n";
    (void)!write(2, message, sizeof message - 1);  // async-signal-safe, unlike anything formatted
    _exit(127);
  }
  w.pid = pid;
  return w;
}

// Reads what the worker last reported (nothing when its progress file has not changed).
void read_progress(ActiveWorker& w) {
  const std::string path = w.scratch + "/progress.json";
  std::error_code ec;
  const auto stamp = fs::last_write_time(path, ec);
  if (ec || stamp == w.progress_seen) return;
  w.progress_seen = stamp;
  const nlohmann::json p = read_json_file_or_discarded(path);
  if (!p.is_object()) return;
  const double done = p.value("done", 0.0), total = p.value("total", 0.0), rate = p.value("rate", 0.0);
  w.progress_text = fmt::format("{}: {} {:.0f}/{:.0f}, {:.2f}/s, ETA {}", w.run->run_id, p.value("note", std::string()),
                                done, total, rate, rate > 0 ? format_duration((total - done) / rate) : "?");
}

// The outcome of a worker that has exited with `status`.
WorkerOutcome outcome_of(const ActiveWorker& w, int status) {
  const std::string result_path = w.scratch + "/result.h5", log_path = w.scratch + "/worker.log";
  WorkerOutcome outcome;
  WorkerResult result;
  if (fs::exists(result_path)) {
    try {
      result = read_worker_result(result_path);
    } catch (const std::exception&) {
      // a worker killed while writing leaves half a file: reported below from its exit status
    }
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0 && result.result) {
    outcome.end = WorkerOutcome::End::kComplete;
    outcome.result = std::move(*result.result);
    return outcome;
  }
  const bool signalled_stop = WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGUSR1);
  if (code == kInterruptedExitCode || (signalled_stop && interrupt_requested())) {
    outcome.end = WorkerOutcome::End::kInterrupted;
    outcome.error = result.error.empty() ? fmt::format("stopped on signal {}", interrupt_signal()) : result.error;
    return outcome;
  }
  if (!result.error.empty()) {
    outcome.error = result.error;
  } else if (WIFSIGNALED(status)) {
    outcome.error = fmt::format("worker killed by signal {} ({}){}", WTERMSIG(status), strsignal(WTERMSIG(status)),
                                WTERMSIG(status) == SIGKILL ? "; out of memory? lower the sizes" : "");
    if (w.memory_limit_bytes > 0)  // LibTorch cannot even start under a few hundred MiB
      outcome.error += fmt::format(" under the worker memory limit of {} MiB; raise --worker-memory if it is too small "
                                   "for the run",
                                   w.memory_limit_bytes >> 20);
  } else {
    outcome.error = fmt::format("worker exited with code {}: {}", code, tail_of_file(log_path, 600));
  }
  return outcome;
}

}  // namespace

std::string torch_version_string() { return TORCH_VERSION; }

ExperimentPlan plan_experiment(const std::string& config_path, const std::optional<std::string>& output_override,
                               const std::optional<ShardSpec>& shard, int64_t max_runs) {
  ExperimentPlan plan;
  plan.experiment = load_experiment_config(config_path, max_runs);
  const auto& runs = plan.experiment.runs;
  SMYRF_CHECK(!runs.empty(), "config '{}' expands to no runs", config_path);
  plan.pipeline = runs.front().config.value("pipeline", std::string());
  const Pipeline& pipeline = find_pipeline(plan.pipeline, config_path);
  for (const auto& run : runs) {
    if (run.config.value("pipeline", std::string()) != plan.pipeline)
      throw ConfigError(fmt::format("config '{}': run '{}' sweeps 'pipeline'; one config runs one pipeline",
                                    config_path, run.run_id));
    const std::string out = run.config.at("output").at("path").get<std::string>();
    if (!output_override && out != runs.front().config.at("output").at("path").get<std::string>())
      throw ConfigError(fmt::format("config '{}': run '{}' sweeps 'output.path'; all runs of a sweep share one "
                                    "results file", config_path, run.run_id));
    pipeline.plan(run.config, {config_path, run.run_id});  // checks; the worker plans its run again
  }
  plan.output_path = output_override ? *output_override : runs.front().config.at("output").at("path").get<std::string>();
  if (shard) {
    if (shard->count > static_cast<int64_t>(runs.size()))
      throw ConfigError(fmt::format("--shard {}: config '{}' has {} runs, so at most {} shards", shard->label(),
                                    config_path, runs.size(), runs.size()));
    if (!output_override) plan.output_path = shard_file_name(plan.output_path, *shard);
  }
  for (size_t i = 0; i < runs.size(); ++i)
    if (!shard || shard->holds(i)) plan.selected.push_back(i);
  return plan;
}

std::string shard_file_name(const std::string& results_path, const ShardSpec& shard) {
  fs::path p(results_path);
  if (p.extension() == ".h5") p.replace_extension();
  return fmt::format("{}.shard-{}-of-{}.h5", p.string(), shard.index, shard.count);
}

namespace {

// The selected runs that are not complete yet; a complete run must have been made by the same config.
std::vector<const RunSpec*> pending_runs(const ExperimentPlan& plan, const ResultsStore& store, RunnerSummary& summary) {
  std::vector<const RunSpec*> todo;
  for (size_t i : plan.selected) {
    const RunSpec& run = plan.experiment.runs[i];
    if (store.status(run.run_id) != std::optional<std::string>("complete")) {
      todo.push_back(&run);
      continue;
    }
    const auto stored = store.resolved_config(run.run_id);
    if (!stored || identity_of(*stored) != identity_of(run.config))
      throw ConfigError(fmt::format(
          "'{}' already holds a complete run '{}' made with a different config; write to a new file (--output) or "
          "delete the old one", plan.output_path, run.run_id));
    ++summary.skipped;
  }
  return todo;
}

void record_outcome(ResultsStore& store, RunnerSummary& summary, const RunSpec& run, const WorkerOutcome& outcome,
                    const std::string& log_path) {
  switch (outcome.end) {
    case WorkerOutcome::End::kComplete:
      store.complete(run.run_id, outcome.result);
      ++summary.completed;
      return;
    case WorkerOutcome::End::kInterrupted:
      store.interrupt(run.run_id, outcome.error);
      ++summary.interrupted;
      return;
    case WorkerOutcome::End::kFailed:
      store.fail(run.run_id, fmt::format("{} (log: {})", outcome.error, log_path));
      ++summary.failed;
      summary.failures.push_back(run.run_id + ": " + outcome.error);
      return;
  }
}

// Runs `todo` with up to `jobs` workers at once; only this process writes the results file.
void execute_runs(const std::vector<const RunSpec*>& todo, const WorkerLaunch& launch, size_t jobs,
                  const std::string& scratch, ResultsStore& store, RunnerSummary& summary, ProgressBar* bar) {
  std::vector<ActiveWorker> active;
  std::vector<bool> slot_busy(jobs, false);
  size_t next = 0;
  int64_t done = summary.skipped;
  bool forwarded = false;
  auto last_shown = std::chrono::steady_clock::now() - std::chrono::hours(1);
  while (next < todo.size() || !active.empty()) {
    while (!interrupt_requested() && next < todo.size() && active.size() < jobs) {
      const size_t slot = static_cast<size_t>(std::find(slot_busy.begin(), slot_busy.end(), false) - slot_busy.begin());
      slot_busy[slot] = true;
      const RunSpec& run = *todo[next++];
      store.mark_running(run_info_of(run));
      active.push_back(start_worker(launch, run, scratch + "/slot-" + std::to_string(slot), slot));
    }
    if (interrupt_requested() && !forwarded) {
      for (const ActiveWorker& w : active) kill(w.pid, interrupt_signal());
      forwarded = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (auto it = active.begin(); it != active.end();) {
      int status = 0;
      const pid_t waited = waitpid(it->pid, &status, WNOHANG);
      SMYRF_CHECK(waited >= 0 || errno == EINTR, "waiting for a worker failed: {}", std::strerror(errno));
      if (waited != it->pid) {
        read_progress(*it);
        ++it;
        continue;
      }
      const WorkerOutcome outcome = outcome_of(*it, status);
      std::error_code copied;  // a worker that could not even open its log leaves none to keep
      fs::copy_file(it->scratch + "/worker.log", launch.logs_dir + "/" + it->run->run_id + ".log",
                    fs::copy_options::overwrite_existing, copied);
      record_outcome(store, summary, *it->run, outcome, launch.logs_dir + "/" + it->run->run_id + ".log");
      ++done;
      if (bar) bar->update(done, it->run->run_id + (outcome.end == WorkerOutcome::End::kComplete ? "" : " " + outcome.error.substr(0, 60)));
      slot_busy[it->slot] = false;
      it = active.erase(it);
    }
    // The active runs' own progress (e.g. training steps), throttled so that logs (no terminal) get a
    // line every 30 s rather than one per step.
    const auto now = std::chrono::steady_clock::now();
    if (bar && !active.empty() && now - last_shown >= std::chrono::seconds(bar->interactive() ? 1 : 30)) {
      last_shown = now;
      std::vector<std::string> parts;
      for (const ActiveWorker& w : active) parts.push_back(w.progress_text.empty() ? w.run->run_id : w.progress_text);
      bar->update(done, join(parts, " | "));
    }
  }
}

}  // namespace

RunnerSummary run_experiment(const RunnerOptions& options) {
  const ExperimentPlan plan = plan_experiment(options.config_path, options.output_override, options.shard, options.max_runs);
  if (options.jobs < 1) throw ConfigError(fmt::format("--jobs is {}; it must be >= 1", options.jobs));
  if (!options.gpus.empty() && options.jobs > static_cast<int64_t>(options.gpus.size()))
    throw ConfigError(fmt::format("--jobs {} with --gpus naming {} devices: one worker per GPU, so give at most {} jobs",
                                  options.jobs, options.gpus.size(), options.gpus.size()));
  RunnerSummary summary;
  summary.output_path = plan.output_path;
  summary.total = static_cast<int64_t>(plan.selected.size());
  const fs::path out_dir = fs::absolute(plan.output_path).parent_path();
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw IoError(fmt::format("cannot create the output directory '{}' ({}); set output.path to a writable location "
                              "or pass --output", out_dir.string(), ec.message()));
  const WriterLock lock(plan.output_path);
  const std::string device = plan.experiment.runs.front().config.value("device", std::string("cpu"));
  std::optional<ShardSpec> shard = options.shard;
  if (shard) {
    shard->sweep_runs = static_cast<int64_t>(plan.experiment.runs.size());
    for (size_t i : plan.selected) shard->run_ids.push_back(plan.experiment.runs[i].run_id);
  }
  ResultsStore store = ResultsStore::open_or_create(plan.output_path, plan.experiment.as_given,
                                                    collect_provenance(device, torch_version_string()), shard);
  install_interrupt_handlers();
  const std::vector<const RunSpec*> todo = pending_runs(plan, store, summary);

  WorkerLaunch launch;
  launch.exe = options.worker_executable;
  launch.config_path = options.config_path;
  launch.output_path = plan.output_path;
  launch.logs_dir = logs_folder(plan.output_path);
  fs::create_directories(launch.logs_dir);
  launch.gpus = options.gpus;
  launch.default_threads = options.jobs > 1 ? std::max(1, available_cores() / static_cast<int>(options.jobs)) : 0;
  launch.memory_limit_bytes = options.worker_memory_bytes;
  const std::string scratch = fs::temp_directory_path().string() + fmt::format("/smyrf-run-{}", getpid());
  ProgressBar bar(plan.experiment.runs.front().config.value("name", std::string("sweep")), summary.total);
  if (options.progress && summary.skipped > 0) bar.update(summary.skipped, fmt::format("{} done earlier", summary.skipped));
  execute_runs(todo, launch, static_cast<size_t>(options.jobs), scratch, store, summary,
               options.progress ? &bar : nullptr);
  // Runs a stop request kept from starting are still to do: exit as interrupted, so they are run again.
  summary.interrupted += summary.total - summary.skipped - summary.completed - summary.failed - summary.interrupted;
  fs::remove_all(scratch, ec);
  return summary;
}

std::string logs_folder(const std::string& results_path) {
  fs::path p(results_path);
  if (p.extension() == ".h5") p.replace_extension();
  return p.string() + ".logs";
}

namespace {

// RLIMIT_DATA (heap and anonymous mappings since Linux 4.7) rather than RLIMIT_AS: LibTorch maps
// gigabytes of shared libraries that a limit on address space would count.
void limit_memory(int64_t bytes) {
  if (bytes <= 0) return;
  const rlimit limit{static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
  SMYRF_CHECK(setrlimit(RLIMIT_DATA, &limit) == 0, "could not limit the worker's memory to {} bytes: {}", bytes,
              std::strerror(errno));
}

// An allocation failure says which limit it hit, so that a failed run reads as the limit's doing.
std::string with_memory_limit(const std::string& error, int64_t bytes) {
  const bool allocation = error.find("memory") != std::string::npos || error.find("alloc") != std::string::npos;
  if (bytes <= 0 || !allocation) return error;
  return fmt::format("{} (the worker memory limit is {} MiB: --worker-memory)", error, bytes >> 20);
}

}  // namespace

int run_worker(const std::string& config_path, const std::string& run_id, const std::string& result_path,
               const std::string& output_path, const std::string& progress_path, int default_threads,
               int64_t memory_limit_bytes) {
  std::string error;
  try {
    limit_memory(memory_limit_bytes);
    // the parent `smyrf run` has checked the sweep's size against its --max-runs
    const ExperimentConfig experiment = load_experiment_config(config_path, std::numeric_limits<int64_t>::max());
    const RunSpec* run = nullptr;
    for (const auto& r : experiment.runs)
      if (r.run_id == run_id) run = &r;
    if (run == nullptr) throw ConfigError(fmt::format("config '{}' has no run '{}'", config_path, run_id));
    const Pipeline& pipeline = find_pipeline(run->config.value("pipeline", std::string()), config_path);
    RunContext context{config_path, run_id, output_path, {}};
    // The rate counts from the first report of this process (not from loading, nor from steps a
    // resumed run did before).
    std::optional<std::pair<int64_t, std::chrono::steady_clock::time_point>> first;
    auto last_write = std::chrono::steady_clock::now() - std::chrono::hours(1);
    if (!progress_path.empty())
      context.progress = [&](int64_t done, int64_t total, const std::string& note) {
        const auto now = std::chrono::steady_clock::now();
        if (!first) first.emplace(done, now);
        if (now - last_write < std::chrono::milliseconds(500) && done < total) return;
        last_write = now;
        const double elapsed = std::chrono::duration<double>(now - first->second).count();
        const double rate = elapsed > 0 ? static_cast<double>(done - first->first) / elapsed : 0.0;
        const std::string tmp = progress_path + ".tmp";
        std::ofstream(tmp) << nlohmann::json{{"done", done}, {"total", total}, {"note", note}, {"rate", rate}}.dump();
        std::error_code ec;
        fs::rename(tmp, progress_path, ec);  // the runner never sees half a file
      };
    // threads first, before planning touches LibTorch, as the pipelines did when they set them
    const int threads = run->config.value("threads", 0);
    set_torch_threads(threads > 0 ? threads : default_threads);  // 0: every core
    if (pipeline.checkpoints()) install_interrupt_handlers();
    const std::unique_ptr<const RunPlan> plan = pipeline.plan(run->config, context);
    RunResult result = pipeline.run(*plan, context);
    // this process's own high-water mark (a parent-side rusage would include the runner's pages
    // inherited at fork)
    result.metrics["process_peak_rss_bytes"] = {static_cast<double>(read_process_memory().peak_rss_bytes), "bytes",
                                                false};
    // which GPU(s) a --gpus slot or a Slurm task gave this run
    if (const char* gpus = std::getenv("CUDA_VISIBLE_DEVICES")) result.notes["cuda_visible_devices"] = gpus;
    write_worker_result(result_path, result);
    return 0;
  } catch (const Interrupted& e) {
    error = e.what();
    try {
      write_worker_error(result_path, error);
    } catch (const std::exception&) {
    }
    return kInterruptedExitCode;
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    error = "out of memory; lower the sizes (data.n_queries, batch, heads) or the method's knobs";
  } catch (const std::exception& e) {
    error = e.what();
  }
  error = with_memory_limit(error, memory_limit_bytes);
  try {
    write_worker_error(result_path, error);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n(and the worker could not write it to '{}': {})\n", error, result_path, e.what());
  }
  return 1;
}

}  // namespace smyrf
