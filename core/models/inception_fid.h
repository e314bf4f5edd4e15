// FidInceptionV3: the Inception-v3 network of the TensorFlow FID graph (`pt_inception-2015-12-05`),
// as pytorch-fid ports it (src/pytorch_fid/inception.py, fid_inception_v3()), in LibTorch.
//
// It differs from torchvision's ImageNet Inception-v3 in its weights and in three places, all kept:
// the pool branch of Mixed_5b/5c/5d (A), Mixed_6b..6e (C) and Mixed_7b (E_1) averages over real
// pixels only (avg_pool2d count_include_pad=false, as TensorFlow does); Mixed_7c (E_2) max-pools
// in its pool branch; the classifier has 1008 classes. BatchNorm eps is 0.001; no aux classifier.
// Input: images_B3VW float in [0, 1], any H and W, resized to 299×299 bilinearly (align_corners
// false, no antialiasing: pytorch-fid's F.interpolate) and scaled to [-1, 1].
// Output: pool3_B2048 (the 2048-d final average pool that FID and KID use) and logits_B1008 (fc,
// for the Inception Score), float32 on the network's device.
// Shape legend: B images, C channels, V/W height/width; x_BCVW inside the blocks.
// Parameter and buffer names are exactly pytorch-fid's state_dict keys (Conv2d_1a_3x3.conv.weight,
// Mixed_5b.branch1x1.bn.running_var, ..., fc.weight), so scripts/convert_fid_inception.py only
// changes the file format. Weights: pt_inception-2015-12-05-6726825d.pth from pytorch-fid's
// release (URL in the script), converted once to inception_fid.safetensors.
// Tested by tests/test_image_metrics.cpp (loading errors, shapes) and tests/python/test_fid.py
// (parity of pool3 and logits with an independent torch.nn.functional forward, random weights).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/batchnorm.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <map>
#include <string>
#include <vector>

namespace smyrf {

// The network's name as stored beside every statistic computed from its features.
inline constexpr const char* kFidInceptionNetwork = "pt_inception-2015-12-05 (pytorch-fid FID Inception-v3)";
inline constexpr int64_t kFidInceptionSize = 299;
inline constexpr int64_t kFidInceptionFeatures = 2048;
inline constexpr int64_t kFidInceptionClasses = 1008;

// conv (no bias) -> BatchNorm (eps 0.001, running statistics) -> ReLU: torchvision's BasicConv2d.
class FidBasicConv2dImpl : public torch::nn::Module {
 public:
  FidBasicConv2dImpl(int64_t in_channels, int64_t out_channels, std::vector<int64_t> kernel,
                     std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0});
  at::Tensor forward(const at::Tensor& x_BCVW);

 private:
  torch::nn::Conv2d conv_{nullptr};
  torch::nn::BatchNorm2d bn_{nullptr};
};
TORCH_MODULE(FidBasicConv2d);

// One "Mixed_*" block. kA/kC/kE1 are pytorch-fid's FIDInceptionA/C/E_1, kE2 its FIDInceptionE_2;
// kB and kD (Mixed_6a, Mixed_7a) are torchvision's InceptionB/D unchanged. `width` is
// pool_features for kA and channels_7x7 for kC, unused otherwise.
enum class FidMixedKind { kA, kB, kC, kD, kE1, kE2 };

class FidMixedImpl : public torch::nn::Module {
 public:
  FidMixedImpl(FidMixedKind kind, int64_t in_channels, int64_t width = 0);
  at::Tensor forward(const at::Tensor& x_BCVW);
  int64_t out_channels() const { return out_channels_; }

 private:
  void add(const std::string& name, int64_t in, int64_t out, std::vector<int64_t> kernel,
           std::vector<int64_t> stride = {1, 1}, std::vector<int64_t> padding = {0, 0});
  at::Tensor run(const std::string& name, const at::Tensor& x_BCVW);

  FidMixedKind kind_;
  int64_t out_channels_ = 0;
  std::map<std::string, FidBasicConv2d> convs_;
};
TORCH_MODULE(FidMixed);

struct InceptionOutputs {
  at::Tensor pool3_B2048;   // float32
  at::Tensor logits_B1008;  // float32, before softmax
};

class FidInceptionV3;

class FidInceptionV3Impl : public torch::nn::Module {
 public:
  // PyTorch's default initialisation (random): only tests use a network that was not loaded.
  FidInceptionV3Impl();

  // Reads a safetensors file written by scripts/convert_fid_inception.py: every parameter and
  // BatchNorm running statistic by its pytorch-fid name, shapes checked on the header before any
  // copy. Errors (IoError): a missing file (pointing to the conversion script), a tensor missing,
  // extra (a different network) or of the wrong shape or dtype, each naming the file and the key.
  // The returned network is in eval mode on the CPU; move it with ->to(device).
  static FidInceptionV3 load(const std::string& safetensors_path);

  // images_B3VW: float (any floating dtype) in [0, 1], any H, W >= 1, on any device (moved to the
  // network's). Always evaluates in eval mode without autograd; see the file comment.
  InceptionOutputs forward(const at::Tensor& images_B3VW);

  // Where the weights came from: the file given to load() ("" for random weights) and the sha256
  // of the original .pth as the conversion script recorded it ("unknown" when not recorded).
  const std::string& weights_path() const { return weights_path_; }
  const std::string& weights_sha256() const { return weights_sha256_; }

 private:
  std::vector<std::pair<std::string, FidBasicConv2d>> stem_;  // Conv2d_1a_3x3 .. Conv2d_4a_3x3
  std::vector<FidMixed> mixed_;                               // Mixed_5b .. Mixed_7c
  torch::nn::Linear fc_{nullptr};
  std::string weights_path_;
  std::string weights_sha256_ = "unknown";
};
TORCH_MODULE(FidInceptionV3);

}  // namespace smyrf
