"""pretrained_dropin's low-rank vs sparse statistics of dense attention maps, recomputed with NumPy.

The capture pipeline writes MiniLM's Q/K/V for the same windows the dropin pipeline sees; from them
NumPy rebuilds each head's attention map over the first window's real tokens and counts the singular
values holding 90% of its energy and the entries holding 90% of each row's mass.
"""
import json
import subprocess

import h5py
import numpy as np

from conftest import ROOT

DATA = {"files": ["/usr/share/common-licenses/BSD", "/usr/share/common-licenses/GPL-3"],
        "max_tokens": 320, "min_tokens": 16, "max_windows": 2, "batch": 2}


def run(smyrf_cli, config, path):
    path.write_text(json.dumps(config))
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def count_to_share(sorted_desc, share):
    cumulative = np.cumsum(sorted_desc, axis=-1)
    return (cumulative < share * cumulative[..., -1:]).sum(-1) + 1


def test_rank_and_sparsity_statistics_match_numpy(smyrf_cli, tmp_path):
    model = {"path": str(ROOT / "models/all-MiniLM-L6-v2")}
    captured = tmp_path / "qkv.h5"
    run(smyrf_cli, {"version": 1, "name": "c", "pipeline": "capture", "model": model, "data": DATA,
                    "output": {"path": str(tmp_path / "c.h5"), "captured_qkv": str(captured)}}, tmp_path / "c.json")
    run(smyrf_cli, {"version": 1, "name": "d", "pipeline": "pretrained_dropin", "model": model, "data": DATA,
                    "attention": {"method": "dense"}, "eval": {"svd_windows": 1},
                    "output": {"path": str(tmp_path / "d.h5")}}, tmp_path / "d.json")
    with h5py.File(tmp_path / "d.h5", "r") as f:
        tensors = f["runs/run/tensors"]
        rank90 = tensors["attention_rank90_fraction_YH"][()]
        top90 = tensors["attention_top90_fraction_YH"][()]
        spectra = tensors["attention_singular_values_YHI"][()]
    with h5py.File(captured, "r") as f:
        n_real = int(f["layer_00_batch_0/query_keep"][0].sum())
        assert n_real < 320, "the first window (the whole BSD licence) should be shorter than the window length"
        for layer in range(6):
            g = f[f"layer_{layer:02d}_batch_0"]
            q = g["q"][0, :, :n_real].astype(np.float64)
            k = g["k"][0, :, :n_real].astype(np.float64)
            logits = q @ k.transpose(0, 2, 1) * g.attrs["scale"]
            probs = np.exp(logits - logits.max(-1, keepdims=True))
            probs /= probs.sum(-1, keepdims=True)
            sigma = np.linalg.svd(probs, compute_uv=False)
            np.testing.assert_allclose(spectra[layer, :, :n_real], sigma / sigma[:, :1], atol=1e-4)
            # LAPACK builds may differ in the last bits: a count on the 90% border may move by one
            np.testing.assert_allclose(rank90[layer], count_to_share(sigma ** 2, 0.9) / n_real, atol=1.01 / n_real)
            top = count_to_share(-np.sort(-probs, axis=-1), 0.9) / n_real
            np.testing.assert_allclose(top90[layer], top.mean(-1), atol=1.5 / n_real)
