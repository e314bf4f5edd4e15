#!/usr/bin/env python3
"""The SMYRF paper's pretrained-BigGAN figure from a `biggan_pretrained` results file: one row per
class, one column per attention memory level (fraction of dense attention score memory), the same
latent in every column, so a column differs from the next only by the attention.

    scripts/plot_biggan_memory_grid.py results/paper_biggan_imagenet_memory.h5      # writes ..._grid.png
    scripts/plot_biggan_memory_grid.py results.h5 -o figure.png

Reads each complete run's tensors/samples [K, 3, R, R] (values in [-1, 1]) and tensors/classes,
and metrics/memory_fraction (schema in results/README.md). Columns are sorted by memory; a dense
run is labelled "dense (100%)". IS and FID of a run, when present, are printed under its column.
Failed, running and sample-less runs are skipped and listed on stderr.
Tested by tests/python/test_biggan_grid_plot.py.
"""
import argparse
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _attr_str(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def read_columns(path):
    """[(memory_fraction, label, samples_KHW3 uint8, classes, quality text)] sorted by memory."""
    columns, skipped = [], []
    with h5py.File(path, "r") as f:
        for run_id, run in f["runs"].items():
            status = _attr_str(run.attrs.get("status", ""))
            if status != "complete" or "tensors" not in run or "samples" not in run["tensors"]:
                skipped.append(f"{run_id} ({status or 'no status'})")
                continue
            samples = np.asarray(run["tensors"]["samples"], dtype=np.float64)
            classes = np.asarray(run["tensors"]["classes"]).astype(int).tolist()
            memory = float(run["metrics"]["memory_fraction"][()])
            method = _attr_str(run.attrs.get("method", ""))
            label = f"{method} ({100 * memory:.4g}%)"
            quality = []
            for metric, name in (("inception_score", "IS"), ("fid", "FID")):
                if metric in run["metrics"]:
                    quality.append(f"{name} {float(run['metrics'][metric][()]):.2f}")
            pixels = np.clip(np.round((samples + 1) * 127.5), 0, 255).astype(np.uint8).transpose(0, 2, 3, 1)
            columns.append((memory, label, pixels, classes, ", ".join(quality)))
    columns.sort(key=lambda c: (c[0], c[1]))
    return columns, skipped


def draw(columns, output):
    rows = len(columns[0][3])
    size = 1.6
    fig, axes = plt.subplots(rows, len(columns), figsize=(size * len(columns), size * rows + 0.8), squeeze=False)
    for j, (memory, label, pixels, classes, quality) in enumerate(columns):
        if classes != columns[0][3]:
            raise SystemExit(f"runs sampled different classes ({classes} vs {columns[0][3]}): not one figure")
        for i in range(rows):
            ax = axes[i][j]
            ax.imshow(pixels[i], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(label, fontsize=8)
            if j == 0:
                ax.set_ylabel(f"class {classes[i]}", fontsize=8)
            if i == rows - 1 and quality:
                ax.set_xlabel(quality, fontsize=7)
    fig.suptitle("BigGAN samples vs attention memory (same latents in every column)", fontsize=10)
    fig.tight_layout()
    fig.savefig(output, dpi=120)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="biggan_pretrained results file (.h5)")
    parser.add_argument("-o", "--output", help="PNG to write (default: <results>_grid.png)")
    args = parser.parse_args(argv)
    columns, skipped = read_columns(args.results)
    for s in skipped:
        print(f"skipped run {s}", file=sys.stderr)
    if not columns:
        raise SystemExit(f"{args.results}: no complete biggan_pretrained run with samples; run the config first")
    output = args.output or args.results.rsplit(".h5", 1)[0] + "_grid.png"
    draw(columns, output)
    print(f"wrote {output}: {len(columns[0][3])} classes x {len(columns)} memory levels")


if __name__ == "__main__":
    main()
