// Provenance: where a result came from (harness version, git commit and dirty flag, time, host,
// device, torch version), stored as root attributes of every results file.
//
// Torch-free: the caller passes the device and torch version strings. The git state is read
// from SMYRF_SOURCE_DIR (the source tree this binary was built from); without git or outside a
// work tree git_sha is "unknown" and git_dirty false. Tested in tests/light/test_results_store.cpp.
#pragma once

#include <string>

#include "core/util/hdf5_file.h"

namespace smyrf {

struct Provenance {
  std::string harness_version;  // SMYRF_VERSION, e.g. "0.1.0"
  std::string git_sha;          // full 40-hex HEAD of SMYRF_SOURCE_DIR, or "unknown"
  bool git_dirty = false;       // tracked files modified (untracked files ignored, as git describe --dirty)
  std::string created_utc;      // ISO-8601 UTC, "2026-11-22T12:00:00Z"
  std::string host;             // gethostname()
  std::string device;           // e.g. "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)"
  std::string torch_version;    // e.g. "2.5.1", or "" for torch-free tools
};

Provenance collect_provenance(std::string device, std::string torch_version);

// Every field as a root attribute of `file` (harness_version, git_sha, git_dirty, created_utc,
// host, device, torch_version): how results and feature files record where they came from.
void write_provenance_attrs(H5File& file, const Provenance& p);

// The current time as "YYYY-MM-DDTHH:MM:SSZ" (UTC, whole seconds).
std::string utc_now_iso8601();

}  // namespace smyrf
