"""Every method as a Hugging Face transformers attention implementation (AttentionInterface).

    import smyrf_torch
    smyrf_torch.register_with_transformers()
    model = AutoModel.from_pretrained(path, attn_implementation="smyrf")
    with smyrf_torch.attention_options(smyrf={"n_hashes": 2, "q_cluster_size": 32}, seed=0):
        out = model(**batch)

Names: each method under its own name ("smyrf", "hyper", "polysketch", ...), except where
transformers already owns the name: our sdpa registers as "smyrf_sdpa".
Options, innermost first: an attention_options(...) context; the model's config attribute
`smyrf_attention` ({"smyrf": {...}, "seed": 0}, saved with config.json); the method's defaults.
Randomness: a context (or a model config) holds one generator seeded once, and every attention call
draws from it in order. One forward of a BERT model inside a fresh context therefore makes the draws
`smyrf encode --seed S` makes.
Masks: the mask function registered with each name is transformers' sdpa_mask (boolean, True =
attend). A call turns it back into key padding plus causality and refuses any other mask (sliding
windows, packed sequences), which the methods cannot represent. In self-attention (N == M) padded
positions are padded queries too: their rows come out as zeros, as in the harness's C++ encoder.
Decoding with a cache (N < M queries at the end of M keys) runs the causal method over all M
positions with the earlier queries padded, and keeps the last N rows.
Grouped-query attention: key/value heads are repeated to the query heads.
Tested by tests/python/test_hf_integration.py.
"""
import contextlib
import threading
import warnings
import weakref

import torch

from ._ops import attention, methods

_RESERVED = {"sdpa", "eager"}
_local = threading.local()
_config_generators = {}


def registered_name(method):
    """The attn_implementation name a method is registered under."""
    return f"smyrf_{method}" if method in _RESERVED else method


def register_with_transformers():
    """Registers every method (and its mask function). Idempotent. Returns {attn_implementation: method}."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    names = {}
    for method in methods():
        name = registered_name(method)
        AttentionInterface.register(name, _attention_function(method))
        AttentionMaskInterface.register(name, sdpa_mask)
        names[name] = method
    return names


class _Options:
    def __init__(self, per_method, seed):
        self.per_method = per_method
        self.generator = torch.Generator().manual_seed(seed)


@contextlib.contextmanager
def attention_options(seed=0, **per_method):
    """Options for the methods called inside, by method name: attention_options(smyrf={...}, hyper={...}).
    One generator, seeded with `seed`, serves every call inside."""
    unknown = sorted(set(per_method) - set(methods()))
    if unknown:
        raise ValueError(f"attention_options: unknown method(s) {unknown}; the methods are {sorted(methods())}")
    stack = _local.__dict__.setdefault("stack", [])
    stack.append(_Options(per_method, seed))
    try:
        yield
    finally:
        stack.pop()


def _options_for(module, method):
    stack = getattr(_local, "stack", [])
    if stack:
        return dict(stack[-1].per_method.get(method, {})), stack[-1].generator
    config = getattr(module, "config", None)
    settings = getattr(config, "smyrf_attention", None) or {}
    if config is None:
        return dict(settings.get(method, {})), None
    key = id(config)
    if key not in _config_generators:
        _config_generators[key] = torch.Generator().manual_seed(int(settings.get("seed", 0)))
        weakref.finalize(config, _config_generators.pop, key, None)
    return dict(settings.get(method, {})), _config_generators[key]


def _padding_and_causality(module, mask, B, N, M):
    """(key_keep [B, M] or None, causal) from transformers' boolean mask [B or 1, 1, N, M] or None."""
    causal = bool(getattr(module, "is_causal", False))  # decoding too: the queries keep their positions
    if mask is None:
        return None, causal
    if mask.dtype != torch.bool or mask.dim() != 4:
        raise ValueError(f"smyrf attention expects the boolean [B, 1, N, M] mask of sdpa_mask, got {mask.dtype} "
                         f"{tuple(mask.shape)}: load the model with register_with_transformers()'s names")
    key_keep = mask[:, 0, -1, :].expand(B, M)
    expected = key_keep[:, None, :]
    if causal:
        expected = expected & torch.ones(N, M, dtype=torch.bool, device=mask.device).tril(M - N)
    if not torch.equal(mask[:, 0].expand(B, N, M), expected.expand(B, N, M)):
        raise ValueError("this model's attention mask is neither key padding nor key padding plus causality "
                         "(a sliding window or packed sequences?): the smyrf methods take only those")
    return (None if bool(key_keep.all()) else key_keep.contiguous()), causal


def _with_dropout(method, options, module, dropout):
    if not (module.training and dropout > 0) or "dropout" in options:
        return options
    if methods()[method]["capabilities"]["dropout"]:
        return {**options, "dropout": float(dropout)}
    warnings.warn(f"{method} has no attention dropout; the model's dropout p={dropout} is not applied", stacklevel=3)
    return options


def _attention_function(method):
    def smyrf_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
        B, H, N, _ = query.shape
        M = key.shape[2]
        if key.shape[1] != H:  # grouped-query attention
            key = key.repeat_interleave(H // key.shape[1], dim=1)
            value = value.repeat_interleave(H // value.shape[1], dim=1)
        options, generator = _options_for(module, method)
        options = _with_dropout(method, options, module, dropout)
        key_keep, causal = _padding_and_causality(module, attention_mask, B, N, M)
        query_keep = key_keep
        if N < M and causal:  # decoding: the N queries are the last N positions
            query = torch.cat([query.new_zeros(B, H, M - N, query.shape[-1]), query], dim=2)
            query_keep = torch.arange(M, device=query.device).ge(M - N).expand(B, M)
            if key_keep is not None:
                query_keep = query_keep & key_keep
        elif N != M:
            query_keep = None
        out = attention(query.contiguous(), key.contiguous(), value.contiguous(), method, key_keep=key_keep,
                        query_keep=query_keep, causal=causal, scale=scaling, generator=generator,
                        training=module.training, **options)
        out = out[:, :, out.shape[2] - N:]
        return out.transpose(1, 2).contiguous(), None

    smyrf_attention.__name__ = f"smyrf_attention_{method}"
    return smyrf_attention
