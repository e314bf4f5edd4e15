"""Our decoder-only causal LMs (core/models/decoder.h, through `smyrf lm`) against transformers.

A tiny random Llama (grouped-query attention 4/2 heads, RoPE, RMSNorm, SwiGLU; untied head; also with
RoPE's "linear" scaling) and a
tiny random GPT-2 (learned positions, LayerNorm, Conv1D weights, tied head), saved by transformers
as safetensors: the logits and every hidden state within 1e-4 at real tokens of a right-padded
batch. In float64 GPT-2 agrees within 1e-10; Llama within 1e-4 only, because transformers computes
RMSNorm (and RoPE's angles) in float32 even in a float64 model, and we keep float64 there. Weights are drawn larger than transformers' initialisation so
that every part of the block matters. Padded positions are not compared (our padded query rows are
zeros on purpose).
"""
import json
import subprocess

import h5py
import numpy as np
import pytest
import torch
import transformers


def save_random(kind, directory):
    torch.manual_seed(3)
    if kind.startswith("llama"):
        # llama_linear: RoPE with "linear" scaling, as long-context fine-tunes (LLaMA-2-7B-32K) use
        scaling = {"rope_scaling": {"rope_type": "linear", "factor": 4.0}} if kind == "llama_linear" else {}
        config = transformers.LlamaConfig(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=3,
                                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                          rope_theta=500.0, rms_norm_eps=1e-5, tie_word_embeddings=False, **scaling)
        model = transformers.LlamaForCausalLM(config)
    else:
        config = transformers.GPT2Config(vocab_size=97, n_embd=48, n_layer=3, n_head=4, n_positions=128)
        model = transformers.GPT2LMHeadModel(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(1.0 if "norm" in name or "ln_" in name else 0.0, 0.2)
    model.save_pretrained(directory, safe_serialization=True)
    return model.eval()


def run_lm(smyrf_cli, model_dir, rows, out_path, extra=()):
    ids_path = out_path.with_suffix(".jsonl")
    ids_path.write_text("".join(json.dumps({"ids": r}) + "\n" for r in rows))
    proc = subprocess.run([str(smyrf_cli), "lm", "--model", str(model_dir), "--ids", str(ids_path), "-o", str(out_path),
                           *extra], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return h5py.File(out_path, "r")


@pytest.mark.parametrize("kind", ["llama", "llama_linear", "gpt2"])
@pytest.mark.parametrize("float64", [False, True])
def test_random_decoders_match_transformers(smyrf_cli, tmp_path, kind, float64):
    model = save_random(kind, tmp_path / kind)
    rng = np.random.default_rng(2)
    rows = [rng.integers(1, 97, size=n).tolist() for n in (61, 17, 40)]
    out = run_lm(smyrf_cli, tmp_path / kind, rows, tmp_path / "out.h5", ["--float64"] if float64 else [])
    n = max(map(len, rows))
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, :len(r)], mask[b, :len(r)] = torch.tensor(r), 1
    model = model.to(torch.float64 if float64 else torch.float32)
    with torch.no_grad():
        ref = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    keep = mask.numpy().astype(bool)
    bound = 1e-10 if float64 and kind == "gpt2" else 1e-4
    logits = out["logits"][()]
    assert logits.shape == (len(rows), n, 97)
    assert np.abs(logits[keep] - ref.logits.numpy()[keep]).max() < bound * 10  # logits are the largest values
    ours, theirs = out["hidden_states"][()], torch.stack(ref.hidden_states).numpy()
    assert ours.shape == theirs.shape
    errors = [float(np.abs(ours[l][keep] - theirs[l][keep]).max()) for l in range(ours.shape[0])]
    print(f"{kind} float64={float64}: per-layer max abs error {errors}")
    assert max(errors) < bound, errors


def test_lm_refuses_a_method_without_a_causal_variant(smyrf_cli, tmp_path):
    save_random("gpt2", tmp_path / "gpt2")
    (tmp_path / "ids.jsonl").write_text(json.dumps({"ids": [1, 2, 3]}) + "\n")
    proc = subprocess.run([str(smyrf_cli), "lm", "--model", str(tmp_path / "gpt2"), "--ids", str(tmp_path / "ids.jsonl"),
                           "-o", str(tmp_path / "x.h5"), "--attention", '{"method": "nystrom"}'],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "does not support causal masking" in proc.stderr
