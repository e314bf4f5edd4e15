// Command family: attention methods on their own.
//   smyrf methods                 every registered method: one-line summary, what it supports
//                                 (causal, padding, autograd, seeded, exact), size knobs, default options
//   smyrf attend FILE.h5 --group G --attention JSON --output OUT.h5 [--seed S] [--float64]
//                                 one method on one captured-QKV group (experiments/io/captured_qkv.h):
//                                 writes out_BHNE, lse_BHN (when the method gives one) and the method's
//                                 random draws (aux/<name>) so independent code can check it
// Tested by tests/test_experiments.cpp and tests/python/test_polysketch_numpy.py.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/grad_mode.h>
#include <fmt/format.h>

#include <memory>

#include "core/attention/memory_budget.h"
#include "core/attention/registry.h"
#include "core/util/hdf5_file.h"
#include "core/util/strings.h"
#include "experiments/cli/attention_argument.h"
#include "experiments/cli/command_table.h"
#include "experiments/io/captured_qkv.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

std::string capability_list(const Capabilities& c) {
  std::vector<std::string> names;
  for (const auto& [flag, name] : {std::pair<bool, const char*>{c.causal, "causal"}, {c.padding, "padding"},
                                   {c.autograd, "autograd"}, {c.deterministic_given_seed, "seeded"},
                                   {c.exact, "exact"}, {c.dropout, "dropout"}, {c.lse, "lse"}})
    if (flag) names.emplace_back(name);
  return names.empty() ? "-" : join(names, ", ");
}

int methods_command() {
  for (const auto& name : attention_method_names()) {
    const auto method = make_attention({{"method", name}});
    fmt::print("{:10} {}\n", name, attention_method_summary(name));
    fmt::print("{:10} supports: {}\n", "", capability_list(method->capabilities()));
    if (!method->reported_knobs().empty())
      fmt::print("{:10} size knobs: {}\n", "", join(method->reported_knobs(), ", "));
    fmt::print("{:10} options (defaults): {}\n", "", method->options_json().dump());
  }
  return 0;
}

struct AttendArgs {
  std::string input, group, attention, output;
  uint64_t seed = 0;
  bool float64 = false;
};

int attend_command(const AttendArgs& args) {
  const nlohmann::json attention = parse_attention_argument(args.attention, "--attention");
  const AttentionInputs inputs =
      load_captured_qkv(args.input, args.group, args.float64 ? at::kDouble : at::kFloat, "smyrf attend");
  const auto method =
      make_attention(resolve_memory_budget(attention, shape_of(inputs), "--attention", "").attention, "--attention");
  auto generator = at::make_generator<at::CPUGeneratorImpl>(args.seed);
  at::NoGradGuard no_grad;
  const AttentionOutput out = method->forward(inputs, generator);
  H5File file = H5File::create(args.output);
  file.set_attr("/", "attention_json", method->options_json().dump());
  file.set_attr("/", "seed", static_cast<int64_t>(args.seed));
  write_tensor(file, "/out_BHNE", out.out_BHNE, StoredPrecision::kFloat64);
  if (out.lse_BHN) write_tensor(file, "/lse_BHN", *out.lse_BHN, StoredPrecision::kFloat64);
  file.create_groups("/aux");
  for (const auto& [name, t] : out.aux) write_tensor(file, "/aux/" + name, t, StoredPrecision::kFloat64);
  fmt::print("{}: {} on {}:{} -> {}\n", method->name(), method->options_json().dump(), args.input, args.group,
             args.output);
  return 0;
}

}  // namespace

void add_attention_commands(CLI::App& app, CommandTable& table) {
  table.add(app.add_subcommand("methods", "List the registered attention methods"), methods_command);

  auto a = std::make_shared<AttendArgs>();
  auto* attend = app.add_subcommand("attend", "Run one attention method on a captured-QKV group and write its output");
  attend->add_option("file", a->input, "captured-QKV file (.h5; format in results/README.md)")->required();
  attend->add_option("--group", a->group, "group inside the file")->required();
  attend->add_option("--attention", a->attention, R"(attention object, e.g. '{"method": "smyrf"}')")->required();
  attend->add_option("--output,-o", a->output, "output file (.h5)")->required();
  attend->add_option("--seed", a->seed, "generator seed");
  attend->add_flag("--float64", a->float64, "compute in float64 (default float32)");
  table.add(attend, [a] { return attend_command(*a); });
}

}  // namespace smyrf
