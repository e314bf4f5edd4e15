"""scripts/plot_biggan_memory_grid.py on a real `biggan_pretrained` sweep: a random BigGAN-PyTorch-format
generator (tests/python/biggan_reference.py) converted by scripts/convert_biggan_pytorch.py, sampled
by `smyrf run` with dense attention and SMYRF at 25% and 50% memory; the figure has one column per
memory level in memory order, one row per class, and its pixels are the runs' stored samples.
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_biggan_grid_plot.py
"""
import json
import subprocess
import sys

import h5py
import matplotlib.image
import numpy as np
import torch

import biggan_reference as ref

from conftest import ROOT


def test_memory_grid_from_a_real_sweep(smyrf_cli, tmp_path):
    config = dict(ref.TINY_CONFIG)
    torch.save(ref.random_generator_state_dict(config, 3), tmp_path / "G.pth")
    model = tmp_path / "model"
    subprocess.run([sys.executable, str(ROOT / "scripts/convert_biggan_pytorch.py"), str(tmp_path / "G.pth"), "-o", str(model),
                    "--no-discriminator", "--bn-eps", str(config["bn_eps"])], check=True, capture_output=True, text=True)
    run_config = {
        "version": 1, "name": "grid_test", "pipeline": "biggan_pretrained", "seed": 2,
        "model": {"dir": str(model)},
        "eval": {"classes": [0, 1]},
        "sweep": [{"attention.method": ["dense"]},
                  {"attention.method": ["smyrf"], "attention.n_hashes": [2], "attention.memory_budget": [0.25, 0.5]}],
        "output": {"path": str(tmp_path / "grid.h5")},
    }
    (tmp_path / "grid.json").write_text(json.dumps(run_config))
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(tmp_path / "grid.json")], capture_output=True,
                          text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    out = tmp_path / "figure.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/plot_biggan_memory_grid.py"), str(tmp_path / "grid.h5"),
                           "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 classes x 3 memory levels" in proc.stdout
    image = matplotlib.image.imread(out)
    assert image.shape[0] > 200 and image.shape[1] > 300  # readable, not a thumbnail

    sys.path.insert(0, str(ROOT / "scripts"))
    import plot_biggan_memory_grid as plot  # noqa: PLC0415
    columns, skipped = plot.read_columns(str(tmp_path / "grid.h5"))
    assert not skipped
    assert [round(c[0], 6) for c in columns] == [0.25, 0.5, 1.0]
    assert columns[-1][1].startswith("dense")
    with h5py.File(tmp_path / "grid.h5") as f:
        for memory, _, pixels, classes, _ in columns:
            assert classes == [0, 1]
            run = next(r for r in f["runs"].values() if abs(r["metrics"]["memory_fraction"][()] - memory) < 1e-9)
            samples = np.asarray(run["tensors"]["samples"])
            assert samples.shape == (2, 3, config["resolution"], config["resolution"])
            np.testing.assert_array_equal(pixels, np.clip(np.round((samples + 1) * 127.5), 0, 255).astype(np.uint8)
                                          .transpose(0, 2, 3, 1))
    # Same latents in every column: SMYRF at 50% is closer to dense than SMYRF at 25% is, on average.
    dense = columns[-1][2].astype(float)
    assert np.abs(columns[1][2] - dense).mean() < np.abs(columns[0][2] - dense).mean()
