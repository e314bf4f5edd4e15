"""smyrf_torch.register_with_transformers(): our methods inside Hugging Face models.

1. The offline MiniLM (all-MiniLM-L6-v2) with attn_implementation="smyrf" and one cluster against
   "eager" on a padded batch of real licence text: every layer at real tokens within 1e-5.
2. The same model with SMYRF 2x32 through transformers against our C++ encoder (`smyrf encode`)
   with the same seed: every layer at real tokens within 1e-10 in float64 (same draws, same
   clusters), and within the dense parity's 1e-4 in float32. Options from the model config act as
   those of a context.
3. A tiny random Llama saved by transformers runs `generate` with left padding and a KV cache under
   hyper, local, smyrf and our sdpa: at their exactness limits the logits match transformers' sdpa
   and greedy decoding gives the same tokens; approximate hyper and smyrf run too; a cached decoding
   step under a narrow sliding window sees its own position's window. Inside the model, changing a
   token leaves the logits of every earlier position unchanged under each strictly causal method.
   A method without a causal variant (nystrom) is refused with its reason.
Padded positions are not compared (padded query rows are zeros on purpose: smyrf_torch/hf.py).
"""
import contextlib
import json

import numpy as np
import pytest
import torch
import transformers

import smyrf_torch
from test_bert_parity import MINILM, LICENCE, encode, licence_rows, max_error_at_real_tokens, padded

NAMES = smyrf_torch.register_with_transformers()


def minilm(attn_implementation):
    return transformers.BertModel.from_pretrained(str(MINILM), attn_implementation=attn_implementation).eval()


def hidden_states(model, ids, types, mask):
    with torch.no_grad():
        out = model(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    return torch.stack(out.hidden_states).numpy()


def test_registered_names():
    assert NAMES["smyrf"] == "smyrf" and NAMES["hyper"] == "hyper" and NAMES["smyrf_sdpa"] == "sdpa"
    assert set(NAMES.values()) == set(smyrf_torch.methods())


def test_minilm_one_cluster_matches_eager_on_padded_real_text():
    ids, types, mask = padded(licence_rows(8), pad_id=0)
    assert mask.min() == 0, "the batch must need padding"
    N = ids.shape[1]
    eager = hidden_states(minilm("eager"), ids, types, mask)
    with smyrf_torch.attention_options(smyrf={"n_hashes": 1, "q_cluster_size": N}):
        ours = hidden_states(minilm("smyrf"), ids, types, mask)
    errors = [max_error_at_real_tokens(ours[l], eager[l], mask) for l in range(ours.shape[0])]
    print(f"one-cluster smyrf vs eager, per-layer max abs error: {[f'{e:.1e}' for e in errors]}")
    assert max(errors) < 1e-5, errors
    assert np.isfinite(ours).all()


@pytest.mark.parametrize("float64", [True, False])
def test_minilm_smyrf_2x32_equals_smyrf_encode_for_the_same_seed(smyrf_cli, tmp_path, float64):
    """In float64 the two agree to rounding (same draws, same clusters); in float32 the encoders' own
    rounding differs (dense: up to 5e-6 on hidden values up to 10), so the bound is the dense parity's."""
    rows = licence_rows(8)
    options = {"n_hashes": 2, "q_cluster_size": 32}
    out = encode(smyrf_cli, MINILM, rows, tmp_path / "smyrf.h5",
                 extra=["--attention", json.dumps({"method": "smyrf", **options}), "--seed", "5"]
                 + (["--float64"] if float64 else []))
    ids, types, mask = padded(rows, pad_id=0)
    assert ids.shape[1] > 3 * 32, "the clusters must matter"
    model = minilm("smyrf").to(torch.float64 if float64 else torch.float32)
    with smyrf_torch.attention_options(smyrf=options, seed=5):
        ours = hidden_states(model, ids, types, mask)
    cpp = out["hidden_states"][()]
    errors = [max_error_at_real_tokens(ours[l], cpp[l], mask) for l in range(ours.shape[0])]
    print(f"smyrf 2x32 through transformers vs smyrf encode (float64={float64}), per-layer max abs error: "
          f"{[f'{e:.1e}' for e in errors]}")
    assert max(errors) < (1e-10 if float64 else 1e-4), errors
    # and the clusters do change the model: far from dense
    dense = hidden_states(minilm("eager").to(model.dtype), ids, types, mask)
    assert max_error_at_real_tokens(ours[-1], dense[-1], mask) > 1e-2
    # a second forward in the same context draws new hashes
    with smyrf_torch.attention_options(smyrf=options, seed=5):
        hidden_states(model, ids, types, mask)
        again = hidden_states(model, ids, types, mask)
    assert max_error_at_real_tokens(again[-1], ours[-1], mask) > 1e-4


def test_options_from_the_model_config_match_the_context():
    ids, types, mask = padded(licence_rows(4), pad_id=0)
    options = {"n_hashes": 2, "q_cluster_size": 16}
    with smyrf_torch.attention_options(smyrf=options, seed=3):
        from_context = hidden_states(minilm("smyrf"), ids, types, mask)
    model = minilm("smyrf")
    model.config.smyrf_attention = {"smyrf": options, "seed": 3}
    from_config = hidden_states(model, ids, types, mask)
    assert np.array_equal(from_config, from_context)
    model.config.smyrf_attention = {"smyrf": {"n_hashs": 2}}
    with pytest.raises(ValueError, match="did you mean 'n_hashes'"):
        hidden_states(model, ids, types, mask)


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    config = transformers.LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                      pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_llama")
    transformers.LlamaForCausalLM(config).save_pretrained(path)
    text = LICENCE.read_bytes()
    prompts = [list(text[100:160]), list(text[400:437])]  # bytes of real text as ids (mod 128)
    n = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), n, dtype=torch.long)
    mask = torch.zeros(len(prompts), n, dtype=torch.long)
    for b, p in enumerate(prompts):  # left padding, as decoder-only generation wants
        ids[b, n - len(p):] = torch.tensor(p) % 125 + 3
        mask[b, n - len(p):] = 1
    return path, ids, mask


def llama(path, attn_implementation):
    return transformers.LlamaForCausalLM.from_pretrained(str(path), attn_implementation=attn_implementation).eval()


def run(path, attn_implementation, ids, mask, **options):
    model = llama(path, attn_implementation)
    method = NAMES.get(attn_implementation)
    context = smyrf_torch.attention_options(**{method: options}) if method else contextlib.nullcontext()
    with torch.no_grad(), context:
        logits = model(input_ids=ids, attention_mask=mask).logits
        tokens = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=8, do_sample=False)
    return logits, tokens


EXACT_CAUSAL = {
    "smyrf_sdpa": {},
    "local": {"mode": "sliding", "window": 256},
    "hyper": {"block_size": 16, "min_seq_len": 256},  # below min_seq_len hyper attends exactly
    "smyrf": {"n_hashes": 2, "q_cluster_size": 8, "block": 256},  # one exact block
}


@pytest.mark.parametrize("name", sorted(EXACT_CAUSAL))
def test_tiny_llama_generate_at_the_exactness_limit(tiny_llama, name):
    path, ids, mask = tiny_llama
    ref_logits, ref_tokens = run(path, "sdpa", ids, mask)
    logits, tokens = run(path, name, ids, mask, **EXACT_CAUSAL[name])
    keep = mask.bool()
    assert (logits[keep] - ref_logits[keep]).abs().max() < 1e-4
    assert torch.equal(tokens, ref_tokens), (tokens, ref_tokens)


APPROXIMATE_CAUSAL = {
    "hyper": {"block_size": 8, "sample_size": 8, "min_seq_len": 16},
    "smyrf": {"n_hashes": 2, "q_cluster_size": 4, "k_cluster_size": 8, "block": 8},
    "e2lsh": {"n_hashes": 2, "q_cluster_size": 4, "k_cluster_size": 8, "block": 8},
    "local": {"mode": "sliding", "window": 8},
    "performer": {"features": 16, "block": 8},
    "polysketch": {"sketch_size": 8, "block": 8},
}


@pytest.mark.parametrize("name", ["hyper", "smyrf"])
def test_tiny_llama_generate_with_approximate_methods(tiny_llama, name):
    path, ids, mask = tiny_llama
    _, ref_tokens = run(path, "sdpa", ids, mask)
    logits, tokens = run(path, name, ids, mask, **APPROXIMATE_CAUSAL[name])
    assert tokens.shape == ref_tokens.shape and torch.isfinite(logits).all()
    assert torch.equal(tokens[:, :ids.shape[1]], ids)


# Methods whose rows depend on later tokens in a way their headers state: hyper's lower-left parts
# sort queries among themselves (core/attention/hyper.h), reformer sorts every token by hash
# (core/attention/reformer.h). Strict xfail: the day one becomes strictly causal, this fails.
NOT_STRICTLY_CAUSAL = {"hyper": "queries are sorted among themselves in the lower-left parts (hyper.h)",
                       "reformer": "which past keys a query meets depends on every token's hash (reformer.h)"}
APPROXIMATE_CAUSAL["reformer"] = {"chunk_size": 8, "n_rounds": 2}
# performer's key stabiliser is one maximum over all keys of the row (performer.h): it cancels in
# each ratio but moves the rounding, so earlier rows change in the last bits only
ROUNDING = {"performer": 1e-5}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_STRICTLY_CAUSAL[n]))
                                  if n in NOT_STRICTLY_CAUSAL else n for n in sorted(APPROXIMATE_CAUSAL)])
def test_later_tokens_never_change_earlier_logits(tiny_llama, name):
    """Strict causality inside the model, through hashing and clustering: the tokens from position
    40 on change, and the logits of positions 0..39 must not."""
    path, ids, _ = tiny_llama
    row = ids[:1, -37:].repeat(1, 2)[:, :64]  # 64 real tokens, no padding
    changed = row.clone()
    changed[0, 40:] = (changed[0, 40:] * 7 + 11) % 125 + 3
    model = llama(path, name)

    def logits(input_ids):  # a fresh context per forward: both draw the same hashes and features
        with torch.no_grad(), smyrf_torch.attention_options(seed=4, **{name: APPROXIMATE_CAUSAL[name]}):
            return model(input_ids=input_ids).logits

    before, after = logits(row), logits(changed)
    assert (after[0, :40] - before[0, :40]).abs().max() <= ROUNDING.get(name, 0.0), name
    assert (after[0, 40:] - before[0, 40:]).abs().max() > 1e-3


def test_tiny_llama_cached_decoding_keeps_positions(tiny_llama):
    """A decoding step (one query, a KV cache) under a narrow sliding window must see the window of
    its own position: its logits equal those of the last position of a full forward without cache."""
    path, ids, mask = tiny_llama
    model = llama(path, "local")
    with torch.no_grad(), smyrf_torch.attention_options(local={"mode": "sliding", "window": 8}):
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=2, do_sample=False,
                             output_logits=True, return_dict_in_generate=True)
        first = out.sequences[:, :ids.shape[1] + 1]
        full = model(input_ids=first, attention_mask=torch.cat([mask, torch.ones_like(mask[:, :1])], 1),
                     use_cache=False).logits[:, -1]
    assert (out.logits[1] - full).abs().max() < 1e-4


@pytest.mark.parametrize("name", ["nystrom"])
def test_methods_without_a_causal_variant_are_refused(tiny_llama, name):
    path, ids, mask = tiny_llama
    with pytest.raises(ValueError, match=f"{name} does not support causal masking"):
        run(path, name, ids, mask)


def test_unknown_method_in_options_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        with smyrf_torch.attention_options(smyrff={}):
            pass
