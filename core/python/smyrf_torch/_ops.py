"""The smyrf::attention operator from Python: fake kernels (torch.compile), the autograd formula, and
the `attention` function.

Shapes follow the harness's legend: q [B, H, N, D], k [B, H, M, D], v [B, H, M, E], out [B, H, N, E],
lse [B, H, N]; key_keep [B, M] and query_keep [B, N] are bool with True = a real token.
The backward replays the forward from the same generator state with autograd on (the operator keeps
nothing for it, like activation checkpointing), so gradients are those of the function the forward
computed. Tested by tests/python/test_torch_ops.py.
"""
import functools
import json

import torch

from . import _library

_library.load()

# Bytes in a CPU generator's state (torch.Generator().get_state()): the operator's third output.
_STATE_BYTES = torch.Generator().get_state().numel()


@functools.lru_cache(maxsize=None)
def methods():
    """Every registered method: {name: {summary, capabilities, options (defaults), size_knobs}}."""
    return json.loads(torch.ops.smyrf.methods())


@torch.compiler.assume_constant_result  # torch.compile: a constant string, not traced through json
def method_spec(method, options):
    """The JSON the operator takes for `method` with `options`, checked now: an unknown method or option
    raises ValueError naming the closest valid one."""
    spec = json.dumps({"method": method, **options}, sort_keys=True)
    _resolved(spec)
    return spec


@functools.lru_cache(maxsize=256)
def _resolved(spec):
    return json.loads(torch.ops.smyrf.resolve(spec))


def _has_lse(spec):
    return methods()[_resolved(spec)["method"]]["capabilities"]["lse"]


@torch.library.register_fake("smyrf::attention")
def _attention_fake(q, k, v, key_keep, query_keep, causal, scale, training, method, seed, generator_state):
    B, H, N, _ = q.shape
    out = q.new_empty((B, H, N, v.shape[-1]))
    lse = q.new_empty((B, H, N)) if _has_lse(method) else q.new_empty((0,))
    return out, lse, torch.empty((_STATE_BYTES,), dtype=torch.uint8)


@torch.library.register_fake("smyrf::attention_backward")
def _attention_backward_fake(grad_out, grad_lse, q, k, v, key_keep, query_keep, causal, scale, training, method,
                             seed, generator_state):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _setup_context(ctx, inputs, output):
    q, k, v, key_keep, query_keep, causal, scale, training, method, seed, generator_state = inputs
    ctx.save_for_backward(q, k, v, key_keep, query_keep, generator_state)
    ctx.call = (causal, scale, training, method, seed)
    ctx.mark_non_differentiable(output[2])


def _backward(ctx, grad_out, grad_lse, _grad_state):
    q, k, v, key_keep, query_keep, generator_state = ctx.saved_tensors
    if grad_lse is not None and grad_lse.numel() == 0:
        grad_lse = None
    grad_q, grad_k, grad_v = torch.ops.smyrf.attention_backward(
        grad_out.contiguous(), grad_lse, q, k, v, key_keep, query_keep, *ctx.call, generator_state)
    return (grad_q, grad_k, grad_v) + (None,) * 8


torch.library.register_autograd("smyrf::attention", _backward, setup_context=_setup_context)


def attention(q, k, v, method="smyrf", *, key_keep=None, query_keep=None, causal=False, scale=None, seed=0,
              generator=None, training=False, return_lse=False, **options):
    """One attention call of `method` with `options` (the keys of methods()[method]["options"]).

    Randomness: from a CPU generator seeded with `seed`, or drawn from `generator` (a CPU
    torch.Generator, which advances) so that successive calls get fresh draws, reproducibly.
    The same seed and inputs give the bits `smyrf attend --seed` gives.
    scale=None means 1/sqrt(D). training=True turns on the method's attention dropout.
    Returns out [B, H, N, E], or (out, lse) with return_lse (lse None for a method without one).
    """
    spec = method_spec(method, options)
    state = generator.get_state() if generator is not None else None
    out, lse, new_state = torch.ops.smyrf.attention(q, k, v, key_keep, query_keep, bool(causal),
                                                    float(scale or 0.0), bool(training), spec, int(seed), state)
    if generator is not None:
        generator.set_state(new_state)
    if not return_lse:
        return out
    return out, (lse if _has_lse(spec) else None)
