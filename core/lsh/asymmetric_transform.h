// Asymmetric transforms that turn maximum-inner-product search into Euclidean nearest neighbours.
//
// XBOX+ (SMYRF): per row r (one batch*head), M^2 = max_i |q_i|^2 + max_j |k_j|^2 and
//   T_q(q) = [q, 0, sqrt(M^2 - |q|^2)],   T_k(k) = [k, sqrt(M^2 - |k|^2), 0]
// so |T_q(q) - T_k(k)|^2 = 2 M^2 - 2 q.k depends on q.k alone: one distance for every pair, which
// is what clustering many queries with many keys needs (plain XBOX only serves a single query).
// The transformed vectors are never materialised on the hot path: a projection of T_q(q) is
// q.a[:D] + ext_q * a[D+1] (see projection_hash.h); xbox_plus_queries/keys exist for tests.
// Shapes: q_RND, k_RMD (R = B*H rows), ext_RN / ext_RM. Tested by tests/test_lsh.cpp.
#pragma once

#include <ATen/core/Tensor.h>

namespace smyrf {

struct XboxPlusExtensions {
  at::Tensor q_ext_RN;  // sqrt(M^2 - |q|^2), goes into coordinate D+1 of T_q
  at::Tensor k_ext_RM;  // sqrt(M^2 - |k|^2), goes into coordinate D   of T_k
};

// Computed without autograd: clustering is not differentiated.
XboxPlusExtensions xbox_plus_extensions(const at::Tensor& q_RND, const at::Tensor& k_RMD);

// Explicit (D+2)-dimensional transforms (tests, visualisation).
at::Tensor xbox_plus_queries(const at::Tensor& q_RND, const at::Tensor& q_ext_RN);
at::Tensor xbox_plus_keys(const at::Tensor& k_RMD, const at::Tensor& k_ext_RM);

}  // namespace smyrf
