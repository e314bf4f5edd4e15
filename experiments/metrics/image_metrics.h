// Image-generation metrics over FID Inception-v3 features (core/models/inception_fid.h): FID,
// KID and the Inception Score, the feature extraction that feeds them, and their HDF5 files.
//
// Shape legend: N images (or feature rows), D feature size (2048 for pool3), K classes (1008).
//   FID  |mu_a - mu_b|² + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b)) between Gaussians fitted to pool3
//        features (mu_D, unbiased sigma_CC as numpy.cov), all in float64. tr(sqrt(S_a S_b)) is the sum
//        of the square roots of the eigenvalues of the symmetric PSD matrix sqrt(S_a) S_b sqrt(S_a)
//        (same eigenvalues as S_a S_b), with sqrt(S_a) from eigh; eigenvalues below 0, or below
//        D·eps·λ_max (rounding noise where a singular matrix has zeros), count as 0. Why: S_a S_b
//        is not symmetric, and scipy.linalg.sqrtm on it (pytorch-fid) returns complex results with
//        tiny imaginary parts and loses accuracy when the covariances are singular (N <= D).
//   KID  unbiased MMD² with the polynomial kernel k(x, y) = (x·y / D + 1)³ (Bińkowski et al. 2018),
//        over `subsets` random subsets of subset_size rows drawn without replacement from each set
//        (subset_size capped at min(N_a, N_b); a set used whole keeps its order); mean and
//        population std (numpy's np.std) over subsets. Seeded: the same seed gives the same subsets.
//   IS   exp(E_x KL(p(y|x) || p(y))) over softmax(logits) of all 1008 classes, for each of `splits`
//        consecutive chunks (rows [i·N/splits, (i+1)·N/splits)); mean and population std.
// Files (HDF5, core/util/hdf5_file.h):
//   stats     /mu [D] float64, /sigma [D, D] float64; root attributes count (int64), feature_network,
//             feature ("pool3"), weights_path, weights_sha256 (of the original .pth, recorded by
//             scripts/convert_fid_inception.py), resize, images (what was measured) and provenance
//             (harness_version, git_sha, git_dirty, created_utc, torch_version). Store reference
//             statistics once (`smyrf fid-stats`) and compare generated images against them.
//   features  the stats layout plus /pool3 [N, 2048] float32 and /logits [N, 1008] float32.
// Sample counts: FID is biased in N; compare only numbers from equal N (the standard is 50k
// generated images vs the full reference set), and pytorch-fid warns below 2048 images (sigma is
// then singular). Record implementation, weights and N with every number.
// Tested by tests/test_image_metrics.cpp (closed forms, hand-computed MMD², IS limits) and
// tests/python/test_fid.py (scipy sqrtm FID, numpy KID, network parity, CLI).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/models/inception_fid.h"

namespace smyrf {

// ---- FID
struct FeatureStats {
  at::Tensor mu_D;      // float64
  at::Tensor sigma_CC;  // float64, unbiased (divides by N - 1)
  int64_t count = 0;    // N the statistics came from (-1: unknown, e.g. stats written by other tools)
};
// features_BC: any floating dtype, N >= 2.
FeatureStats feature_stats(const at::Tensor& features_BC);
double frechet_distance(const FeatureStats& a, const FeatureStats& b);

// ---- KID and IS
struct MeanStd {
  double mean = 0;
  double std = 0;  // population std over subsets / splits
};
// The unbiased polynomial-kernel MMD² of two sets of rows (N, M >= 2; same D), in float64.
double polynomial_mmd2_unbiased(const at::Tensor& x_BC, const at::Tensor& y_MD);
MeanStd kid(const at::Tensor& features_a_BC, const at::Tensor& features_b_MD, int64_t subsets = 100,
            int64_t subset_size = 1000, uint64_t seed = 0);
// logits_BK: N >= splits >= 1.
MeanStd inception_score(const at::Tensor& logits_BK, int64_t splits = 10);

// ---- running the network over many images
struct InceptionBatchOutputs {
  at::Tensor pool3_B2048;   // float32, CPU
  at::Tensor logits_B1008;  // float32, CPU
};
// images_B3HW_01(start, count) returns images [start, start + count) as [count, 3, H, W], float in
// [0, 1] or uint8 (divided by 255, as pytorch-fid's ToTensor), on any device; float values outside
// [0, 1] (by more than 1e-3) are an error: a generator's tanh output needs (x + 1) / 2 first.
// Calls progress(done, n) after each batch when given.
InceptionBatchOutputs run_inception(FidInceptionV3& net,
                                    const std::function<at::Tensor(int64_t start, int64_t count)>& images_B3HW_01,
                                    int64_t n, int64_t batch, std::function<void(int64_t, int64_t)> progress = {});
// The same over images held in one tensor [N, 3, H, W] (uint8, or float in [0, 1]).
InceptionBatchOutputs inception_outputs(FidInceptionV3& net, const at::Tensor& images_uint8_or_float, int64_t batch);
at::Tensor inception_features(FidInceptionV3& net, const at::Tensor& images_uint8_or_float, int64_t batch);

// Why FID/KID/IS cannot be computed with `weights_path` (eval.inception_weights), or "" when the file
// exists and opens as FID Inception weights. Callers log the metric as unavailable with this reason;
// they never substitute another network.
std::string fid_unavailable_reason(const std::string& weights_path);

// ---- files
// Where features came from, stored as root attributes beside stats and features. Empty = unknown.
struct FeatureSource {
  std::string feature_network;  // kFidInceptionNetwork
  std::string feature;          // "pool3"
  std::string weights_path;
  std::string weights_sha256;   // of the original pytorch-fid .pth; "unknown" when not recorded
  std::string resize;           // the resize convention
  std::string images;           // what was measured: an image file, a generator checkpoint
};
FeatureSource fid_feature_source(const FidInceptionV3& net, const std::string& images);

struct StoredFeatureStats {
  FeatureStats stats;
  FeatureSource source;
};
void write_feature_stats(const std::string& h5_path, const FeatureStats& stats, const FeatureSource& source);
// The source attributes of a stats or features file (empty fields where absent).
FeatureSource read_feature_source(const std::string& h5_path);
// Needs /mu [D] and /sigma [D, D] (any float type); the attributes may be absent (stats written by
// other tools, e.g. converted from pytorch-fid's .npz): count -1 and empty source fields.
StoredFeatureStats read_feature_stats(const std::string& h5_path);
// Stats (from pool3) plus the raw /pool3 and /logits.
void write_inception_features(const std::string& h5_path, const InceptionBatchOutputs& outputs,
                              const FeatureSource& source);
// A 2-D feature array of a features file ("pool3" or "logits") as float64 [B, C].
at::Tensor read_feature_array(const std::string& h5_path, const std::string& dataset);

// Refuses (ConfigError) to compare features of different networks or weights when both files say
// which; returns warnings for what a file does not say (for the caller to print).
std::vector<std::string> check_same_features(const FeatureSource& a, const std::string& a_path, const FeatureSource& b,
                                             const std::string& b_path);

}  // namespace smyrf
