"""The causal-LM pipelines end to end from Python: lm_train's smoke config through the `smyrf` CLI,
the model it saves read back by transformers (the same logits as our decoder, through `smyrf lm`),
lm_dropin on that model, and scripts/plot_lm.py turning both files into PNGs whose printed numbers
are the files' own."""
import json
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch
import transformers

from conftest import ROOT

PLOT = ROOT / "scripts/plot_lm.py"


def run_cli(smyrf_cli, *args):
    proc = subprocess.run([str(smyrf_cli), *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


@pytest.fixture(scope="module")
def trained(smyrf_cli, tmp_path_factory):
    """lm_train_tiny with dense attention only and a context of 128 (the drop-in needs 128)."""
    directory = tmp_path_factory.mktemp("lm")
    config = directory / "train.json"
    config.write_text(json.dumps({"version": 1, "extends": str(ROOT / "configs/smoke/lm_train_tiny.json"),
                                  "data": {"context": 128}, "sweep": [{"attention.method": ["dense", "local"]}]}))
    out = directory / "train.h5"
    run_cli(smyrf_cli, "run", "--no-progress", config, "--output", out)
    return out


def test_the_saved_model_gives_transformers_our_logits(smyrf_cli, trained, tmp_path):
    final = trained.parent / "train.checkpoints" / "method=dense" / "final"
    model = transformers.LlamaForCausalLM.from_pretrained(final).eval()
    text = open("/usr/share/common-licenses/BSD", "rb").read()[:100]
    ids = list(text)  # the byte tokenizer: ids are the bytes
    (tmp_path / "ids.jsonl").write_text(json.dumps({"ids": ids}) + "\n")
    run_cli(smyrf_cli, "lm", "--model", final, "--ids", tmp_path / "ids.jsonl", "-o", tmp_path / "lm.h5")
    with torch.no_grad():
        theirs = model(input_ids=torch.tensor([ids])).logits.numpy()
    with h5py.File(tmp_path / "lm.h5", "r") as f:
        ours = f["logits"][()]
    assert np.abs(ours - theirs).max() < 1e-4


def test_plots_print_the_files_numbers(smyrf_cli, trained, tmp_path):
    proc = subprocess.run([sys.executable, str(PLOT), str(trained), "-o", str(tmp_path / "train.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "train.png").stat().st_size > 10_000
    with h5py.File(trained, "r") as f:
        last = f["runs/method=dense/curves/eval_ppl_byte"][()][-1]
    line = next(l for l in proc.stdout.splitlines() if l.strip().startswith("dense "))
    assert float(re.search(r"ppl/byte\s+([\d.]+)", line).group(1)) == pytest.approx(last, abs=1e-3)

    config = tmp_path / "dropin.json"
    final = trained.parent / "train.checkpoints" / "method=dense" / "final"
    config.write_text(json.dumps({"version": 1, "extends": str(ROOT / "configs/smoke/lm_dropin_tiny.json"),
                                  "model": {"path": str(final)}}))
    out = tmp_path / "dropin.h5"
    run_cli(smyrf_cli, "run", "--no-progress", config, "--output", out)
    proc = subprocess.run([sys.executable, str(PLOT), str(out), "-o", str(tmp_path / "dropin.png")],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "dropin.png").stat().st_size > 10_000
    with h5py.File(out, "r") as f:
        assert len(f["runs"]) == 5
        replaced = [g for g in f["runs"].values() if json.loads(g.attrs["config_json"])["attention"]["method"] != "dense"]
        ratios = sorted(round(float(g["metrics/ppl_ratio"][()]), 3) for g in replaced)
    printed = sorted(float(m) for m in re.findall(r"ratio\s+([\d.]+)", proc.stdout))
    assert len(ratios) == 4 and printed == pytest.approx(ratios, abs=1.5e-3), proc.stdout
    assert re.search(r"^dense\s+n\s+128\s+ppl", proc.stdout, re.M), proc.stdout
