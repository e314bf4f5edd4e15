// Captured-Q/K/V files: the queries, keys and values a model's attention layers saw, one group per
// (layer, batch), so that any method can be run and measured on real inputs. Format (root
// attribute format = "smyrf-captured-qkv"; full schema in results/README.md):
//   /<group>/q [B,H,N,D], k [B,H,M,D], v [B,H,M,E]   float32
//   /<group>/key_keep [B,M], query_keep [B,N]        1 = real token (optional)
//   /<group>/ids [B,N]                               token ids (optional)
//   group attributes scale, causal, layer, batch
// The writer builds the file under a temporary name and renames it when committed, so a killed run
// leaves no file that looks finished. Written by the capture pipeline, read by attention_fidelity
// and `smyrf attend`; tested by tests/test_experiments.cpp, tests/test_pretrained.cpp and
// tests/python/test_polysketch_numpy.py (reads `smyrf attend` output on a captured group).
#pragma once

#include <ATen/core/Tensor.h>

#include <map>
#include <string>

#include "core/attention/attention_method.h"
#include "core/util/hdf5_file.h"

namespace smyrf {

class CapturedQkvWriter {
 public:
  // Creates `path`.partial (and the folder); root attributes are set from `root_attributes`.
  CapturedQkvWriter(const std::string& path, const std::map<std::string, std::string>& root_strings,
                    const std::map<std::string, int64_t>& root_integers);
  // One group: the inputs (their keep masks must be set), the token ids, and where they came from.
  void add_group(const std::string& group, const AttentionInputs& inputs, const at::Tensor& ids_BN, int64_t layer,
                 int64_t batch);
  int64_t groups() const { return groups_; }
  // Closes the file and renames it to its final path.
  void commit();

 private:
  std::string path_, partial_path_;
  H5File file_;
  int64_t groups_ = 0;
};

// Q/K/V (and padding masks, causal flag, scale) of one group, in `dtype`, read and checked by
// read_captured_group (captured_group.h, which says what is refused). `source` names the config
// (or command).
AttentionInputs load_captured_qkv(const std::string& path, const std::string& group, at::ScalarType dtype,
                                  const std::string& source);

}  // namespace smyrf
