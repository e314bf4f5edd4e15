// `smyrf merge OUT.h5 SHARD.h5...`: the shard files of one sweep (`smyrf run --shard I/N`, e.g. the
// tasks of a Slurm array) into one results file, as `smyrf run` of the whole sweep would have
// written it: every run with its metrics, curves, tensors and timestamps, plus the shard file's
// provenance (host, git, torch, device) in the run's provenance_json; /summary rebuilt.
// Refused (IoError naming the file and what differs): a file that is not a shard file, shards of
// another config (config as given) or harness version, shards of different counts N, an OUT of
// another experiment or that is itself a shard.
// Reported, not refused: runs no given shard holds (whole shards missing, or runs a shard has not
// finished), and runs complete in two shards (the first given wins). Merging is idempotent: a run
// already in OUT with the same status and timestamps is left alone, so merging twice, or an
// incomplete set and then the rest, gives the same file.
// With ended_array (the Slurm merge job passes its array's job id), the shards' writers are known to
// have ended: a run still "running" in a shard died with its task (killed, out of memory, node
// failure) and is recorded "failed" with the task's state as Slurm's accounting gives it.
// Tested by tests/test_scale_out.cpp and tests/test_slurm.cpp.
#pragma once

#include <string>
#include <vector>

namespace smyrf {

struct MergeReport {
  std::vector<std::string> imported;    // run ids written to OUT
  std::vector<std::string> unchanged;   // already in OUT as in the shard
  std::vector<std::string> duplicates;  // "run_id (kept from A, also complete in B)"
  std::vector<std::string> missing;     // "run_id (shard I/N: status)" or "shard I/N (file not given)"
  int64_t sweep_runs = 0;               // runs in the whole sweep
  int64_t complete = 0;                 // complete runs in OUT after the merge
};

MergeReport merge_shards(const std::string& out_path, const std::vector<std::string>& shard_paths,
                         const std::string& ended_array = "");

}  // namespace smyrf
