// See runner.h. Process isolation: fork + exec of the worker with its stdout/stderr in a log file;
// the worker dies with the runner (PR_SET_PDEATHSIG) so a killed sweep leaves no stray processes.
#include "experiments/runner/runner.h"

#include <c10/util/Exception.h>
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <torch/version.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <thread>

#include "core/attention/registry.h"
#include "core/memory/peak_memory.h"
#include "core/util/check.h"
#include "core/util/progress.h"
#include "core/util/provenance.h"
#include "core/util/tensor_threads.h"
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
  bool ok = false;
  std::string error;
  RunResult result;
};

// Called while the worker runs with what it last reported through RunContext::progress.
using WorkerProgress = std::function<void(const nlohmann::json& progress)>;

WorkerOutcome spawn_worker(const std::string& exe, const std::string& config_path, const std::string& run_id,
                           const std::string& output_path, const std::string& scratch_dir,
                           const WorkerProgress& on_progress) {
  const std::string result_path = scratch_dir + "/result.h5", log_path = scratch_dir + "/worker.log";
  const std::string progress_path = scratch_dir + "/progress.json";
  fs::remove(result_path);
  fs::remove(progress_path);
  std::vector<std::string> args = {exe,         "worker",     config_path, "--run-id",   run_id, "--result",
                                   result_path, "--output",   output_path, "--progress", progress_path};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
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
    execv(exe.c_str(), argv.data());
    const char message[] = "smyrf runner: could not execute the worker binary\n";
    (void)!write(2, message, sizeof message - 1);  // async-signal-safe, unlike anything formatted
    _exit(127);
  }
  int status = 0;
  fs::file_time_type seen{};
  for (;;) {
    const pid_t waited = waitpid(pid, &status, WNOHANG);
    if (waited == pid) break;
    SMYRF_CHECK(waited == 0 || errno == EINTR, "waiting for the worker failed: {}", std::strerror(errno));
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    std::error_code ec;
    const auto stamp = fs::last_write_time(progress_path, ec);
    if (ec || stamp == seen || !on_progress) continue;
    seen = stamp;
    std::ifstream in(progress_path);
    const nlohmann::json progress = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (progress.is_object()) on_progress(progress);
  }
  WorkerOutcome outcome;
  WorkerResult result;
  if (fs::exists(result_path)) {
    try {
      result = read_worker_result(result_path);
    } catch (const std::exception&) {
      // a worker killed while writing leaves half a file: reported below from its exit status
    }
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0 && result.result) {
    outcome.ok = true;
    outcome.result = std::move(*result.result);
    return outcome;
  }
  if (!result.error.empty()) {
    outcome.error = result.error;
  } else if (WIFSIGNALED(status)) {
    outcome.error = fmt::format("worker killed by signal {} ({}){}", WTERMSIG(status), strsignal(WTERMSIG(status)),
                                WTERMSIG(status) == SIGKILL ? "; out of memory? lower the sizes" : "");
  } else {
    outcome.error = fmt::format("worker exited with code {}: {}", WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                                tail_of_file(log_path, 600));
  }
  return outcome;
}

}  // namespace

std::string torch_version_string() { return TORCH_VERSION; }

ExperimentPlan plan_experiment(const std::string& config_path, const std::optional<std::string>& output_override) {
  ExperimentPlan plan;
  plan.experiment = load_experiment_config(config_path);
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
  return plan;
}

RunnerSummary run_experiment(const RunnerOptions& options) {
  const ExperimentPlan plan = plan_experiment(options.config_path, options.output_override);
  RunnerSummary summary;
  summary.output_path = plan.output_path;
  summary.total = static_cast<int64_t>(plan.experiment.runs.size());
  const fs::path out_dir = fs::absolute(plan.output_path).parent_path();
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  if (ec)
    throw IoError(fmt::format("cannot create the output directory '{}' ({}); set output.path to a writable location "
                              "or pass --output", out_dir.string(), ec.message()));
  const std::string device = plan.experiment.runs.front().config.value("device", std::string("cpu"));
  ResultsStore store = ResultsStore::open_or_create(plan.output_path, plan.experiment.as_given,
                                                    collect_provenance(device, torch_version_string()));
  const std::string scratch = fs::temp_directory_path().string() + fmt::format("/smyrf-run-{}", getpid());
  fs::create_directories(scratch);

  ProgressBar bar(plan.experiment.runs.front().config.value("name", std::string("sweep")), summary.total);
  int64_t done = 0;
  for (const RunSpec& run : plan.experiment.runs) {
    const auto status = store.status(run.run_id);
    if (status == std::optional<std::string>("complete")) {
      const auto stored = store.resolved_config(run.run_id);
      if (!stored || identity_of(*stored) != identity_of(run.config))
        throw ConfigError(fmt::format(
            "'{}' already holds a complete run '{}' made with a different config; write to a new file (--output) or "
            "delete the old one", plan.output_path, run.run_id));
      ++summary.skipped;
      ++done;
      if (options.progress) bar.update(done, run.run_id + " (done earlier)");
      continue;
    }
    store.mark_running(run_info_of(run));
    // The run's own progress (e.g. training steps) rides on the sweep's bar, throttled so that logs
    // (no terminal) get a line every 30 s rather than one per step.
    auto last_shown = std::chrono::steady_clock::now() - std::chrono::hours(1);
    const auto show_progress = [&](const nlohmann::json& p) {
      const auto now = std::chrono::steady_clock::now();
      if (!options.progress || now - last_shown < std::chrono::seconds(bar.interactive() ? 1 : 30)) return;
      last_shown = now;
      const double done_steps = p.value("done", 0.0), total_steps = p.value("total", 0.0), rate = p.value("rate", 0.0);
      bar.update(done, fmt::format("{}: {} {:.0f}/{:.0f}, {:.2f}/s, ETA {}", run.run_id, p.value("note", std::string()),
                                   done_steps, total_steps, rate,
                                   rate > 0 ? format_duration((total_steps - done_steps) / rate) : "?"));
    };
    const WorkerOutcome outcome =
        spawn_worker(options.worker_executable, options.config_path, run.run_id, plan.output_path, scratch, show_progress);
    if (outcome.ok) {
      store.complete(run.run_id, outcome.result);
      ++summary.completed;
    } else {
      store.fail(run.run_id, outcome.error);
      ++summary.failed;
      summary.failures.push_back(run.run_id + ": " + outcome.error);
    }
    ++done;
    if (options.progress) bar.update(done, run.run_id + (outcome.ok ? "" : " FAILED"));
  }
  fs::remove_all(scratch, ec);
  return summary;
}

int run_worker(const std::string& config_path, const std::string& run_id, const std::string& result_path,
               const std::string& output_path, const std::string& progress_path) {
  std::string error;
  try {
    const ExperimentConfig experiment = load_experiment_config(config_path);
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
    set_torch_threads(run->config.value("threads", 0));  // 0: every core
    const std::unique_ptr<const RunPlan> plan = pipeline.plan(run->config, context);
    RunResult result = pipeline.run(*plan, context);
    // this process's own high-water mark (a parent-side rusage would include the runner's pages
    // inherited at fork)
    result.metrics["process_peak_rss_bytes"] = {static_cast<double>(read_process_memory().peak_rss_bytes), "bytes",
                                                false};
    write_worker_result(result_path, result);
    return 0;
  } catch (const c10::Error& e) {
    error = e.what_without_backtrace();
  } catch (const std::bad_alloc&) {
    error = "out of memory; lower the sizes (data.n_queries, batch, heads) or the method's knobs";
  } catch (const std::exception& e) {
    error = e.what();
  }
  try {
    write_worker_error(result_path, error);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n(and the worker could not write it to '{}': {})\n", error, result_path, e.what());
  }
  return 1;
}

}  // namespace smyrf
