"""`smyrf score` (experiments/task_metrics.cpp) against scikit-learn and scipy on random inputs.

Every task, several seeds, sizes 1..500: random class ids; STS-B with integer-valued scores (many
ties, so Spearman's average ranks matter) and with real-valued ones; constant predictions and
constant labels (MCC 0, Pearson/Spearman NaN -> JSON null). Tolerance 1e-12. Also the exit codes:
2 for bad input, 3 for a missing file.
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_task_metrics.py
"""
import json
import math
import subprocess
import warnings

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

TOL = 1e-12
CLASSES = {"cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2, "imdb": 2}
TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "imdb"]
SEEDS = [0, 1, 2]


def correlation(fn, x, y):
    """scipy's value, NaN where scipy refuses (n < 2) or warns (constant input)."""
    if len(x) < 2:
        return math.nan
    return float(fn(x, y)[0])


def expected(task, pred, label):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns about single-class inputs, scipy about constant ones
        return expected_quietly(task, pred, label)


def expected_quietly(task, pred, label):
    if task == "stsb":
        p = correlation(stats.pearsonr, pred, label)
        s = correlation(stats.spearmanr, pred, label)
        return {"pearson": p, "spearman": s, "corr": (p + s) / 2}
    pred, label = pred.astype(np.int64), label.astype(np.int64)
    if task == "cola":
        return {"mcc": matthews_corrcoef(label, pred)}
    acc = accuracy_score(label, pred)
    if task in ("mrpc", "qqp"):
        f1 = f1_score(label, pred, pos_label=1, average="binary", zero_division=0)
        return {"f1": f1, "accuracy": acc, "acc_and_f1": (acc + f1) / 2}
    return {"accuracy": acc}


def write_numbers(path, values):
    path.write_text("".join(repr(float(v)) + "\n" for v in values))
    return path


def score(smyrf_cli, tmp_path, task, pred, label):
    p = write_numbers(tmp_path / "pred.txt", pred)
    l = write_numbers(tmp_path / "label.txt", label)
    proc = subprocess.run([str(smyrf_cli), "score", "--task", task, "--predictions", str(p), "--labels", str(l)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def check(got, want, context):
    assert list(got) == list(want), context  # same metrics, in the documented order
    for name, value in want.items():
        if math.isnan(value):
            assert got[name] is None, f"{context}: {name} = {got[name]}, scipy gives NaN"
        else:
            assert got[name] is not None, f"{context}: {name} is null, expected {value!r}"
            assert abs(got[name] - value) <= TOL, f"{context}: {name} = {got[name]!r}, expected {value!r}"


def cases(task, seed):
    """(description, predictions, labels) for one task and seed."""
    rng = np.random.default_rng(1000 * seed + TASKS.index(task))
    sizes = [1, 2, int(rng.integers(3, 40)), int(rng.integers(40, 501))] + ([500] if seed == 0 else [])
    out = []
    for n in sizes:
        if task == "stsb":
            out.append((f"n={n} integer scores", rng.integers(0, 6, n).astype(float), rng.integers(0, 6, n).astype(float)))
            out.append((f"n={n} real scores", rng.uniform(0, 5, n), rng.uniform(0, 5, n)))
        else:
            k = CLASSES[task]
            label = rng.integers(0, k, n)
            # mostly right, so that the metrics are not all near chance
            pred = np.where(rng.random(n) < 0.7, label, rng.integers(0, k, n))
            out.append((f"n={n}", pred.astype(float), label.astype(float)))
    n = int(rng.integers(5, 200))
    value = float(rng.integers(0, 6 if task == "stsb" else CLASSES[task]))
    varied = rng.integers(0, 6 if task == "stsb" else CLASSES[task], n).astype(float)
    out.append((f"n={n} constant predictions", np.full(n, value), varied))
    out.append((f"n={n} constant labels", varied, np.full(n, value)))
    return out


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("task", TASKS)
def test_score_matches_sklearn_and_scipy(smyrf_cli, tmp_path, task, seed):
    for description, pred, label in cases(task, seed):
        check(score(smyrf_cli, tmp_path, task, pred, label), expected(task, pred, label), f"{task} seed {seed} {description}")


def test_constant_inputs_give_mcc_zero_and_null_correlations(smyrf_cli, tmp_path):
    assert score(smyrf_cli, tmp_path, "cola", np.ones(6), np.array([0, 1, 0, 1, 1, 0.0])) == {"mcc": 0.0}
    got = score(smyrf_cli, tmp_path, "stsb", np.full(4, 2.5), np.array([1, 2, 3, 4.0]))
    assert got == {"pearson": None, "spearman": None, "corr": None}
    got = score(smyrf_cli, tmp_path, "mrpc", np.zeros(3), np.zeros(3))
    assert got == {"f1": 0.0, "accuracy": 1.0, "acc_and_f1": 0.5}


def run_score(smyrf_cli, *args):
    return subprocess.run([str(smyrf_cli), "score", *map(str, args)], capture_output=True, text=True)


def test_score_errors_and_exit_codes(smyrf_cli, tmp_path):
    good = write_numbers(tmp_path / "good.txt", [0, 1, 1])
    short = write_numbers(tmp_path / "short.txt", [0, 1])
    fractional = write_numbers(tmp_path / "fractional.txt", [0, 0.5, 1])
    words = tmp_path / "words.txt"
    words.write_text("0\nyes\n1\n")
    gap = tmp_path / "gap.txt"
    gap.write_text("0\n\n1\n")
    trailing = tmp_path / "trailing.txt"
    trailing.write_text("0\n1\n1\n\n  \n")

    proc = run_score(smyrf_cli, "--task", "sst-2", "--predictions", good, "--labels", good)
    assert proc.returncode == 2 and "unknown task 'sst-2'" in proc.stderr and "sst2" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", good, "--labels", short)
    assert proc.returncode == 2 and "3 predictions but 2 labels" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", fractional, "--labels", good)
    assert proc.returncode == 2 and "predictions[1] is 0.5" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", words, "--labels", good)
    assert proc.returncode == 2 and "line 2" in proc.stderr and "'yes' is not a number" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", gap, "--labels", good)
    assert proc.returncode == 2 and "line 2 is empty" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", tmp_path / "absent.txt", "--labels", good)
    assert proc.returncode == 3 and "absent.txt" in proc.stderr
    proc = run_score(smyrf_cli, "--task", "sst2", "--predictions", trailing, "--labels", good)  # trailing blanks ok
    assert proc.returncode == 0 and json.loads(proc.stdout) == {"accuracy": 1.0}
