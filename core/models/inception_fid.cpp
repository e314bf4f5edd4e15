// FidInceptionV3 (the TensorFlow FID graph's Inception-v3, as pytorch-fid ports it); see inception_fid.h.
#include "core/models/inception_fid.h"

#include <ATen/ATen.h>
#include <ATen/Context.h>
#include <fmt/format.h>
#include <torch/utils.h>

#include <filesystem>
#include <set>

#include "core/models/safetensors.h"
#include "core/util/check.h"
#include "core/util/strings.h"
#include "core/util/tensor_checks.h"

namespace smyrf {
namespace {

constexpr double kFidBatchNormEps = 0.001;
constexpr const char* kFidConversionHint =
    "convert pytorch-fid's pt_inception-2015-12-05-6726825d.pth with scripts/convert_fid_inception.py";

// TensorFlow's average pool ignores the zero padding: count_include_pad=false.
at::Tensor fid_tf_avg_pool_3x3(const at::Tensor& x_BCVW) {
  return at::avg_pool2d(x_BCVW, {3, 3}, {1, 1}, {1, 1}, /*ceil_mode=*/false, /*count_include_pad=*/false);
}

// cuDNN may run float32 convolutions in TF32 (PyTorch's default; 10 mantissa bits, ~1e-3 relative
// per product): features would then depend on the GPU generation. Convolutions here run in IEEE
// float32, as on the CPU. (Restored afterwards; not exercised by the CPU-only tests.)
class FidNoCudnnTf32Guard {
 public:
  explicit FidNoCudnnTf32Guard(bool active) : active_(active) {
    if (!active_) return;
    previous_ = at::globalContext().allowTF32CuDNN();
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~FidNoCudnnTf32Guard() {
    if (active_) at::globalContext().setAllowTF32CuDNN(previous_);
  }
  FidNoCudnnTf32Guard(const FidNoCudnnTf32Guard&) = delete;
  FidNoCudnnTf32Guard& operator=(const FidNoCudnnTf32Guard&) = delete;

 private:
  bool active_;
  bool previous_ = false;
};

bool fid_ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

// ---------------------------------------------------------------- building blocks

FidBasicConv2dImpl::FidBasicConv2dImpl(int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
                                       std::vector<int64_t> stride, std::vector<int64_t> padding) {
  conv_ = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, out_channels, kernel)
                                                        .stride(stride)
                                                        .padding(padding)
                                                        .bias(false)));
  bn_ = register_module("bn", torch::nn::BatchNorm2d(torch::nn::BatchNormOptions(out_channels).eps(kFidBatchNormEps)));
}

at::Tensor FidBasicConv2dImpl::forward(const at::Tensor& x_BCVW) { return at::relu(bn_->forward(conv_->forward(x_BCVW))); }

void FidMixedImpl::add(const std::string& name, int64_t in, int64_t out, std::vector<int64_t> kernel,
                       std::vector<int64_t> stride, std::vector<int64_t> padding) {
  convs_.emplace(name, register_module(name, FidBasicConv2d(in, out, std::move(kernel), std::move(stride),
                                                            std::move(padding))));
}

at::Tensor FidMixedImpl::run(const std::string& name, const at::Tensor& x_BCVW) { return convs_.at(name)->forward(x_BCVW); }

// Branch widths are torchvision's InceptionA..E; registration order follows their __init__.
FidMixedImpl::FidMixedImpl(FidMixedKind kind, int64_t in, int64_t width) : kind_(kind) {
  switch (kind) {
    case FidMixedKind::kA:
      add("branch1x1", in, 64, {1, 1});
      add("branch5x5_1", in, 48, {1, 1});
      add("branch5x5_2", 48, 64, {5, 5}, {1, 1}, {2, 2});
      add("branch3x3dbl_1", in, 64, {1, 1});
      add("branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
      add("branch3x3dbl_3", 96, 96, {3, 3}, {1, 1}, {1, 1});
      add("branch_pool", in, width, {1, 1});
      out_channels_ = 64 + 64 + 96 + width;
      break;
    case FidMixedKind::kB:
      add("branch3x3", in, 384, {3, 3}, {2, 2});
      add("branch3x3dbl_1", in, 64, {1, 1});
      add("branch3x3dbl_2", 64, 96, {3, 3}, {1, 1}, {1, 1});
      add("branch3x3dbl_3", 96, 96, {3, 3}, {2, 2});
      out_channels_ = 384 + 96 + in;
      break;
    case FidMixedKind::kC:
      add("branch1x1", in, 192, {1, 1});
      add("branch7x7_1", in, width, {1, 1});
      add("branch7x7_2", width, width, {1, 7}, {1, 1}, {0, 3});
      add("branch7x7_3", width, 192, {7, 1}, {1, 1}, {3, 0});
      add("branch7x7dbl_1", in, width, {1, 1});
      add("branch7x7dbl_2", width, width, {7, 1}, {1, 1}, {3, 0});
      add("branch7x7dbl_3", width, width, {1, 7}, {1, 1}, {0, 3});
      add("branch7x7dbl_4", width, width, {7, 1}, {1, 1}, {3, 0});
      add("branch7x7dbl_5", width, 192, {1, 7}, {1, 1}, {0, 3});
      add("branch_pool", in, 192, {1, 1});
      out_channels_ = 4 * 192;
      break;
    case FidMixedKind::kD:
      add("branch3x3_1", in, 192, {1, 1});
      add("branch3x3_2", 192, 320, {3, 3}, {2, 2});
      add("branch7x7x3_1", in, 192, {1, 1});
      add("branch7x7x3_2", 192, 192, {1, 7}, {1, 1}, {0, 3});
      add("branch7x7x3_3", 192, 192, {7, 1}, {1, 1}, {3, 0});
      add("branch7x7x3_4", 192, 192, {3, 3}, {2, 2});
      out_channels_ = 320 + 192 + in;
      break;
    case FidMixedKind::kE1:
    case FidMixedKind::kE2:
      add("branch1x1", in, 320, {1, 1});
      add("branch3x3_1", in, 384, {1, 1});
      add("branch3x3_2a", 384, 384, {1, 3}, {1, 1}, {0, 1});
      add("branch3x3_2b", 384, 384, {3, 1}, {1, 1}, {1, 0});
      add("branch3x3dbl_1", in, 448, {1, 1});
      add("branch3x3dbl_2", 448, 384, {3, 3}, {1, 1}, {1, 1});
      add("branch3x3dbl_3a", 384, 384, {1, 3}, {1, 1}, {0, 1});
      add("branch3x3dbl_3b", 384, 384, {3, 1}, {1, 1}, {1, 0});
      add("branch_pool", in, 192, {1, 1});
      out_channels_ = 320 + 2 * 384 + 2 * 384 + 192;
      break;
  }
}

at::Tensor FidMixedImpl::forward(const at::Tensor& x) {
  switch (kind_) {
    case FidMixedKind::kA:
      return at::cat({run("branch1x1", x), run("branch5x5_2", run("branch5x5_1", x)),
                      run("branch3x3dbl_3", run("branch3x3dbl_2", run("branch3x3dbl_1", x))),
                      run("branch_pool", fid_tf_avg_pool_3x3(x))},
                     1);
    case FidMixedKind::kB:
      return at::cat({run("branch3x3", x), run("branch3x3dbl_3", run("branch3x3dbl_2", run("branch3x3dbl_1", x))),
                      at::max_pool2d(x, {3, 3}, {2, 2})},
                     1);
    case FidMixedKind::kC: {
      at::Tensor b7 = run("branch7x7_3", run("branch7x7_2", run("branch7x7_1", x)));
      at::Tensor b7dbl = x;
      for (const char* name : {"branch7x7dbl_1", "branch7x7dbl_2", "branch7x7dbl_3", "branch7x7dbl_4", "branch7x7dbl_5"})
        b7dbl = run(name, b7dbl);
      return at::cat({run("branch1x1", x), b7, b7dbl, run("branch_pool", fid_tf_avg_pool_3x3(x))}, 1);
    }
    case FidMixedKind::kD: {
      at::Tensor b7x3 = x;
      for (const char* name : {"branch7x7x3_1", "branch7x7x3_2", "branch7x7x3_3", "branch7x7x3_4"}) b7x3 = run(name, b7x3);
      return at::cat({run("branch3x3_2", run("branch3x3_1", x)), b7x3, at::max_pool2d(x, {3, 3}, {2, 2})}, 1);
    }
    case FidMixedKind::kE1:
    case FidMixedKind::kE2: {
      const at::Tensor b3 = run("branch3x3_1", x);
      const at::Tensor b3dbl = run("branch3x3dbl_2", run("branch3x3dbl_1", x));
      // E_2's max pool is in the TF graph (probably a slip there, pytorch-fid notes); FID needs it.
      const at::Tensor pooled =
          kind_ == FidMixedKind::kE1 ? fid_tf_avg_pool_3x3(x) : at::max_pool2d(x, {3, 3}, {1, 1}, {1, 1});
      return at::cat({run("branch1x1", x), run("branch3x3_2a", b3), run("branch3x3_2b", b3),
                      run("branch3x3dbl_3a", b3dbl), run("branch3x3dbl_3b", b3dbl), run("branch_pool", pooled)},
                     1);
    }
  }
  TORCH_CHECK(false, "FidMixed: unknown block kind");
}

// ---------------------------------------------------------------- the network

FidInceptionV3Impl::FidInceptionV3Impl() {
  struct StemSpec {
    const char* name;
    int64_t in, out, kernel, stride, padding;
  };
  for (const StemSpec& s : {StemSpec{"Conv2d_1a_3x3", 3, 32, 3, 2, 0}, StemSpec{"Conv2d_2a_3x3", 32, 32, 3, 1, 0},
                            StemSpec{"Conv2d_2b_3x3", 32, 64, 3, 1, 1}, StemSpec{"Conv2d_3b_1x1", 64, 80, 1, 1, 0},
                            StemSpec{"Conv2d_4a_3x3", 80, 192, 3, 1, 0}})
    stem_.emplace_back(s.name, register_module(s.name, FidBasicConv2d(s.in, s.out, std::vector<int64_t>{s.kernel, s.kernel},
                                                                      std::vector<int64_t>{s.stride, s.stride},
                                                                      std::vector<int64_t>{s.padding, s.padding})));
  struct MixedSpec {
    const char* name;
    FidMixedKind kind;
    int64_t in, width;
  };
  for (const MixedSpec& m : {MixedSpec{"Mixed_5b", FidMixedKind::kA, 192, 32}, MixedSpec{"Mixed_5c", FidMixedKind::kA, 256, 64},
                             MixedSpec{"Mixed_5d", FidMixedKind::kA, 288, 64}, MixedSpec{"Mixed_6a", FidMixedKind::kB, 288, 0},
                             MixedSpec{"Mixed_6b", FidMixedKind::kC, 768, 128}, MixedSpec{"Mixed_6c", FidMixedKind::kC, 768, 160},
                             MixedSpec{"Mixed_6d", FidMixedKind::kC, 768, 160}, MixedSpec{"Mixed_6e", FidMixedKind::kC, 768, 192},
                             MixedSpec{"Mixed_7a", FidMixedKind::kD, 768, 0}, MixedSpec{"Mixed_7b", FidMixedKind::kE1, 1280, 0},
                             MixedSpec{"Mixed_7c", FidMixedKind::kE2, 2048, 0}})
    mixed_.push_back(register_module(m.name, FidMixed(m.kind, m.in, m.width)));
  TORCH_CHECK(mixed_.back()->out_channels() == kFidInceptionFeatures, "FidInceptionV3: Mixed_7c gives ",
              mixed_.back()->out_channels(), " channels, expected ", kFidInceptionFeatures);
  fc_ = register_module("fc", torch::nn::Linear(kFidInceptionFeatures, kFidInceptionClasses));
  eval();
}

FidInceptionV3 FidInceptionV3Impl::load(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw IoError(fmt::format("Inception weights '{}' not found: {} (pytorch-fid's weights are not bundled)", path,
                              kFidConversionHint));
  const SafetensorsFile file = SafetensorsFile::open(path);
  FidInceptionV3 net;
  torch::NoGradGuard no_grad;
  // Parameters and BatchNorm running statistics, by name; the step counter is not part of the network.
  std::vector<std::pair<std::string, at::Tensor>> targets;
  for (const auto& item : net->named_parameters()) targets.emplace_back(item.key(), item.value());
  for (const auto& item : net->named_buffers())
    if (!fid_ends_with(item.key(), "num_batches_tracked")) targets.emplace_back(item.key(), item.value());

  std::vector<std::string> missing;
  std::set<std::string> used;
  for (const auto& [name, target] : targets) {
    if (!target.defined()) continue;
    if (!file.contains(name)) {
      missing.push_back("'" + name + "'");
      continue;
    }
    const SafetensorsEntry& entry = file.entries().at(name);
    if (at::IntArrayRef(entry.shape) != target.sizes())
      throw IoError(fmt::format("Inception weights '{}': tensor '{}' has shape {} but FID Inception-v3 expects {}: "
                                "the file is not pytorch-fid's pt_inception-2015-12-05 ({})",
                                path, name, shape_string(entry.shape), shape_string(target.sizes()), kFidConversionHint));
    if (entry.dtype != "F32" && entry.dtype != "F64" && entry.dtype != "F16" && entry.dtype != "BF16")
      throw IoError(fmt::format("Inception weights '{}': tensor '{}' is stored as {}, not a floating-point type", path,
                                name, entry.dtype));
    at::Tensor(target).copy_(file.tensor(name).to(target.scalar_type()));
    used.insert(name);
  }
  if (!missing.empty()) {
    const size_t shown = std::min<size_t>(missing.size(), 5);
    throw IoError(fmt::format("Inception weights '{}' lack {} tensor(s) of FID Inception-v3, e.g. {}{} ({})", path,
                              missing.size(),
                              join(std::vector<std::string>(missing.begin(), missing.begin() + static_cast<long>(shown)), ", "),
                              missing.size() > shown ? ", ..." : "", kFidConversionHint));
  }
  for (const auto& [name, entry] : file.entries())
    if (!used.count(name) && !fid_ends_with(name, "num_batches_tracked"))
      throw IoError(fmt::format("Inception weights '{}' hold tensor '{}', which FID Inception-v3 does not have: the "
                                "file is another network ({})",
                                path, name, kFidConversionHint));
  net->weights_path_ = path;
  const auto sha = file.metadata().find("source_sha256");
  if (sha != file.metadata().end() && !sha->second.empty()) net->weights_sha256_ = sha->second;
  net->eval();
  return net;
}

InceptionOutputs FidInceptionV3Impl::forward(const at::Tensor& images_B3VW) {
  TORCH_CHECK(images_B3VW.defined() && images_B3VW.dim() == 4 && images_B3VW.size(1) == 3,
              "FidInceptionV3: images_B3VW must be [B, 3, H, W], got ",
              images_B3VW.defined() ? shape_string(images_B3VW.sizes()) : std::string("an undefined tensor"));
  TORCH_CHECK(images_B3VW.is_floating_point(), "FidInceptionV3: images_B3VW must be floating point in [0, 1], got ",
              images_B3VW.scalar_type(), " (divide uint8 images by 255)");
  TORCH_CHECK(images_B3VW.size(2) >= 1 && images_B3VW.size(3) >= 1, "FidInceptionV3: images_B3VW ",
              shape_string(images_B3VW.sizes()), " has no pixels");
  eval();
  torch::NoGradGuard no_grad;
  const at::Device device = fc_->weight.device();
  FidNoCudnnTf32Guard no_tf32(device.is_cuda());

  at::Tensor x = images_B3VW.to(device, at::kFloat);
  x = at::upsample_bilinear2d(x, {kFidInceptionSize, kFidInceptionSize}, /*align_corners=*/false);
  x = 2 * x - 1;
  for (auto& [name, conv] : stem_) {
    x = conv->forward(x);
    // torchvision's maxpool1 / maxpool2 follow Conv2d_2b_3x3 and Conv2d_4a_3x3.
    if (name == "Conv2d_2b_3x3" || name == "Conv2d_4a_3x3") x = at::max_pool2d(x, {3, 3}, {2, 2});
  }
  for (auto& block : mixed_) x = block->forward(x);
  SMYRF_DEBUG_CHECK_SHAPE(x, "Mixed_7c output", -1, kFidInceptionFeatures, 8, 8);
  InceptionOutputs out;
  out.pool3_B2048 = x.mean({2, 3});  // adaptive average pool to 1×1
  out.logits_B1008 = fc_->forward(out.pool3_B2048);  // dropout is the identity in eval mode
  return out;
}

}  // namespace smyrf
