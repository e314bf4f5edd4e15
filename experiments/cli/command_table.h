// The `smyrf` command line is built from command families, one file each:
//   experiment_commands.cpp  run, validate, worker (internal)
//   cluster_commands.cpp     merge, status, submit
//   report_commands.cpp      report (results table, paper tables), score
//   attention_commands.cpp   methods, attend
//   text_commands.cpp        tokenize, encode
//   image_commands.cpp       fid-stats, fid, kid, inception-score, biggan-forward
// A family adds its subcommands to the app and registers, for each, the function that runs it;
// main.cpp only calls the families, parses, and turns exceptions into exit codes. Adding a command:
// add it to the family it belongs to (or a new family registered in main.cpp), and test it through
// the binary (tests/support/cli_test_support.h).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace smyrf {

class CommandTable {
 public:
  void add(CLI::App* command, std::function<int()> run) { commands_.emplace_back(command, std::move(run)); }
  // Runs the command the user gave (CLI11 requires exactly one).
  int run_parsed() const;

 private:
  std::vector<std::pair<CLI::App*, std::function<int()>>> commands_;
};

struct CliEnvironment {
  std::string self_executable;  // this binary, which `smyrf run` starts as its workers
};

void add_experiment_commands(CLI::App& app, CommandTable& table, const CliEnvironment& environment);
void add_cluster_commands(CLI::App& app, CommandTable& table, const CliEnvironment& environment);
void add_report_commands(CLI::App& app, CommandTable& table);
void add_attention_commands(CLI::App& app, CommandTable& table);
void add_text_commands(CLI::App& app, CommandTable& table);
void add_image_commands(CLI::App& app, CommandTable& table);

}  // namespace smyrf
