#!/usr/bin/env python3
"""Plots of the causal-LM pipelines' results files (schema in results/README.md).

    scripts/plot_lm.py results/lm_train_docs.h5     # -> results/lm_train_docs_lm.png
    scripts/plot_lm.py results/lm_dropin_docs.h5 -o dropin.png

lm_train: held-out perplexity per byte against optimizer steps and against training time (one
panel pair per context, one line per method setting): perplexity at equal steps and at equal time.
Prints, per context, each run's perplexity at the last step and, interpolated on its eval curve, at
the training time of the fastest run to finish (equal time), and its steps/s.
lm_dropin: perplexity over dense (ppl_ratio) against the context, one panel per number of replaced
layers, one line per method setting; prints the table.
Failed and running runs are skipped and listed on stderr. Tested by tests/python/test_lm_plot.py.
"""
import argparse
import collections
import json
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Keys that name a setting of the method (the rest of a run id is the context or the layers).
NOT_SETTING = {"context", "last_layers"}


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def completed_runs(path):
    """[(run_id, resolved config, metrics, curves)] of the completed runs."""
    runs, pipelines = [], set()
    with h5py.File(path, "r") as f:
        for run_id, group in f["runs"].items():
            # each run's resolved config names the pipeline (the root's config may only `extends` one)
            pipelines.add(json.loads(text(group.attrs["config_json"])).get("pipeline", ""))
            status = text(group.attrs.get("status", ""))
            if status != "complete":
                print(f"skipped {run_id}: {status}", file=sys.stderr)
                continue
            metrics = {k: float(v[()]) for k, v in group["metrics"].items()}
            curves = {k: np.asarray(v[()]) for k, v in group["curves"].items()}
            runs.append((run_id, json.loads(text(group.attrs["config_json"])), metrics, curves))
    return (pipelines.pop() if len(pipelines) == 1 else ""), runs


def setting(run_id):
    """The method's part of a run id: "method=smyrf,n_hashes=2,..." without context and layers."""
    parts = [p for p in run_id.split(",") if p.split("=")[0] not in NOT_SETTING]
    return ",".join(parts).replace("method=", "")


def plot_train(runs, out):
    by_context = collections.defaultdict(list)
    for run in runs:
        by_context[int(run[2]["context"])].append(run)
    contexts = sorted(by_context)
    fig, axes = plt.subplots(len(contexts), 2, figsize=(13, 4.5 * len(contexts)), squeeze=False)
    for row, context in enumerate(contexts):
        group = by_context[context]
        equal_time = min(r[3]["eval_train_time_s"][-1] for r in group)
        print(f"context {context}: perplexity per byte at the last step and at {equal_time:.0f} s of training")
        for run_id, _, metrics, curves in sorted(group):
            label = setting(run_id)
            ppl, steps, seconds = curves["eval_ppl_byte"], curves["eval_step"], curves["eval_train_time_s"]
            axes[row][0].plot(steps, ppl, marker="o", label=label)
            axes[row][1].plot(seconds, ppl, marker="o", label=label)
            at_time = float(np.interp(equal_time, seconds, ppl))
            print(f"  {label:60s} steps {int(steps[-1]):5d}  ppl/byte {ppl[-1]:7.3f}  at equal time {at_time:7.3f}"
                  f"  steps/s {metrics.get('train_steps_per_s', float('nan')):.3f}")
        for col, xlabel in enumerate(["optimizer steps", "training time (s)"]):
            ax = axes[row][col]
            ax.set_xlabel(xlabel)
            ax.set_ylabel("held-out perplexity per byte")
            ax.set_yscale("log")
            ax.set_title(f"context {context}: " + ("equal steps" if col == 0 else "equal time"))
            ax.grid(True, which="both", alpha=0.3)
        axes[row][1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def plot_dropin(runs, out):
    by_layers = collections.defaultdict(lambda: collections.defaultdict(list))
    for run_id, config, metrics, _ in runs:
        label = "dense" if config["attention"]["method"] == "dense" else setting(run_id)
        by_layers[int(metrics["replaced_layers"])][label].append((metrics["context"], metrics))
    dense = {n: m for points in (d.pop("dense", []) for d in by_layers.values()) for n, m in points}
    labels = sorted({label for d in by_layers.values() for label in d})
    colours = {label: f"C{i}" for i, label in enumerate(labels)}  # one colour per setting in every panel
    contexts = sorted({int(n) for d in by_layers.values() for points in d.values() for n, _ in points})
    fig, axes = plt.subplots(1, len(by_layers), figsize=(6 * len(by_layers), 4.8), squeeze=False)
    for n, m in sorted(dense.items()):
        print(f"dense                                                          n {int(n):6d}  ppl {m['ppl']:9.3f}")
    for col, layers in enumerate(sorted(by_layers)):
        ax = axes[0][col]
        ax.axhline(1.0, color="black", linestyle="--", linewidth=1, label="dense (the reference)")
        for label, points in sorted(by_layers[layers].items()):
            points.sort(key=lambda p: p[0])
            ax.plot([p[0] for p in points], [p[1]["ppl_ratio"] for p in points], marker="o", label=label,
                    color=colours[label])
            for n, m in points:
                print(f"last {layers} layers  {label:50s} n {int(n):6d}  ppl {m['ppl']:9.3f}  dense {m['dense_ppl']:9.3f}"
                      f"  ratio {m['ppl_ratio']:7.3f}  attention error {m['attention_rel_error_mean']:.3f}"
                      f"  speedup {m['speedup']:.2f}")
        ax.set_xscale("log", base=2)
        ax.set_xticks(contexts, [str(n) for n in contexts])
        ax.set_xlabel("context (tokens)")
        ax.set_ylabel("perplexity / dense perplexity")
        ax.set_title(f"last {layers} layer(s) replaced")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", help="results file (.h5) of lm_train or lm_dropin")
    parser.add_argument("-o", "--output", help="PNG path (default: beside the results, *_lm.png)")
    args = parser.parse_args()
    pipeline, runs = completed_runs(args.results)
    if not runs:
        sys.exit(f"plot_lm: {args.results} has no completed run")
    out = args.output or args.results.rsplit(".", 1)[0] + "_lm.png"
    if pipeline == "lm_train":
        plot_train(runs, out)
    elif pipeline == "lm_dropin":
        plot_dropin(runs, out)
    else:
        sys.exit(f"plot_lm: {args.results} holds runs of pipeline '{pipeline}', not of lm_train or lm_dropin alone")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
