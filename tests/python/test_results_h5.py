"""h5py (an independent reader) checks the quickstart output against results/README.md, and the
memory-quality plot script turns it into a PNG."""
import json
import math
import subprocess
import sys

import h5py
import numpy as np

from conftest import ROOT

ROOT_ATTRS = {"schema_version", "harness_version", "git_sha", "git_dirty", "created_utc", "host", "device",
              "torch_version", "config_json"}
RUN_ATTRS = {"config_json", "status", "method", "seed", "started", "finished"}
FIDELITY_METRICS = {"rel_fro_error", "max_abs_error", "mean_row_cosine", "memory_fraction", "score_entries",
                    "analytic_bytes", "wall_time_s", "peak_rss_delta_bytes", "peak_rss_bytes"}


def test_quickstart_file_follows_the_documented_schema(quickstart_h5):
    with h5py.File(quickstart_h5, "r") as f:
        assert ROOT_ATTRS <= set(f.attrs), sorted(ROOT_ATTRS - set(f.attrs))
        assert int(f.attrs["schema_version"]) == 1
        given = json.loads(f.attrs["config_json"])
        assert given["name"] == "quickstart" and "sweep" in given
        runs = f["runs"]
        assert len(runs) == 1 + 2 * 4 * 4
        methods = {}
        for run_id, g in runs.items():
            assert RUN_ATTRS <= set(g.attrs), (run_id, sorted(RUN_ATTRS - set(g.attrs)))
            assert g.attrs["status"] == "complete", (run_id, g.attrs.get("error"))
            resolved = json.loads(g.attrs["config_json"])
            assert "sweep" not in resolved and resolved["attention"]["method"] == g.attrs["method"]
            methods.setdefault(g.attrs["method"], []).append(g)
            metrics = g["metrics"]
            assert FIDELITY_METRICS <= set(metrics), (run_id, sorted(FIDELITY_METRICS - set(metrics)))
            for name in FIDELITY_METRICS:
                ds = metrics[name]
                assert ds.shape == () and ds.dtype == np.float64, (run_id, name, ds.shape, ds.dtype)
                assert isinstance(ds.attrs["unit"], str)
                assert ds.attrs["higher_is_better"] in (0, 1, True, False)
            assert bool(metrics["mean_row_cosine"].attrs["higher_is_better"])
            assert not bool(metrics["rel_fro_error"].attrs["higher_is_better"])
            if g.attrs["method"] != "dense":
                h, c = int(g.attrs["n_hashes"]), int(g.attrs["q_cluster_size"])
                assert resolved["attention"]["n_hashes"] == h and resolved["attention"]["q_cluster_size"] == c
                # memory % of the paper: # * C_k / M
                assert math.isclose(metrics["memory_fraction"][()], h * c / 4096, rel_tol=1e-12)
                assert math.isclose(float(g.attrs["memory_fraction"]), h * c / 4096, rel_tol=1e-12)
            per_head = g["tensors"]["rel_fro_error_BH"][()]
            assert per_head.shape == (1, 2)
        assert sorted(methods) == ["dense", "e2lsh", "smyrf"]
        assert len(methods["smyrf"]) == 16 and len(methods["e2lsh"]) == 16
        dense = methods["dense"][0]["metrics"]
        assert dense["rel_fro_error"][()] < 1e-5 and dense["memory_fraction"][()] == 1.0

        summary = f["summary"][()]
        names = summary.dtype.names
        for column in ("run_id", "status", "method", "memory_fraction", "rel_fro_error"):
            assert column in names, names
        assert len(summary) == len(runs)
        by_id = {row["run_id"].decode() if isinstance(row["run_id"], bytes) else row["run_id"]: row for row in summary}
        for run_id, g in runs.items():
            assert math.isclose(by_id[run_id]["rel_fro_error"], g["metrics"]["rel_fro_error"][()], rel_tol=0, abs_tol=0)


def test_error_falls_as_attention_memory_grows(quickstart_h5):
    """More hashes or larger clusters see more of each query's keys: for both clustered methods the
    best run at >= 12.5% memory must beat the best run at <= 0.78% by a wide margin."""
    with h5py.File(quickstart_h5, "r") as f:
        by_method = {}
        for g in f["runs"].values():
            m = g["metrics"]
            by_method.setdefault(g.attrs["method"], []).append((m["memory_fraction"][()], m["rel_fro_error"][()]))
    for method in ("smyrf", "e2lsh"):
        small = min(e for mem, e in by_method[method] if mem <= 0.0079)
        large = min(e for mem, e in by_method[method] if mem >= 0.125)
        assert large < 0.6 * small, (method, small, large)


def test_plot_script_writes_a_png(quickstart_h5, tmp_path):
    out = tmp_path / "mq.png"
    proc = subprocess.run([sys.executable, str(ROOT / "scripts/plot_memory_quality.py"), str(quickstart_h5), "-o",
                           str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
