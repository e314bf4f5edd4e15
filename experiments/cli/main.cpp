// `smyrf`: the harness's command line. The commands live in families (command_table.h lists them);
// `smyrf --help` and `smyrf COMMAND --help` describe each. This is the only place where exceptions
// become exit codes: 0 ok, 1 runs failed or internal error, 2 bad config or bad usage (unknown
// flag, missing argument), 3 file problem.
#include <CLI/CLI.hpp>
#include <c10/util/Exception.h>
#include <fmt/format.h>

#include <cstdlib>
#include <filesystem>
#include <new>

#include "core/util/check.h"
#include "experiments/cli/command_table.h"

namespace smyrf {

int CommandTable::run_parsed() const {
  for (const auto& [command, run] : commands_)
    if (command->parsed()) return run();
  throw Error("no command was given; see smyrf --help");
}

}  // namespace smyrf

namespace {

std::string self_executable(const char* argv0) {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string(argv0) : exe.string();
}

int main_impl(int argc, char** argv) {
  CLI::App app{"smyrf: benchmark and reproduce efficient attention (SMYRF and peers)"};
  app.require_subcommand(1);
  smyrf::CommandTable table;
  smyrf::add_experiment_commands(app, table, {self_executable(argv[0])});
  smyrf::add_cluster_commands(app, table, {self_executable(argv[0])});
  smyrf::add_report_commands(app, table);
  smyrf::add_attention_commands(app, table);
  smyrf::add_text_commands(app, table);
  smyrf::add_image_commands(app, table);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // --help and --version are "errors" with code 0; every usage error exits 2, as documented.
    const int code = app.exit(e);
    return code == 0 ? 0 : 2;
  }
  return table.run_parsed();
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
