"""The `glue` pipeline's exported model (`<output>.checkpoints/<run_id>/final/`) against Hugging Face transformers.

One short fine-tuning through the CLI (configs/smoke/glue_tiny.json with one epoch on 16 training
examples; RTE and STS-B as sentence pairs, SST-2 as single sentences), then each run's `final/` is
loaded with transformers' AutoModelForSequenceClassification and AutoTokenizer and scored on the dev
TSV read here with the csv module, per example, in float32 eval mode:
- `accuracy_with_dense` (the fine-tuned weights scored with dense attention) equals transformers'
  accuracy exactly; for STS-B `pearson_with_dense` within 1e-4 (and `spearman_with_dense` when no two
  predictions are within 1e-4 of each other);
- `eval_loss_with_dense` (mean cross-entropy per example, MSE for STS-B) within 1e-4 relative;
- config.json: architectures, id2label/label2id in the task's index order, problem_type, num_labels;
- model.safetensors holds exactly the tensors transformers expects (no missing, unexpected or
  mismatched keys on loading, names equal to the model's state_dict).
data.max_seq_len is 20, so most RTE and several STS-B dev pairs are truncated (longest_first), and
eval.batch 5 scores the 16 dev examples in four length-sorted batches (the last of one example).
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_finetune_export.py
"""
import csv
import json
import math
import subprocess

import h5py
import numpy as np
import pytest
import torch
from safetensors import safe_open
from scipy import stats
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from conftest import ROOT

MAX_SEQ_LEN = 20
TASKS = {  # task -> (GLUE folder, text columns, label names in index order; None = regression)
    "rte": ("RTE", ("sentence1", "sentence2"), ["entailment", "not_entailment"]),
    "stsb": ("STS-B", ("sentence1", "sentence2"), None),
    "sst2": ("SST-2", ("sentence", None), ["0", "1"]),
}
LOSS_RTOL = 1e-4
PEARSON_TOL = 1e-4


@pytest.fixture(scope="module")
def finetuned(smyrf_cli, tmp_path_factory):
    """(results file, checkpoints folder) of one glue_tiny run per task, shortened."""
    tmp = tmp_path_factory.mktemp("finetune_export")
    out = tmp / "glue.h5"
    config = {
        "version": 1,
        "name": "finetune_export",
        "extends": str(ROOT / "configs/smoke/glue_tiny.json"),
        "threads": 1,  # steadier than 2 on a shared 2-core machine
        "model": {"path": str(ROOT / "models/all-MiniLM-L6-v2")},
        "data": {"dir": str(ROOT / "tests/data/glue"), "max_seq_len": MAX_SEQ_LEN, "max_train_examples": 16},
        "train": {"epochs": 1},
        "eval": {"batch": 5, "every_epoch": False},
        "sweep": {"data.task": list(TASKS)},
        "output": {"path": str(out)},
    }
    config_path = tmp / "glue.json"
    config_path.write_text(json.dumps(config, indent=1))
    proc = subprocess.run([str(smyrf_cli), "run", "--no-progress", str(config_path), "--output", str(out)],
                          capture_output=True, text=True, cwd=tmp)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, tmp / "glue.checkpoints"


def read_dev(folder, columns, labels):
    """(texts, targets): text_a or (text_a, text_b) per row; class ids, or float scores for regression."""
    with open(ROOT / "tests/data/glue" / folder / "dev.tsv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    a, b = columns
    texts = [(row[a], row[b]) if b else (row[a],) for row in rows]
    if labels is None:
        return texts, [float(row["score"]) for row in rows]
    return texts, [labels.index(row["label"]) for row in rows]


def hf_scores(final_dir, texts, targets, regression):
    """transformers' per-example outputs (float32, eval mode): (predictions, losses, truncated count, logits)."""
    tokenizer = AutoTokenizer.from_pretrained(final_dir)
    model = AutoModelForSequenceClassification.from_pretrained(final_dir, dtype=torch.float32)
    model.eval()
    predictions, losses, all_logits, truncated = [], [], [], 0
    with torch.no_grad():
        for text, target in zip(texts, targets):
            # truncation=True is longest_first for pairs; one example per call, so nothing is padded
            encoded = tokenizer(*text, truncation=True, max_length=MAX_SEQ_LEN, padding="longest", return_tensors="pt")
            truncated += len(tokenizer(*text, truncation=False)["input_ids"]) > MAX_SEQ_LEN
            logits = model(**encoded).logits[0]
            assert logits.dtype == torch.float32
            all_logits.append(logits.numpy().astype(np.float64))
            if regression:
                predictions.append(float(logits[0]))
                losses.append(float(torch.nn.functional.mse_loss(logits, torch.tensor([target], dtype=torch.float32))))
            else:
                predictions.append(int(logits.argmax()))
                losses.append(float(torch.nn.functional.cross_entropy(logits[None], torch.tensor([target]))))
    return np.array(predictions), np.array(losses), truncated, np.array(all_logits)


@pytest.mark.parametrize("task", list(TASKS))
def test_final_model_matches_transformers(finetuned, task):
    out, checkpoints = finetuned
    folder, columns, labels = TASKS[task]
    regression = labels is None
    final_dir = checkpoints / f"task={task}" / "final"
    assert final_dir.is_dir(), f"{final_dir} is missing"

    # config.json as transformers reads it
    config = json.loads((final_dir / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    if regression:
        assert config["problem_type"] == "regression"
        assert config["id2label"] == {"0": "score"} and config["label2id"] == {"score": 0}
    else:
        assert config["problem_type"] == "single_label_classification"
        assert config["id2label"] == {str(i): name for i, name in enumerate(labels)}
        assert config["label2id"] == {name: i for i, name in enumerate(labels)}

    # every tensor is one transformers expects, and none is missing
    model, info = AutoModelForSequenceClassification.from_pretrained(final_dir, output_loading_info=True)
    for kind in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs"):
        assert not info.get(kind), f"{task}: {kind} {info.get(kind)}"
    assert model.config.num_labels == (1 if regression else len(labels))
    assert model.config.problem_type == config["problem_type"]
    with safe_open(str(final_dir / "model.safetensors"), "pt") as f:
        names = set(f.keys())
        assert {str(f.get_slice(n).get_dtype()) for n in names} == {"F32"}
    assert names == set(model.state_dict()), (names ^ set(model.state_dict()))
    del model

    # the dev set scored by transformers against our dense-attention evaluation of the same weights
    texts, targets = read_dev(folder, columns, labels)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        predictions, losses, truncated, logits = hf_scores(final_dir, texts, targets, regression)
    finally:
        torch.set_num_threads(threads)
    if task != "sst2":
        assert truncated > 0, f"{task}: no dev pair is longer than {MAX_SEQ_LEN} tokens: truncation is not exercised"

    with h5py.File(out, "r") as f:
        metrics = {name: float(v[()]) for name, v in f["runs"][f"task={task}"]["metrics"].items()}
    assert metrics["eval_examples"] == len(texts)
    context = f"{task} ({truncated} of {len(texts)} dev examples truncated at {MAX_SEQ_LEN})"

    hf_loss = float(np.mean(losses))
    ours_loss = metrics["eval_loss_with_dense"]
    assert abs(ours_loss - hf_loss) <= LOSS_RTOL * abs(hf_loss), \
        f"{context}: eval_loss_with_dense {ours_loss!r}, transformers {hf_loss!r}"

    if regression:
        pearson = float(stats.pearsonr(predictions, targets)[0])
        assert abs(metrics["pearson_with_dense"] - pearson) <= PEARSON_TOL, \
            f"{context}: pearson_with_dense {metrics['pearson_with_dense']!r}, transformers {pearson!r}"
        gaps = np.diff(np.sort(predictions))
        if gaps.min() > 1e-4:  # ranks are then stable under float differences
            spearman = float(stats.spearmanr(predictions, targets)[0])
            assert abs(metrics["spearman_with_dense"] - spearman) <= 1e-9, \
                f"{context}: spearman_with_dense {metrics['spearman_with_dense']!r}, transformers {spearman!r}"
    else:
        accuracy = float(np.mean(predictions == np.array(targets)))
        top2 = np.sort(logits, axis=1)[:, -2:]
        assert metrics["accuracy_with_dense"] == accuracy, \
            (f"{context}: accuracy_with_dense {metrics['accuracy_with_dense']!r}, transformers {accuracy!r} "
             f"(smallest logit margin {float((top2[:, 1] - top2[:, 0]).min()):.3g})")
    assert all(math.isfinite(v) for v in losses)
