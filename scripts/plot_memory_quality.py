#!/usr/bin/env python3
"""Memory-quality plot from any smyrf results file: error vs attention memory, one line per method.

    scripts/plot_memory_quality.py results/quickstart.h5 -o results/quickstart_memory_quality.png
    scripts/plot_memory_quality.py FILE.h5 --metric mean_row_cosine

Reads the complete runs of /runs (schema in results/README.md). Each method's line joins its best
run (lowest error, or highest for higher-is-better metrics) at each memory fraction; every run is
also drawn as a faint point, so different (hashes, cluster size) splits of the same memory show.
"""
import argparse
import collections
import json
import sys

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read_runs(path, metric):
    runs = []
    with h5py.File(path, "r") as f:
        for run_id, group in f["runs"].items():
            if group.attrs.get("status") != "complete":
                continue
            metrics = group["metrics"]
            if metric not in metrics or "memory_fraction" not in metrics:
                continue
            runs.append({
                "run_id": run_id,
                "method": group.attrs.get("method", "?"),
                "memory": float(metrics["memory_fraction"][()]),
                "value": float(metrics[metric][()]),
                "higher_is_better": bool(metrics[metric].attrs.get("higher_is_better", False)),
                "config": json.loads(group.attrs.get("config_json", "{}")),
            })
        title = f.attrs.get("config_json", "{}")
    try:
        title = json.loads(title).get("name", path)
    except (TypeError, ValueError):
        title = path
    return runs, title


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.h5) written by `smyrf run`")
    parser.add_argument("-o", "--output", help="PNG to write (default: next to the results file)")
    parser.add_argument("--metric", default="rel_fro_error", help="metric on the y axis (default rel_fro_error)")
    args = parser.parse_args(argv)
    try:
        runs, title = read_runs(args.results, args.metric)
    except (OSError, KeyError) as e:
        sys.exit(f"error: cannot read '{args.results}' as a smyrf results file: {e}")
    if not runs:
        sys.exit(f"error: '{args.results}' has no complete run with metrics '{args.metric}' and memory_fraction")
    output = args.output or args.results.rsplit(".", 1)[0] + f"_{args.metric}.png"

    by_method = collections.defaultdict(list)
    for r in runs:
        by_method[r["method"]].append(r)
    fig, ax = plt.subplots(figsize=(10, 5.5), dpi=120)
    log_y = args.metric.endswith("error") and all(r["value"] > 0 for r in runs)
    for method, rs in sorted(by_method.items()):
        better = max if rs[0]["higher_is_better"] else min
        best = {}
        for r in rs:
            best[r["memory"]] = better(best.get(r["memory"], r["value"]), r["value"])
        xs = sorted(best)
        (line,) = ax.plot([100 * x for x in xs], [best[x] for x in xs], marker="o", label=method, linewidth=2)
        ax.scatter([100 * r["memory"] for r in rs], [r["value"] for r in rs], color=line.get_color(), alpha=0.25, s=18)
    ax.set_xscale("log")
    if log_y:
        ax.set_yscale("log")
        # Exact methods sit at float rounding (~1e-7) and would squash every curve into the top of
        # the plot: scale to the approximate runs and name the exact ones in a note instead.
        approx = [r["value"] for r in runs if r["value"] > 1e-4]
        exact = sorted({(r["method"], r["value"]) for r in runs if r["value"] <= 1e-4})
        if approx and exact:
            ax.set_ylim(min(approx) / 1.5, max(approx) * 1.5)
            note = "; ".join(f"{m}: {v:.1e} (exact up to rounding)" for m, v in exact[:3])
            ax.text(0.99, 0.02, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=9,
                    bbox=dict(facecolor="white", alpha=0.8, edgecolor="0.7"))
    ax.set_xlabel("attention memory (% of dense score entries)")
    ax.set_ylabel(args.metric.replace("_", " "))
    ax.set_title(f"{title}: {args.metric.replace('_', ' ')} vs memory")
    ax.grid(True, which="both", alpha=0.3)
    # outside the axes: with ten methods a legend inside would cover lines
    ax.legend(title="method (line: best\nrun per memory)", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(output)
    print(output)


if __name__ == "__main__":
    main()
