// format_report(): a results file as a readable table (terminal or GitHub markdown).
//
// One row per run, sorted by method then knob values (numerically): method and knobs (plus
// run_id when those do not tell runs apart), status, then metrics ordered memory_fraction,
// errors, other quality metrics, counts, times, memory. Fractions print as %, errors with 3
// significant digits, times in ms, bytes in KiB/MiB/GiB, missing values as "-".
// Provenance lines (file, created, git sha, torch, device, run counts) come first; failed runs
// follow the table, one line per distinct error (first line of it).
// Tested by tests/light/test_results_store.cpp.
#pragma once

#include <string>

namespace smyrf {

// Throws IoError when the file is missing or is not a results file.
std::string format_report(const std::string& h5_path, bool markdown);

// One metric value as the report prints it, e.g. ("wall_time_s", "s", 0.0123) -> "12.3 ms".
std::string format_metric_value(const std::string& name, const std::string& unit, double value);

}  // namespace smyrf
