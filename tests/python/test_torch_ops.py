"""The PyTorch operators (core/python/smyrf_torch_ops.cpp, package core/python/smyrf_torch):
torch.library.opcheck (schema, fake kernels, autograd registration, AOT dispatch), gradcheck in
float64 for every method, bitwise agreement with `smyrf attend` on the same captured group and seed,
the nn.Module's generator stream, torch.compile tracing, errors, and the import without a library."""
import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

import smyrf_torch
from smyrf_torch._ops import method_spec

# Options small enough for N = 24..40 tokens; every method's defaults otherwise.
SMALL = {
    "smyrf": {"n_hashes": 2, "q_cluster_size": 8},
    "e2lsh": {"n_hashes": 2, "q_cluster_size": 8},
    "hyper": {"block_size": 8, "sample_size": 8, "min_seq_len": 16},
    "reformer": {"chunk_size": 8, "n_buckets": 4},
    "local": {"window": 8},
    "nystrom": {"landmarks": 4},
    "performer": {"features": 16, "block": 8},
    "polysketch": {"sketch_size": 8, "block": 8},
}
METHODS = sorted(smyrf_torch.methods())
CAUSAL = [m for m in METHODS if smyrf_torch.methods()[m]["capabilities"]["causal"]]


def qkv(B=2, H=2, N=40, M=40, D=8, E=4, dtype=torch.float32, seed=0, grad=False):
    g = torch.Generator().manual_seed(seed)
    shapes = [(B, H, N, D), (B, H, M, D), (B, H, M, E)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(grad) for s in shapes]


def op_args(method, q, k, v, key_keep=None, query_keep=None, causal=False, seed=3):
    return (q, k, v, key_keep, query_keep, causal, 0.0, False, method_spec(method, SMALL.get(method, {})), seed, None)


@pytest.mark.parametrize("method", METHODS)
def test_opcheck(method):
    q, k, v = qkv(N=40, M=40, grad=True)
    key_keep = torch.ones(2, 40, dtype=torch.bool)
    key_keep[1, 31:] = False
    torch.library.opcheck(torch.ops.smyrf.attention.default, op_args(method, q, k, v, key_keep, key_keep))
    if method in CAUSAL:
        torch.library.opcheck(torch.ops.smyrf.attention.default, op_args(method, q, k, v, causal=True))


@pytest.mark.parametrize("method", METHODS)
def test_gradcheck_float64(method):
    assert smyrf_torch.methods()[method]["capabilities"]["autograd"], method
    q, k, v = qkv(B=1, H=2, N=24, M=24, D=4, E=3, dtype=torch.float64, seed=1, grad=True)
    key_keep = torch.ones(1, 24, dtype=torch.bool)
    key_keep[0, 20:] = False
    causal = method in CAUSAL

    def f(q, k, v):
        return smyrf_torch.attention(q, k, v, method, key_keep=key_keep, causal=causal, seed=5,
                                     **SMALL.get(method, {}))

    assert torch.autograd.gradcheck(f, (q, k, v), atol=1e-6, rtol=1e-4)


def write_capture(path, rng, B=2, H=3, N=97, M=61, D=16, E=8):
    arrays = {"q": rng.normal(size=(B, H, N, D)), "k": rng.normal(size=(B, H, M, D)), "v": rng.normal(size=(B, H, M, E))}
    key_keep = np.ones((B, M), dtype=np.int8)
    key_keep[1, M - 13:] = 0
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "smyrf-captured-qkv"
        group = f.create_group("layer0")
        for name, a in arrays.items():
            group[name] = a
        group["key_keep"] = key_keep
        group.attrs["causal"] = 0
    tensors = [torch.from_numpy(arrays[n]).float() for n in ("q", "k", "v")]
    return tensors, torch.from_numpy(key_keep.astype(bool))


@pytest.mark.parametrize("options", [
    {"method": "smyrf", "n_hashes": 2, "q_cluster_size": 16},
    {"method": "e2lsh", "n_hashes": 3, "q_cluster_size": 32},
    {"method": "hyper", "block_size": 16, "sample_size": 16, "min_seq_len": 32},
    {"method": "performer", "features": 32},
    {"method": "reformer", "chunk_size": 16, "n_buckets": 4},
])
def test_operator_equals_smyrf_attend_bitwise(smyrf_cli, tmp_path, options):
    (q, k, v), key_keep = write_capture(tmp_path / "qkv.h5", np.random.default_rng(4))
    proc = subprocess.run([str(smyrf_cli), "attend", str(tmp_path / "qkv.h5"), "--group", "layer0", "--attention",
                           json.dumps(options), "--output", str(tmp_path / "out.h5"), "--seed", "11"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    method = options.pop("method")
    out, lse = smyrf_torch.attention(q, k, v, method, key_keep=key_keep, seed=11, return_lse=True, **options)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert torch.equal(out.double(), torch.from_numpy(f["out_BHNE"][...]))
        assert ("lse_BHN" in f) == (lse is not None)
        if lse is not None:
            assert torch.equal(lse.double(), torch.from_numpy(f["lse_BHN"][...]))


def test_generator_stream_and_module():
    q, k, v = qkv()
    g = torch.Generator().manual_seed(9)
    first = smyrf_torch.attention(q, k, v, "smyrf", generator=g, q_cluster_size=8)
    second = smyrf_torch.attention(q, k, v, "smyrf", generator=g, q_cluster_size=8)
    assert not torch.equal(first, second), "a generator must advance between calls"
    assert torch.equal(first, smyrf_torch.attention(q, k, v, "smyrf", seed=9, q_cluster_size=8))
    module_a, module_b = (smyrf_torch.Attention("smyrf", seed=9, q_cluster_size=8) for _ in range(2))
    assert torch.equal(module_a(q, k, v), first) and torch.equal(module_a(q, k, v), second)
    assert torch.equal(module_b(q, k, v), first)
    dropping = smyrf_torch.Attention("smyrf", seed=9, q_cluster_size=8, dropout=0.5)
    assert torch.equal(dropping.eval()(q, k, v), first)
    assert not torch.equal(dropping.train()(q, k, v), second)


def test_training_through_the_module_reduces_a_loss():
    """End to end through the autograd formula; fresh hashes every step make the curve noisy."""
    q, k, v = qkv(grad=True)
    layer = smyrf_torch.Attention("smyrf", seed=0, q_cluster_size=8)
    optimizer = torch.optim.SGD([q, k, v], lr=0.05)
    losses = []
    for _ in range(10):
        loss = layer(q, k, v).square().sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


def test_torch_compile_traces_the_operator():
    q, k, v = qkv(grad=True)

    def f(q, k, v):
        return smyrf_torch.attention(q, k, v, "smyrf", seed=2, q_cluster_size=8).square().sum()

    compiled = torch.compile(f, backend="aot_eager", fullgraph=True)
    expected = f(q, k, v)
    expected_grads = torch.autograd.grad(expected, (q, k, v))
    got = compiled(q, k, v)
    assert torch.equal(got, expected)
    for a, b in zip(torch.autograd.grad(got, (q, k, v)), expected_grads):
        assert torch.equal(a, b)


def test_errors_carry_the_cpp_message():
    q, k, v = qkv()
    with pytest.raises(ValueError, match="did you mean 'n_hashes'"):
        smyrf_torch.attention(q, k, v, "smyrf", n_hashs=2)
    with pytest.raises(ValueError, match="closest|did you mean"):
        smyrf_torch.attention(q, k, v, "smyrff")
    with pytest.raises(ValueError, match="nystrom does not support causal masking"):
        smyrf_torch.attention(q, k, v, "nystrom", causal=True, landmarks=4)
    with pytest.raises(ValueError, match="q_cluster_size 64 is larger than the 40 queries"):
        smyrf_torch.attention(q, k, v, "smyrf", q_cluster_size=64)
    with pytest.raises(ValueError, match="did you mean 'window'"):
        smyrf_torch.Attention("local", windw=8)


def test_import_without_the_library_names_the_build_command(tmp_path):
    env = dict(os.environ, SMYRF_BUILD_DIR=str(tmp_path / "no-build"))
    proc = subprocess.run([sys.executable, "-c", "import smyrf_torch"], capture_output=True, text=True, env=env,
                          cwd=tmp_path)
    assert proc.returncode != 0
    assert "OperatorLibraryNotFound" in proc.stderr and "scripts/setup.sh" in proc.stderr, proc.stderr
