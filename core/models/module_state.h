// A LibTorch module's state as a safetensors file: every parameter and buffer by its dotted name.
// Training checkpoints (experiments/engines/training_loop.h) and exported BigGAN models use it.
// load_module_state trusts nothing in the file: a missing tensor, a wrong shape or a tensor the
// module lacks is an IoError naming the file and the key.
// Tested by tests/test_biggan.cpp (round trip, wrong architectures) and, through checkpoints, by
// tests/test_training_loop.cpp.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/module.h>

#include <map>
#include <string>

namespace smyrf {

// Every parameter and buffer by name (CPU, contiguous copies): what a checkpoint stores.
std::map<std::string, at::Tensor> module_state(torch::nn::Module& module);

// Copies every parameter and buffer from a safetensors file into the module (converted to the
// module's dtypes); tensors the module lacks are an error too (a file of another architecture),
// listing a few.
void load_module_state(torch::nn::Module& module, const std::string& safetensors_path);

}  // namespace smyrf
