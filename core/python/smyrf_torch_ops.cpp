// Every registered attention method as a PyTorch operator (namespace `smyrf`), for the Python package
// in core/python/smyrf_torch. Shapes as in core/attention/attention_method.h:
//   smyrf::attention(q_BHND, k_BHMD, v_BHME, key_keep_BM?, query_keep_BN?, causal, scale, training,
//                    method_json, seed, generator_state?) -> (out_BHNE, lse_BHN, generator_state)
//       One forward of the method built from `method_json` ({"method": "smyrf", ...}). Its random
//       draws come from a CPU generator seeded with `seed`, or set to `generator_state` when one is
//       given (a torch.Generator's get_state()); the generator's state after the call comes back, so
//       a caller can draw a stream of calls from one generator, as the C++ models do. lse_BHN is [0]
//       for a method without one (Capabilities::lse). Runs without autograd.
//   smyrf::attention_backward(grad_out_BHNE, grad_lse_BHN?, <the inputs of attention>)
//       -> (grad_q_BHND, grad_k_BHMD, grad_v_BHME)
//       Replays the forward from the same generator state with autograd on (same draws, so the same
//       function) and back-propagates through the method's own C++ autograd path: the forward keeps
//       nothing for the backward, as in activation checkpointing.
//   smyrf::methods() -> str           every method: summary, capabilities, default options (JSON)
//   smyrf::resolve(method_json) -> str  the method's resolved options, or the error a call would give
// Library errors (smyrf::Error: bad options, sizes or masks a method cannot serve) reach Python as
// ValueError with the C++ message; LibTorch's own checks stay RuntimeError. The fake kernels and the
// autograd formula are registered in Python (smyrf_torch/_ops.py), where torch.library offers them.
// Tested by tests/python/test_torch_ops.py (opcheck, gradcheck, bitwise against `smyrf attend`).
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/impl/LocalDispatchKeySet.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <string>
#include <tuple>

#include "core/attention/registry.h"
#include "core/util/check.h"
#include "core/util/json_parse.h"

namespace smyrf {
namespace {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

// Runs `body`, turning the harness's own errors into c10::ValueError so Python sees ValueError.
template <typename Body>
auto with_python_errors(Body&& body) {
  try {
    return body();
  } catch (const c10::Error&) {
    throw;
  } catch (const Error& e) {
    TORCH_CHECK_VALUE(false, e.what());
  }
}

struct Call {
  AttentionInputs inputs;
  std::unique_ptr<AttentionMethod> method;
  at::Generator generator;
};

std::unique_ptr<AttentionMethod> method_of(const std::string& method_json) {
  const nlohmann::json options =
      parse_json(method_json, {"smyrf operator: the method options", R"(pass them like '{"method": "smyrf"}')", true});
  return make_attention(options, "options", "smyrf operator");
}

Call make_call(const Tensor& q_BHND, const Tensor& k_BHMD, const Tensor& v_BHME, const OptionalTensor& key_keep_BM,
               const OptionalTensor& query_keep_BN, bool causal, double scale, bool training,
               const std::string& method_json, int64_t seed, const OptionalTensor& generator_state) {
  Call call{{}, method_of(method_json),
            at::make_generator<at::CPUGeneratorImpl>(static_cast<uint64_t>(seed))};
  if (generator_state) call.generator.set_state(generator_state->cpu());
  call.inputs.q_BHND = q_BHND;
  call.inputs.k_BHMD = k_BHMD;
  call.inputs.v_BHME = v_BHME;
  call.inputs.key_keep_BM = key_keep_BM;
  call.inputs.query_keep_BN = query_keep_BN;
  call.inputs.causal = causal;
  call.inputs.scale = scale;
  call.inputs.training = training;
  return call;
}

std::tuple<Tensor, Tensor, Tensor> attention(const Tensor& q_BHND, const Tensor& k_BHMD, const Tensor& v_BHME,
                                             const OptionalTensor& key_keep_BM, const OptionalTensor& query_keep_BN,
                                             bool causal, double scale, bool training, const std::string& method_json,
                                             int64_t seed, const OptionalTensor& generator_state) {
  return with_python_errors([&] {
    Call call = make_call(q_BHND, k_BHMD, v_BHME, key_keep_BM, query_keep_BN, causal, scale, training, method_json,
                          seed, generator_state);
    at::NoGradGuard no_grad;
    AttentionOutput out = call.method->forward(call.inputs, call.generator);
    SMYRF_CHECK(out.lse_BHN.has_value() == call.method->capabilities().lse,
                "{}: its lse does not match Capabilities::lse", call.method->name());
    Tensor lse_BHN = out.lse_BHN ? *out.lse_BHN : at::empty({0}, q_BHND.options());
    return std::make_tuple(out.out_BHNE, lse_BHN, call.generator.get_state());
  });
}

// Autograd is excluded below the Autograd dispatch key, where this kernel runs; the replay needs it.
std::tuple<Tensor, Tensor, Tensor> attention_backward(const Tensor& grad_out_BHNE, const OptionalTensor& grad_lse_BHN,
                                                      const Tensor& q_BHND, const Tensor& k_BHMD, const Tensor& v_BHME,
                                                      const OptionalTensor& key_keep_BM,
                                                      const OptionalTensor& query_keep_BN, bool causal, double scale,
                                                      bool training, const std::string& method_json, int64_t seed,
                                                      const OptionalTensor& generator_state) {
  return with_python_errors([&] {
    c10::impl::ForceDispatchKeyGuard autograd_on(c10::impl::tls_local_dispatch_key_set().included_,
                                                 c10::DispatchKeySet());
    at::AutoGradMode grad_mode(true);
    const Tensor q = q_BHND.detach().requires_grad_(true), k = k_BHMD.detach().requires_grad_(true),
                 v = v_BHME.detach().requires_grad_(true);
    Call call = make_call(q, k, v, key_keep_BM, query_keep_BN, causal, scale, training, method_json, seed,
                          generator_state);
    const AttentionOutput out = call.method->forward(call.inputs, call.generator);
    std::vector<Tensor> outputs{out.out_BHNE}, grads{grad_out_BHNE};
    if (out.lse_BHN && grad_lse_BHN && grad_lse_BHN->numel() > 0) {
      outputs.push_back(*out.lse_BHN);
      grads.push_back(*grad_lse_BHN);
    }
    const auto g = torch::autograd::grad(outputs, {q, k, v}, grads, /*retain_graph=*/false, /*create_graph=*/false,
                                         /*allow_unused=*/true);
    auto or_zeros = [](const Tensor& grad, const Tensor& like) { return grad.defined() ? grad : at::zeros_like(like); };
    return std::make_tuple(or_zeros(g[0], q_BHND), or_zeros(g[1], k_BHMD), or_zeros(g[2], v_BHME));
  });
}

nlohmann::json capabilities_json(const Capabilities& c) {
  return {{"causal", c.causal},   {"padding", c.padding}, {"autograd", c.autograd},
          {"deterministic_given_seed", c.deterministic_given_seed},
          {"exact", c.exact},     {"dropout", c.dropout}, {"lse", c.lse}};
}

std::string methods() {
  nlohmann::json all = nlohmann::json::object();
  for (const auto& name : attention_method_names()) {
    const auto method = make_attention({{"method", name}});
    all[name] = {{"summary", attention_method_summary(name)},
                 {"capabilities", capabilities_json(method->capabilities())},
                 {"options", method->options_json()},
                 {"size_knobs", method->reported_knobs()}};
  }
  return all.dump();
}

std::string resolve(const std::string& method_json) {
  return with_python_errors([&] { return method_of(method_json)->options_json().dump(); });
}

}  // namespace
}  // namespace smyrf

TORCH_LIBRARY(smyrf, m) {
  m.def("attention(Tensor q, Tensor k, Tensor v, Tensor? key_keep, Tensor? query_keep, bool causal, float scale, "
        "bool training, str method, int seed, Tensor? generator_state) -> (Tensor, Tensor, Tensor)");
  m.def("attention_backward(Tensor grad_out, Tensor? grad_lse, Tensor q, Tensor k, Tensor v, Tensor? key_keep, "
        "Tensor? query_keep, bool causal, float scale, bool training, str method, int seed, "
        "Tensor? generator_state) -> (Tensor, Tensor, Tensor)");
  m.def("methods() -> str", &smyrf::methods);
  m.def("resolve(str method) -> str", &smyrf::resolve);
}

TORCH_LIBRARY_IMPL(smyrf, CompositeExplicitAutograd, m) {
  m.impl("attention", &smyrf::attention);
  m.impl("attention_backward", &smyrf::attention_backward);
}
