"""The speed pipeline end to end: the smoke config run through the `smyrf` CLI writes every metric
that results/README.md documents (read back with h5py, an independent reader), and
scripts/plot_speed.py turns the file into a PNG, prints speed-ups over dense that match the file's
own times, and skips failed runs saying so on stderr."""
import json
import math
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT

SMOKE = ROOT / "configs/smoke/speed_tiny.json"
PLOT = ROOT / "scripts/plot_speed.py"
POSITIVE = {"forward_time_s": "s", "forward_backward_time_s": "s", "tokens_per_s": "1/s", "memory_fraction": "fraction",
            "score_entries": "count", "analytic_bytes": "bytes", "threads": "count"}
NON_NEGATIVE = {"forward_peak_rss_delta_bytes": "bytes", "forward_backward_peak_rss_delta_bytes": "bytes"}


@pytest.fixture(scope="module")
def speed_h5(smyrf_cli, tmp_path_factory):
    out = tmp_path_factory.mktemp("speed") / "speed.h5"
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(SMOKE), "--output", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def run_plot(h5, png):
    return subprocess.run([sys.executable, str(PLOT), str(h5), "-o", str(png)], capture_output=True, text=True)


def test_speed_file_has_every_metric_with_its_unit(speed_h5):
    with h5py.File(speed_h5, "r") as f:
        runs = f["runs"]
        assert len(runs) == 4
        seen = set()
        for run_id, g in runs.items():
            assert g.attrs["status"] == "complete", (run_id, g.attrs.get("error"))
            config = json.loads(g.attrs["config_json"])
            n = config["data"]["n_queries"]
            seen.add((g.attrs["method"], n))
            metrics = g["metrics"]
            for name, unit in {**POSITIVE, **NON_NEGATIVE}.items():
                assert name in metrics, (run_id, name, sorted(metrics))
                ds = metrics[name]
                assert ds.shape == () and ds.dtype == np.float64, (run_id, name)
                assert ds.attrs["unit"] == unit, (run_id, name, ds.attrs["unit"])
                value = ds[()]
                assert math.isfinite(value), (run_id, name, value)
                assert value > 0 if name in POSITIVE else value >= 0, (run_id, name, value)
            assert bool(metrics["tokens_per_s"].attrs["higher_is_better"])
            assert not bool(metrics["forward_time_s"].attrs["higher_is_better"])
            assert math.isclose(metrics["tokens_per_s"][()] * metrics["forward_time_s"][()], n, rel_tol=1e-9)
            expected_fraction = 1.0 if g.attrs["method"] == "dense" else 2 * 32 / n  # # * C_k / M
            assert math.isclose(metrics["memory_fraction"][()], expected_fraction, rel_tol=1e-12), run_id
        assert seen == {("dense", 128), ("dense", 256), ("smyrf", 128), ("smyrf", 256)}
        summary = f["summary"][()]
        for column in ("n_queries", "forward_time_s", "forward_backward_time_s", "forward_peak_rss_delta_bytes"):
            assert column in summary.dtype.names, summary.dtype.names
        assert sorted(summary["n_queries"]) == [128, 128, 256, 256]


def test_plot_writes_a_png_and_speedups_match_the_file(speed_h5, tmp_path):
    png = tmp_path / "speed.png"
    proc = run_plot(speed_h5, png)
    assert proc.returncode == 0, proc.stderr
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    assert "skipped" not in proc.stderr, proc.stderr
    assert "no complete 'sdpa' run" in proc.stdout, proc.stdout  # the smoke file has no sdpa run

    times = {}
    with h5py.File(speed_h5, "r") as f:
        for g in f["runs"].values():
            n = json.loads(g.attrs["config_json"])["data"]["n_queries"]
            times[(g.attrs["method"], n)] = g["metrics"]["forward_time_s"][()]
    # the first table is the forward speed-up over dense: "smyrf 2x32  <N=128>  <N=256>"
    lines = proc.stdout.splitlines()
    start = lines.index("forward_time_s: speed-up over dense (t_dense / t; > 1 is faster than dense)")
    assert lines[start + 1].split()[1:] == ["N=128", "N=256"], lines[start + 1]
    rows = {line.rsplit(None, 2)[0].strip(): line.split()[-2:] for line in lines[start + 2:start + 4]}
    assert rows["dense"] == ["1", "1"], rows
    for printed, n in zip(rows["smyrf 2x32"], (128, 256)):
        assert math.isclose(float(printed), times[("dense", n)] / times[("smyrf", n)], rel_tol=6e-3), (printed, n)  # 3 significant digits


def test_plot_skips_failed_runs_and_says_so(smyrf_cli, tmp_path):
    # dense at N = 2^22 needs petabytes: the pipeline's memory guard fails that run, the sweep goes on
    config = tmp_path / "oom.json"
    config.write_text(json.dumps({
        "version": 1, "name": "speed_oom", "pipeline": "speed", "threads": 1,
        "data": {"heads": 2, "n_queries": 64, "head_dim": 8}, "attention": {"method": "dense"},
        "eval": {"warmup": 0, "repeats": 1}, "sweep": {"data.n_queries": [4194304, 64, 128]},
        "output": {"path": str(tmp_path / "oom.h5")}}))
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(config)], capture_output=True, text=True,
                          cwd=ROOT)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    with h5py.File(tmp_path / "oom.h5", "r") as f:
        failed = f["runs"]["n_queries=4194304"]
        assert failed.attrs["status"] == "failed"
        assert "GiB are available" in failed.attrs["error"] and "lower data.n_queries" in failed.attrs["error"]
    png = tmp_path / "oom.png"
    plot = run_plot(tmp_path / "oom.h5", png)
    assert plot.returncode == 0, plot.stderr
    assert "skipped n_queries=4194304 (failed: dense at N=4194304" in plot.stderr, plot.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_refuses_a_file_without_speed_runs(smyrf_cli, tmp_path):
    fidelity = tmp_path / "fidelity.h5"
    run = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(ROOT / "configs/smoke/fidelity_tiny.json"),
                          "--output", str(fidelity)], capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    proc = run_plot(fidelity, tmp_path / "none.png")
    assert proc.returncode != 0
    assert "no complete speed run" in proc.stderr, proc.stderr
    assert not (tmp_path / "none.png").exists()
