// FID, KID, IS over FID Inception-v3 features, their extraction and HDF5 files; see image_metrics.h.
#include "experiments/metrics/image_metrics.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>
#include <torch/utils.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <filesystem>

#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/hdf5_file.h"
#include "core/util/provenance.h"
#include "core/util/tensor_checks.h"
#include "experiments/io/tensor_h5.h"

namespace smyrf {
namespace {

constexpr const char* kImResizeConvention = "bilinear to 299x299, align_corners=false, no antialiasing (pytorch-fid)";
constexpr const char* kImConvertHint = "see scripts/convert_fid_inception.py";
// How far float images may stray outside [0, 1] (rounding in a generator's (x + 1) / 2).
constexpr double kImUnitRangeSlack = 1e-3;

void im_check_features(const at::Tensor& f, const char* name, int64_t min_rows) {
  TORCH_CHECK(f.defined() && f.dim() == 2, name, " must be a 2-D feature matrix [B, C], got ",
              f.defined() ? shape_string(f.sizes()) : std::string("an undefined tensor"));
  TORCH_CHECK(f.is_floating_point(), name, " must be floating point, got ", f.scalar_type());
  TORCH_CHECK(f.size(0) >= min_rows, name, " has ", f.size(0), " rows; at least ", min_rows, " are needed");
  TORCH_CHECK(f.size(1) >= 1, name, " has no feature columns");
}

void im_check_stats(const FeatureStats& s, const char* name) {
  TORCH_CHECK(s.mu_D.defined() && s.mu_D.dim() == 1, name, ".mu_D must be [D], got ",
              s.mu_D.defined() ? shape_string(s.mu_D.sizes()) : std::string("an undefined tensor"));
  const int64_t D = s.mu_D.size(0);
  TORCH_CHECK(D >= 1, name, ".mu_D is empty");
  TORCH_CHECK(s.sigma_CC.defined(), name, ".sigma_CC is undefined");
  SMYRF_CHECK_SHAPE(s.sigma_CC, std::string(name) + ".sigma_CC", D, D);
}

at::Tensor im_symmetric(const at::Tensor& m_CC) { return (m_CC + m_CC.transpose(0, 1)) * 0.5; }

// Eigenvalues of a symmetric PSD matrix as eigh returns them, with rounding noise set to 0: those
// below 0 and those below D·eps·λ_max, which a singular matrix (covariances of N <= D features)
// has in place of its zeros. sqrt() would magnify that noise (~1e-14 -> 1e-7 per eigenvalue,
// 1e-4 over 2000 of them); with the threshold FID agrees with an SVD-based tr(sqrt(S_a S_b)) to
// ~1e-13 relative, and identical singular statistics give 0.
at::Tensor im_psd_eigenvalues(const at::Tensor& eig_D) {
  const double largest = std::max(eig_D.max().item<double>(), 0.0);
  const double noise = static_cast<double>(eig_D.size(0)) * std::numeric_limits<double>::epsilon() * largest;
  return at::where(eig_D > noise, eig_D, at::zeros_like(eig_D));
}

double im_population_std(const std::vector<double>& values, double mean) {
  double sum = 0;
  for (double v : values) sum += (v - mean) * (v - mean);
  return std::sqrt(sum / static_cast<double>(values.size()));
}

MeanStd im_mean_std(const std::vector<double>& values) {
  MeanStd out;
  for (double v : values) out.mean += v;
  out.mean /= static_cast<double>(values.size());
  out.std = im_population_std(values, out.mean);
  return out;
}

void im_write_source_attrs(H5File& file, const FeatureSource& source, int64_t count) {
  file.set_attr("/", "count", count);
  file.set_attr("/", "feature_network", source.feature_network);
  file.set_attr("/", "feature", source.feature);
  file.set_attr("/", "weights_path", source.weights_path);
  file.set_attr("/", "weights_sha256", source.weights_sha256);
  file.set_attr("/", "resize", source.resize);
  file.set_attr("/", "images", source.images);
  write_provenance_attrs(file, collect_provenance("", TORCH_VERSION));
}

void im_write_stats_datasets(H5File& file, const FeatureStats& stats) {
  write_tensor(file, "/mu", stats.mu_D, StoredPrecision::kFloat64);
  write_tensor(file, "/sigma", stats.sigma_CC, StoredPrecision::kFloat64);
}

FeatureSource im_source_attrs(const H5File& file) {
  const auto attr = [&](const char* name) { return file.attr_string("/", name).value_or(""); };
  FeatureSource s;
  s.feature_network = attr("feature_network");
  s.feature = attr("feature");
  s.weights_path = attr("weights_path");
  s.weights_sha256 = attr("weights_sha256");
  s.resize = attr("resize");
  s.images = attr("images");
  return s;
}

bool im_known(const std::string& s) { return !s.empty() && s != "unknown"; }

}  // namespace

// ---------------------------------------------------------------- FID

FeatureStats feature_stats(const at::Tensor& features_BC) {
  im_check_features(features_BC, "feature_stats: features_BC", 2);
  const at::Tensor x = features_BC.detach().to(at::kCPU, at::kDouble);
  FeatureStats s;
  s.count = x.size(0);
  s.mu_D = x.mean(0);
  const at::Tensor centered_BC = x - s.mu_D;
  s.sigma_CC = at::matmul(centered_BC.transpose(0, 1), centered_BC) / static_cast<double>(s.count - 1);
  return s;
}

double frechet_distance(const FeatureStats& a, const FeatureStats& b) {
  im_check_stats(a, "frechet_distance: a");
  im_check_stats(b, "frechet_distance: b");
  TORCH_CHECK(a.mu_D.size(0) == b.mu_D.size(0), "frechet_distance: feature sizes differ (", a.mu_D.size(0), " vs ",
              b.mu_D.size(0), "): the statistics come from different feature layers");
  const auto f64 = [](const at::Tensor& t) { return t.detach().to(at::kCPU, at::kDouble); };
  const at::Tensor mu_a = f64(a.mu_D), mu_b = f64(b.mu_D);
  const at::Tensor sigma_a = im_symmetric(f64(a.sigma_CC)), sigma_b = im_symmetric(f64(b.sigma_CC));
  TORCH_CHECK(at::isfinite(mu_a).all().item<bool>() && at::isfinite(sigma_a).all().item<bool>() &&
                  at::isfinite(mu_b).all().item<bool>() && at::isfinite(sigma_b).all().item<bool>(),
              "frechet_distance: the statistics hold NaN or infinity");

  // sqrt(S_a) from eigh.
  const auto [eig_a_D, vec_a_CC] = at::linalg_eigh(sigma_a);
  const at::Tensor sqrt_a_CC = at::matmul(vec_a_CC * im_psd_eigenvalues(eig_a_D).sqrt(), vec_a_CC.transpose(0, 1));
  // sqrt(S_a) S_b sqrt(S_a) is symmetric PSD with the eigenvalues of S_a S_b, so tr(sqrt(S_a S_b))
  // is the sum of the square roots of its eigenvalues.
  const at::Tensor inner_CC = im_symmetric(at::matmul(at::matmul(sqrt_a_CC, sigma_b), sqrt_a_CC));
  const double tr_sqrt = im_psd_eigenvalues(at::linalg_eigvalsh(inner_CC)).sqrt().sum().item<double>();
  const at::Tensor diff_D = mu_a - mu_b;
  return at::dot(diff_D, diff_D).item<double>() + sigma_a.trace().item<double>() + sigma_b.trace().item<double>() -
         2.0 * tr_sqrt;
}

// ---------------------------------------------------------------- KID and IS

double polynomial_mmd2_unbiased(const at::Tensor& x_BC, const at::Tensor& y_MD) {
  im_check_features(x_BC, "polynomial_mmd2_unbiased: x_BC", 2);
  im_check_features(y_MD, "polynomial_mmd2_unbiased: y_MD", 2);
  TORCH_CHECK(x_BC.size(1) == y_MD.size(1), "polynomial_mmd2_unbiased: x_BC ", shape_string(x_BC.sizes()), " and y_MD ",
              shape_string(y_MD.sizes()), " differ in D");
  const at::Tensor x = x_BC.detach().to(at::kDouble), y = y_MD.detach().to(at::kDouble);
  const double D = static_cast<double>(x.size(1)), N = static_cast<double>(x.size(0)), M = static_cast<double>(y.size(0));
  const auto kernel = [&](const at::Tensor& p, const at::Tensor& q) {
    return (at::matmul(p, q.transpose(0, 1)) / D + 1.0).pow(3);
  };
  const at::Tensor k_xx = kernel(x, x), k_yy = kernel(y, y), k_xy = kernel(x, y);
  // Unbiased: the diagonals k(x_i, x_i) are left out of the within-set means.
  const double xx = (k_xx.sum() - k_xx.trace()).item<double>() / (N * (N - 1));
  const double yy = (k_yy.sum() - k_yy.trace()).item<double>() / (M * (M - 1));
  const double xy = k_xy.sum().item<double>() / (N * M);
  return xx + yy - 2.0 * xy;
}

MeanStd kid(const at::Tensor& features_a_BC, const at::Tensor& features_b_MD, int64_t subsets, int64_t subset_size,
            uint64_t seed) {
  im_check_features(features_a_BC, "kid: features_a_BC", 2);
  im_check_features(features_b_MD, "kid: features_b_MD", 2);
  TORCH_CHECK(features_a_BC.size(1) == features_b_MD.size(1), "kid: features_a_BC ", shape_string(features_a_BC.sizes()),
              " and features_b_MD ", shape_string(features_b_MD.sizes()), " differ in D");
  TORCH_CHECK(subsets >= 1, "kid: subsets must be >= 1, got ", subsets);
  TORCH_CHECK(subset_size >= 2, "kid: subset_size must be >= 2, got ", subset_size);
  const int64_t n_a = features_a_BC.size(0), n_b = features_b_MD.size(0);
  const int64_t m = std::min({subset_size, n_a, n_b});
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const auto draw = [&](const at::Tensor& f, int64_t n) {
    if (m == n) return f;  // whole set, in order: no draw, so the value does not depend on the seed
    return f.index_select(0, at::randperm(n, generator, at::TensorOptions().dtype(at::kLong)).narrow(0, 0, m).to(f.device()));
  };
  std::vector<double> values;
  for (int64_t s = 0; s < subsets; ++s) {
    const at::Tensor a = draw(features_a_BC, n_a);
    const at::Tensor b = draw(features_b_MD, n_b);
    values.push_back(polynomial_mmd2_unbiased(a, b));
  }
  return im_mean_std(values);
}

MeanStd inception_score(const at::Tensor& logits_BK, int64_t splits) {
  im_check_features(logits_BK, "inception_score: logits_BK", 1);
  const int64_t N = logits_BK.size(0);
  TORCH_CHECK(splits >= 1 && splits <= N, "inception_score: splits must lie in [1, N = ", N, "], got ", splits);
  const at::Tensor log_p_BK = at::log_softmax(logits_BK.detach().to(at::kDouble), 1);
  const at::Tensor p_BK = log_p_BK.exp();
  std::vector<double> scores;
  for (int64_t i = 0; i < splits; ++i) {
    const int64_t begin = i * N / splits, end = (i + 1) * N / splits;
    const at::Tensor p = p_BK.slice(0, begin, end), log_p = log_p_BK.slice(0, begin, end);
    const at::Tensor log_py_K = p.mean(0).log();
    // 0 · log 0 = 0: a class no image gives mass to has p(y) = 0 and must not turn into 0 · inf.
    const at::Tensor terms = at::where(p > 0, p * (log_p - log_py_K), at::zeros_like(p));
    scores.push_back(std::exp(terms.sum(1).mean().item<double>()));
  }
  return im_mean_std(scores);
}

// ---------------------------------------------------------------- running the network

InceptionBatchOutputs run_inception(FidInceptionV3& net,
                                    const std::function<at::Tensor(int64_t start, int64_t count)>& images_B3HW_01,
                                    int64_t n, int64_t batch, std::function<void(int64_t, int64_t)> progress) {
  TORCH_CHECK(n >= 0, "run_inception: n must be >= 0, got ", n);
  TORCH_CHECK(batch >= 1, "run_inception: batch must be >= 1, got ", batch);
  const at::Device device = net->parameters().front().device();
  std::vector<at::Tensor> pool3, logits;
  for (int64_t start = 0; start < n; start += batch) {
    const int64_t count = std::min(batch, n - start);
    at::Tensor images = images_B3HW_01(start, count);
    TORCH_CHECK(images.defined() && images.dim() == 4 && images.size(0) == count && images.size(1) == 3,
                "run_inception: images [", start, ", ", start + count, ") must be [", count, ", 3, H, W], got ",
                images.defined() ? shape_string(images.sizes()) : std::string("an undefined tensor"));
    images = images.to(device);
    if (images.scalar_type() == at::kByte) {
      images = images.to(at::kFloat).div_(255.0);
    } else {
      TORCH_CHECK(images.is_floating_point(), "run_inception: images must be uint8 or float in [0, 1], got ",
                  images.scalar_type());
      const double lo = images.min().item<double>(), hi = images.max().item<double>();
      TORCH_CHECK(lo >= -kImUnitRangeSlack && hi <= 1.0 + kImUnitRangeSlack, "run_inception: images [", start, ", ",
                  start + count, ") lie in [", lo, ", ", hi, "], expected [0, 1] (map a generator's [-1, 1] output "
                  "with (x + 1) / 2)");
    }
    const InceptionOutputs out = net->forward(images);
    pool3.push_back(out.pool3_B2048.to(at::kCPU));
    logits.push_back(out.logits_B1008.to(at::kCPU));
    if (progress) progress(start + count, n);
  }
  InceptionBatchOutputs result;
  result.pool3_B2048 = pool3.empty() ? at::zeros({0, kFidInceptionFeatures}) : at::cat(pool3, 0);
  result.logits_B1008 = logits.empty() ? at::zeros({0, kFidInceptionClasses}) : at::cat(logits, 0);
  return result;
}

InceptionBatchOutputs inception_outputs(FidInceptionV3& net, const at::Tensor& images_uint8_or_float, int64_t batch) {
  TORCH_CHECK(images_uint8_or_float.defined() && images_uint8_or_float.dim() == 4 && images_uint8_or_float.size(1) == 3,
              "inception_outputs: images must be [N, 3, H, W], got ",
              images_uint8_or_float.defined() ? shape_string(images_uint8_or_float.sizes()) : std::string("undefined"));
  return run_inception(
      net, [&](int64_t start, int64_t count) { return images_uint8_or_float.narrow(0, start, count); },
      images_uint8_or_float.size(0), batch);
}

at::Tensor inception_features(FidInceptionV3& net, const at::Tensor& images_uint8_or_float, int64_t batch) {
  return inception_outputs(net, images_uint8_or_float, batch).pool3_B2048;
}

std::string fid_unavailable_reason(const std::string& weights_path) {
  if (weights_path.empty())
    return fmt::format("no Inception weights file given (eval.inception_weights): FID/KID/IS unavailable; {}",
                       kImConvertHint);
  std::error_code ec;
  if (!std::filesystem::is_regular_file(weights_path, ec))
    return fmt::format("file not found: '{}' (eval.inception_weights): FID/KID/IS unavailable; {}", weights_path,
                       kImConvertHint);
  try {
    const SafetensorsFile file = SafetensorsFile::open(weights_path);
    const auto fc = file.entries().find("fc.weight");
    if (fc == file.entries().end() || fc->second.shape != std::vector<int64_t>{kFidInceptionClasses, kFidInceptionFeatures})
      return fmt::format("'{}' holds no FID Inception-v3 (no fc.weight of shape [1008, 2048]): FID/KID/IS "
                         "unavailable; {}",
                         weights_path, kImConvertHint);
  } catch (const std::exception& e) {
    return fmt::format("cannot read '{}': {}", weights_path, e.what());
  }
  return "";
}

// ---------------------------------------------------------------- files

FeatureSource fid_feature_source(const FidInceptionV3& net, const std::string& images) {
  FeatureSource s;
  s.feature_network = kFidInceptionNetwork;
  s.feature = "pool3";
  s.weights_path = net->weights_path();
  s.weights_sha256 = net->weights_sha256();
  s.resize = kImResizeConvention;
  s.images = images;
  return s;
}

void write_feature_stats(const std::string& h5_path, const FeatureStats& stats, const FeatureSource& source) {
  im_check_stats(stats, "write_feature_stats: stats");
  H5File file = H5File::create(h5_path);
  im_write_stats_datasets(file, stats);
  im_write_source_attrs(file, source, stats.count);
  file.close();
}

StoredFeatureStats read_feature_stats(const std::string& h5_path) {
  const H5File file = H5File::open(h5_path, /*writable=*/false);
  for (const char* name : {"mu", "sigma"})
    if (!file.is_dataset(name))
      throw IoError(fmt::format("'{}' has no dataset '/{}': not a statistics file (write one with smyrf fid-stats; "
                                "stats need /mu [D] and /sigma [D, D])",
                                h5_path, name));
  StoredFeatureStats out;
  out.stats.mu_D = read_tensor(file, "mu");
  out.stats.sigma_CC = read_tensor(file, "sigma");
  if (out.stats.mu_D.dim() != 1 || out.stats.sigma_CC.dim() != 2 || out.stats.sigma_CC.size(0) != out.stats.mu_D.size(0) ||
      out.stats.sigma_CC.size(1) != out.stats.mu_D.size(0))
    throw IoError(fmt::format("'{}': /mu has shape {} and /sigma {}; expected [D] and [D, D]", h5_path,
                              shape_string(out.stats.mu_D.sizes()), shape_string(out.stats.sigma_CC.sizes())));
  out.stats.count = file.attr_int("/", "count").value_or(-1);
  out.source = im_source_attrs(file);
  return out;
}

FeatureSource read_feature_source(const std::string& h5_path) {
  return im_source_attrs(H5File::open(h5_path, /*writable=*/false));
}

void write_inception_features(const std::string& h5_path, const InceptionBatchOutputs& outputs,
                              const FeatureSource& source) {
  SMYRF_CHECK_SHAPE(outputs.pool3_B2048, "write_inception_features: pool3_B2048", -1, kFidInceptionFeatures);
  SMYRF_CHECK_SHAPE(outputs.logits_B1008, "write_inception_features: logits_B1008", outputs.pool3_B2048.size(0),
                    kFidInceptionClasses);
  H5File file = H5File::create(h5_path);
  write_tensor(file, "/pool3", outputs.pool3_B2048, StoredPrecision::kFloat32);
  write_tensor(file, "/logits", outputs.logits_B1008, StoredPrecision::kFloat32);
  if (outputs.pool3_B2048.size(0) >= 2) im_write_stats_datasets(file, feature_stats(outputs.pool3_B2048));
  im_write_source_attrs(file, source, outputs.pool3_B2048.size(0));
  file.close();
}

at::Tensor read_feature_array(const std::string& h5_path, const std::string& dataset) {
  const H5File file = H5File::open(h5_path, /*writable=*/false);
  if (!file.is_dataset(dataset))
    throw IoError(fmt::format("'{}' has no dataset '/{}': not a features file (write one with smyrf fid-stats "
                              "--features-output)",
                              h5_path, dataset));
  const at::Tensor t = read_tensor(file, dataset);
  if (t.dim() != 2)
    throw IoError(fmt::format("'{}': /{} has shape {}, expected [B, C]", h5_path, dataset, shape_string(t.sizes())));
  return t;
}

std::vector<std::string> check_same_features(const FeatureSource& a, const std::string& a_path, const FeatureSource& b,
                                             const std::string& b_path) {
  std::vector<std::string> warnings;
  const auto compare = [&](const std::string& what, const std::string& va, const std::string& vb) {
    if (im_known(va) && im_known(vb)) {
      if (va != vb)
        throw ConfigError(fmt::format("'{}' and '{}' hold features of different {} ('{}' vs '{}'): their distance "
                                      "measures the networks, not the images; recompute one of them",
                                      a_path, b_path, what, va, vb));
      return;
    }
    for (const auto& [path, v] : {std::pair<std::string, std::string>{a_path, va}, {b_path, vb}})
      if (!im_known(v)) warnings.push_back(fmt::format("'{}' does not record its {}; make sure both files used the same", path, what));
  };
  compare("feature network", a.feature_network, b.feature_network);
  compare("feature", a.feature, b.feature);
  compare("weights (sha256 of the .pth)", a.weights_sha256, b.weights_sha256);
  return warnings;
}

}  // namespace smyrf
