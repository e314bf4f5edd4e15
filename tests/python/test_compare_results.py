"""scripts/compare_results.py on small results files written here with h5py in the schema of
results/README.md: identical results pass whatever their times, memory and provenance; a metric
changed in its last bit, a missing run or a curve of another length fail and are named; an
unreadable file is a usage error that names the file."""
import copy
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT

SCRIPT = ROOT / "scripts/compare_results.py"
SMYRF_RUN = "method=smyrf,n_hashes=2"
DENSE_RUN = "method=dense"


def config(method, output="results/a.h5", n_hashes=None):
    attention = {"method": method} if n_hashes is None else {"method": method, "n_hashes": n_hashes}
    return {"name": "tiny", "pipeline": "attention_fidelity", "seed": 0, "attention": attention,
            "output": {"path": output}}


def base_runs():
    """Two complete runs and a failed one, as the writer lays them out."""
    return {
        DENSE_RUN: {
            "attrs": {"status": "complete", "method": "dense", "seed": 0,
                      "config_json": config("dense"), "sweep_point_json": {"attention.method": "dense"}},
            "metrics": {"rel_fro_error": (1e-9, "1"), "memory_fraction": (1.0, "fraction"),
                        "wall_time_s": (0.012, "s"), "peak_rss_bytes": (1.5e8, "bytes")},
            "curves": {"train_loss": [0.9, 0.7, 0.5]},
            "tensors": {"rel_fro_error_BH": np.array([[1e-9, 2e-9]])},
        },
        SMYRF_RUN: {
            "attrs": {"status": "complete", "method": "smyrf", "seed": 0, "n_hashes": 2,
                      "memory_fraction": 0.25, "config_json": config("smyrf", n_hashes=2),
                      "sweep_point_json": {"attention.method": "smyrf", "attention.n_hashes": 2}},
            "metrics": {"rel_fro_error": (0.123456789, "1"), "memory_fraction": (0.25, "fraction"),
                        "mean_row_cosine": (float("nan"), "1"), "analytic_bytes": (4096.0, "bytes"),
                        "wall_time_s": (0.004, "s"), "tokens_per_s": (2.5e5, "1/s"),
                        "peak_rss_delta_bytes": (2.0e6, "bytes")},
            "curves": {"train_loss": [1.0, 0.8, 0.6], "step_time_s": [0.1, 0.1, 0.2]},
            "tensors": {"rel_fro_error_BH": np.array([[0.12, 0.13]]),
                        "capture": np.arange(6, dtype=np.float32).reshape(1, 2, 3)},
            "notes": {"samples": "RESULTS.samples/method=smyrf,n_hashes=2/final.png", "fid": "unavailable"},
        },
        "method=broken": {
            "attrs": {"status": "failed", "method": "broken", "seed": 0, "error": "no such method 'broken'",
                      "config_json": config("broken"), "sweep_point_json": {"attention.method": "broken"}},
        },
    }


def write_run(group, run, results_stem):
    for name, value in run["attrs"].items():
        group.attrs[name] = json.dumps(value) if name.endswith("_json") else value
    group.attrs["started"] = "2026-01-01T00:00:00Z"
    group.attrs["finished"] = "2026-01-01T00:01:00Z"
    if run["attrs"]["status"] != "complete":
        return
    metrics = group.create_group("metrics")
    for name, (value, unit) in run["metrics"].items():
        ds = metrics.create_dataset(name, data=np.float64(value))
        ds.attrs["unit"] = unit
        ds.attrs["higher_is_better"] = np.bool_(name == "mean_row_cosine")
    curves = group.create_group("curves")
    for name, values in run["curves"].items():
        curves.create_dataset(name, data=np.asarray(values, dtype=np.float64))
    tensors = group.create_group("tensors")
    for name, values in run["tensors"].items():
        tensors.create_dataset(name, data=values)
    if "notes" in run:
        notes = group.create_group("notes")
        for name, text in run["notes"].items():
            notes.attrs[name] = text.replace("RESULTS", results_stem)


def write_summary(f, runs):
    metrics = sorted({name for run in runs.values() for name in run.get("metrics", {})})
    dtype = [("run_id", h5py.string_dtype()), ("status", h5py.string_dtype())] + [(m, "<f8") for m in metrics]
    rows = [(run_id, run["attrs"]["status"], *[run.get("metrics", {}).get(m, (np.nan,))[0] for m in metrics])
            for run_id, run in sorted(runs.items())]
    ds = f.create_dataset("summary", data=np.array(rows, dtype=dtype))
    columns = [{"name": "run_id", "source": "run", "key": "run_id", "unit": ""},
               {"name": "status", "source": "run", "key": "status", "unit": ""}]
    columns += [{"name": m, "source": "metric", "key": m, "unit": ""} for m in metrics]
    ds.attrs["columns_json"] = json.dumps(columns)


def write_results(path, runs, host="vm", created="2026-01-01T00:00:00Z", git_sha="0123abc"):
    with h5py.File(path, "w") as f:
        f.attrs["schema_version"] = np.int64(1)
        f.attrs["harness_version"] = "0.1.0"
        f.attrs["git_sha"] = git_sha
        f.attrs["git_dirty"] = np.bool_(False)
        f.attrs["created_utc"] = created
        f.attrs["host"] = host
        f.attrs["device"] = "cpu"
        f.attrs["torch_version"] = "2.5.0"
        f.attrs["config_json"] = json.dumps({"name": "tiny", "output": {"path": str(path)}})
        group = f.create_group("runs")
        for run_id, run in runs.items():
            write_run(group.create_group(run_id), run, str(path.with_suffix("")))
        write_summary(f, runs)
    return path


def compare(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.fixture
def before(tmp_path):
    return write_results(tmp_path / "before.h5", base_runs())


def after_file(tmp_path, change=None):
    runs = copy.deepcopy(base_runs())
    if change:
        change(runs)
    return write_results(tmp_path / "after.h5", runs, host="other-host", created="2027-02-02T00:00:00Z",
                         git_sha="4567def")


def test_identical_results_pass_whatever_their_provenance_and_path(before, tmp_path):
    proc = compare(before, after_file(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    last = proc.stdout.splitlines()[-1]
    assert last.startswith("3 runs compared, 6 metrics, 2 curves, 3 tensors: identical (ignored: "), last
    for name in ("created_utc", "host", "git_sha", "started", "metrics/wall_time_s", "curves/step_time_s"):
        assert name in last, (name, last)
    assert "metrics/memory_fraction" not in last and "metrics/analytic_bytes" not in last


def test_a_metric_changed_in_its_last_bit_is_named(before, tmp_path):
    def change(runs):
        value, unit = runs[SMYRF_RUN]["metrics"]["rel_fro_error"]
        runs[SMYRF_RUN]["metrics"]["rel_fro_error"] = (np.nextafter(value, np.inf), unit)

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{SMYRF_RUN}: metrics/rel_fro_error: 0.123456789 != 0.12345678900000001" in proc.stdout, proc.stdout
    assert "difference" in proc.stdout.splitlines()[-1]


def test_times_and_measured_memory_are_ignored(before, tmp_path):
    def change(runs):
        metrics = runs[SMYRF_RUN]["metrics"]
        metrics["wall_time_s"] = (9.0, "s")
        metrics["tokens_per_s"] = (1.0, "1/s")
        metrics["peak_rss_delta_bytes"] = (0.0, "bytes")
        runs[SMYRF_RUN]["curves"]["step_time_s"] = [5.0, 5.0]

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_analytic_memory_is_compared(before, tmp_path):
    def change(runs):
        runs[SMYRF_RUN]["metrics"]["memory_fraction"] = (0.5, "fraction")
        runs[SMYRF_RUN]["metrics"]["analytic_bytes"] = (8192.0, "bytes")

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 1
    assert f"{SMYRF_RUN}: metrics/memory_fraction: 0.25 != 0.5" in proc.stdout, proc.stdout
    assert f"{SMYRF_RUN}: metrics/analytic_bytes: 4096.0 != 8192.0" in proc.stdout, proc.stdout


def test_a_missing_run_is_named(before, tmp_path):
    proc = compare(before, after_file(tmp_path, lambda runs: runs.pop(DENSE_RUN)))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{DENSE_RUN}: run only in before" in proc.stdout, proc.stdout


def test_a_curve_of_another_length_is_named(before, tmp_path):
    def change(runs):
        runs[SMYRF_RUN]["curves"]["train_loss"].append(0.4)

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"{SMYRF_RUN}: curves/train_loss: shape (3,) != (4,)" in proc.stdout, proc.stdout


def test_nan_equals_only_the_same_nan(before, tmp_path):
    other_nan = np.array([0x7FF8000000000001], dtype=np.uint64).view(np.float64)[0]

    def change(runs):
        runs[SMYRF_RUN]["metrics"]["mean_row_cosine"] = (other_nan, "1")

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 1, proc.stdout
    assert "metrics/mean_row_cosine: nan (0x7ff8000000000000) != nan (0x7ff8000000000001)" in proc.stdout


def test_tensor_dtype_config_and_error_text_are_compared(before, tmp_path):
    def change(runs):
        smyrf = runs[SMYRF_RUN]
        smyrf["tensors"]["capture"] = smyrf["tensors"]["capture"].astype(np.float64)
        smyrf["attrs"]["config_json"]["output"]["path"] = "elsewhere.h5"
        smyrf["attrs"]["config_json"]["seed"] = 1
        runs["method=broken"]["attrs"]["error"] = "another message"
        smyrf["notes"]["fid"] = "computed"

    proc = compare(before, after_file(tmp_path, change))
    assert proc.returncode == 1
    lines = set(proc.stdout.splitlines())
    assert f"{SMYRF_RUN}: tensors/capture: dtype float32 != float64" in lines, proc.stdout
    assert f"{SMYRF_RUN}: config_json: seed: 0 != 1" in lines, proc.stdout
    assert "method=broken: error: no such method 'broken' != another message" in lines, proc.stdout
    assert f"{SMYRF_RUN}: notes/fid: unavailable != computed" in lines, proc.stdout
    assert not any("output.path" in line or "samples" in line for line in lines), proc.stdout
    assert ": 4 differences (ignored: " in proc.stdout.splitlines()[-1], proc.stdout


def test_ignore_and_quiet(before, tmp_path):
    def change(runs):
        runs[SMYRF_RUN]["metrics"]["rel_fro_error"] = (0.2, "1")

    after = after_file(tmp_path, change)
    proc = compare(before, after, "--ignore", "^metrics/rel_fro_error$")
    assert proc.returncode == 0, proc.stdout
    assert "metrics/rel_fro_error" in proc.stdout.splitlines()[-1]
    proc = compare(before, after, "--quiet")
    assert proc.returncode == 1 and len(proc.stdout.splitlines()) == 1, proc.stdout


def test_a_missing_file_is_a_usage_error_naming_it(before, tmp_path):
    missing = tmp_path / "nowhere" / "after.h5"
    proc = compare(before, missing)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(missing) in proc.stderr, proc.stderr


def test_a_file_that_is_not_hdf5_is_a_usage_error_naming_it(before, tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5\n")
    proc = compare(text, before)
    assert proc.returncode == 2 and str(text) in proc.stderr, proc.stderr
    assert compare(before).returncode == 2
