// Balanced clustering by sorting: the shared machinery of the sort-and-chunk methods (smyrf,
// e2lsh, reformer, hyper). Tokens of each row are argsorted by a hash (stable, unkept tokens
// forced last) and laid out in L clusters of equal slot counts; spare slots hold dummies.
//
// Shapes: R rows (= B*H), T tokens of a row, T_padded = L*C slots, U hashes (rounds).
//   keep_RT      bool, true = real token (padding false; dummies past T false)
//   hash_RTU     float64 hash per token and hash round
//   perm_RUP     [R, U, L*C] int64, slot -> token index (>= T: dummy)
// Tested through tests/attention/test_smyrf.cpp and tests/attention/test_method_contract.cpp (clusters cover every real
// token exactly once, pads last, the exactness limits of every clustered method).
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace smyrf {

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Per-row keep mask [R, T_padded] from an optional [B, T] mask (true = real token) with the dummy
// tail [T, T_padded) false. `as_released` reproduces the SMYRF release's mask tiling (row b*H+h
// takes the mask of batch (b*H+h) % B).
at::Tensor row_keep(const std::optional<at::Tensor>& keep_BT, int64_t B, int64_t H, int64_t T, int64_t T_padded,
                    bool as_released, const at::TensorOptions& device);

// [R, T, X] -> [R, T_padded, X] with zero rows appended.
at::Tensor pad_tokens(const at::Tensor& x_RTX, int64_t T_padded);

// Stable argsort of hash values with unkept tokens forced last: hash_RTU [R, T, U] -> [R, U, T].
at::Tensor sort_by_hash(const at::Tensor& hash_RTU, const at::Tensor& keep_RT);

// Lays a sorted order out in L clusters of C slots per row: with n the row's real tokens
// (keep_RT; they lead the sorted order because unkept ones sort last), cluster c takes sorted ranks
// [floor(c*n/L), floor((c+1)*n/L)) and its other slots take the padded tokens and then dummies
// (indices T, T+1, ...), so the result is a permutation of [0, L*C) and query cluster c and key
// cluster c cover the same quantiles of the real tokens for any N, M and padding (chunking the
// padded order instead would misalign them and leave clusters of padding only). When C divides
// n this is plain chunking. sorted_RUP: [R, U, >= T]; keep_RT: [R, >= T] bool.
at::Tensor balanced_slots(const at::Tensor& sorted_RUP, const at::Tensor& keep_RT, int64_t T, int64_t L, int64_t C);

// The cluster of each sorted rank under balanced_slots: rank s of n real tokens is in cluster c
// with floor(c*n/L) <= s < floor((c+1)*n/L). The first form takes one n for all; the second one
// per row (ranks_RX [R, X], n_real_R [R]).
at::Tensor cluster_of_rank(const at::Tensor& ranks, int64_t T, int64_t L);
at::Tensor cluster_of_rank(const at::Tensor& ranks_RX, const at::Tensor& n_real_R, int64_t L);

// inverse[r, h, perm[r, h, s]] = s.
at::Tensor inverse_permutation(const at::Tensor& perm_RUP);

// Flat index into a [R*T, ...] token view (shared by all hashes) for each entry of perm_RUP.
at::Tensor flat_token_index(const at::Tensor& perm_RUP, int64_t tokens_per_row);

// Flat index into a [R*U*P, ...] per-hash view for each entry of index_RUP.
at::Tensor flat_hash_index(const at::Tensor& index_RUP);

}  // namespace smyrf
