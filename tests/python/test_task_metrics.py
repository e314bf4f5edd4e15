"""`smyrf score` (experiments/metrics/task_metrics.cpp) against scikit-learn and scipy on random inputs.

Every task on a table of random cases (CASES): sizes 1, 2, small (3..39), large (40..500) and 500,
constant predictions and constant labels (MCC 0, zero-division F1, Pearson/Spearman NaN -> JSON
null), seeds 0..2 spread over them so that each metric family (accuracy with 2 and 3 classes, MCC,
F1/accuracy, STS-B correlations) sees sizes 1, 2, small and 500 (or large) and both constant kinds
(a task's own generator per case, seeded by seed, task and case); random class ids, mostly
right; STS-B with integer-valued scores (many ties, so Spearman's average ranks matter) and with
real-valued ones. Tolerance 1e-12. Also the exit codes: 2 for bad input, 3 for a missing file.
38 launches of the CLI, two at a time (each costs most of a second in library loading).
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_task_metrics.py
"""
import json
import math
import subprocess
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

TOL = 1e-12
CLASSES = {"cola": 2, "sst2": 2, "mrpc": 2, "qqp": 2, "mnli": 3, "qnli": 2, "rte": 2, "wnli": 2, "imdb": 2}
TASKS = ["cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "qnli", "rte", "wnli", "imdb"]
# task -> [(seed, size or kind)]; for stsb (seed, "integer" | "real", size or kind). Sizes: 1, 2, 500,
# "small" (3..39), "large" (40..500); kinds: "constant predictions", "constant labels" (n in 5..199).
CASES = {
    "cola": [(0, 1), (1, 2), (2, "small"), (0, 500), (1, "constant labels"), (2, "constant predictions")],
    "mrpc": [(0, 2), (1, 500), (2, "constant predictions")],
    "qqp": [(1, 1), (2, "small"), (0, "constant labels")],
    "mnli": [(2, "small"), (0, "large"), (1, "constant predictions")],
    "sst2": [(0, 2)],
    "qnli": [(1, "large")],
    "rte": [(2, 500)],
    "wnli": [(0, "constant labels")],
    "imdb": [(1, 1)],
    "stsb": [(0, "integer", 1), (1, "real", 2), (2, "integer", "small"), (0, "integer", 500),
             (1, "real", "large"), (2, "real", "small"), (0, "integer", "constant predictions"),
             (2, "real", "constant labels")],
}
assert sorted(CASES) == sorted(TASKS)


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


def score(smyrf_cli, tmp_path, task, pred, label, name=""):
    p = write_numbers(tmp_path / f"{name}pred.txt", pred)
    l = write_numbers(tmp_path / f"{name}label.txt", label)
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


def make_case(task, index, case):
    """(description, predictions, labels) of CASES[task][index]; its own generator per case."""
    seed, *rest = case
    scores = rest.pop(0) if task == "stsb" else None
    (size,) = rest
    rng = np.random.default_rng([seed, TASKS.index(task), index])
    top = 6 if task == "stsb" else CLASSES[task]  # class ids or integer scores are 0 .. top-1

    def draw(n):
        if scores == "real":
            return rng.uniform(0, 5, n)
        return rng.integers(0, top, n).astype(float)

    description = f"seed {seed} case {index}" + (f" {scores} scores" if scores else "")
    if size in ("constant predictions", "constant labels"):
        n = int(rng.integers(5, 200))
        value = float(rng.integers(0, top)) if scores != "real" else float(rng.uniform(0, 5))
        varied = draw(n)
        constant = np.full(n, value)
        pair = (constant, varied) if size == "constant predictions" else (varied, constant)
        return f"{description} n={n} {size}", *pair
    n = {"small": lambda: int(rng.integers(3, 40)), "large": lambda: int(rng.integers(40, 501))}.get(size, lambda: size)()
    if task == "stsb":
        return f"{description} n={n}", draw(n), draw(n)
    label = rng.integers(0, top, n)
    # mostly right, so that the metrics are not all near chance
    pred = np.where(rng.random(n) < 0.7, label, rng.integers(0, top, n))
    return f"{description} n={n}", pred.astype(float), label.astype(float)


@pytest.mark.parametrize("task", TASKS)
def test_score_matches_sklearn_and_scipy(smyrf_cli, tmp_path, task):
    cases = [make_case(task, i, case) for i, case in enumerate(CASES[task])]
    with ThreadPoolExecutor(max_workers=2) as pool:  # the launches are independent: halve the wall time
        got = list(pool.map(lambda ic: score(smyrf_cli, tmp_path, task, ic[1][1], ic[1][2], name=f"{ic[0]}_"),
                            enumerate(cases)))
    for (description, pred, label), result in zip(cases, got):
        check(result, expected(task, pred, label), f"{task} {description}")


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
