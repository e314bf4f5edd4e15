#!/usr/bin/env python3
"""Speed plot of a `speed` pipeline results file: time and peak memory vs sequence length N.

    scripts/plot_speed.py results/speed.h5                 # writes results/speed_speed.png
    scripts/plot_speed.py results/speed.h5 -o speed.png

Reads the /summary table (schema in results/README.md): one row per run, N from the swept
`data.n_queries` column (or from the run's resolved config when N is not swept). One line per
method and knob setting (e.g. "smyrf 2x64", "hyper min_seq_len=1024"), log-log, in four panels:
forward time, forward+backward time, forward peak RSS growth, forward+backward peak RSS growth.
Prints the speed-ups over dense and over sdpa (t_reference / t_method) at each N, computed only
from runs of this file. Failed, running and incomplete runs are skipped and listed on stderr.
Tested by tests/python/test_speed_plot.py.
"""
import argparse
import collections
import json
import math
import sys

import h5py
import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402

PANELS = [  # (metric, title, y label, scale to display units, memory?)
    ("forward_time_s", "forward", "time per call (ms)", 1e3, False),
    ("forward_backward_time_s", "forward + backward", "time per call (ms)", 1e3, False),
    ("forward_peak_rss_delta_bytes", "forward: peak memory", "peak RSS growth (MiB)", 1.0 / 2**20, True),
    ("forward_backward_peak_rss_delta_bytes", "forward + backward: peak memory", "peak RSS growth (MiB)",
     1.0 / 2**20, True),
]
REFERENCES = ("dense", "sdpa")
# A call that reuses pages the allocator already holds grows the RSS by 0 bytes, which a log axis
# cannot show: such points are drawn at this floor (MiB) and the panel says so.
MEMORY_FLOOR_MIB = 2.0**-10
MARKERS = "osD^v<>ph*XP"


class PlainLogFormatter(matplotlib.ticker.LogFormatter):
    """Log-axis tick labels as plain numbers ("0.5", "3", "200"), not "3 x 10^0"; which minor ticks get
    a label is still LogFormatter's choice, so narrow ranges are labelled and wide ones stay clean."""

    def _num_to_string(self, x, vmin, vmax):
        return f"{x:g}"


def text(value):
    return value.decode() if isinstance(value, bytes) else str(value)


def is_missing(value):
    """A summary cell for a key this run lacks: NaN in a number column, "" in a string column."""
    if isinstance(value, (bytes, str)):
        return len(value) == 0
    return math.isnan(value)


def knob_text(value):
    """A knob value for a label: integers without '.0', strings as they are."""
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else f"{value:g}"
    return text(value)


def knob_cell(record, name):
    """A knob's /summary cell, NaN when no run of the file has that knob (no column)."""
    return record[name] if name in record.dtype.names else math.nan


def read_summary(path):
    """Rows of /summary as dicts: run_id, status, method, label, n, error, and every metric column."""
    with h5py.File(path, "r") as f:
        summary = f["summary"][()]
        columns = json.loads(text(f["summary"].attrs["columns_json"]))
        try:
            title = json.loads(text(f.attrs.get("config_json", "{}"))).get("name", path)
        except ValueError:
            title = path
        rows = []
        for record in summary:
            row = {"run_id": text(record["run_id"]), "status": text(record["status"]),
                   "method": text(record["method"])}
            row["error"] = text(f["runs"][row["run_id"]].attrs.get("error", "")) if row["status"] == "failed" else ""
            # label: the method plus every knob that distinguishes its runs (N is the x axis)
            parts = []
            # the paper's "#x C" notation; /summary has a knob's column only when some run's method has it
            hashes, cluster = knob_cell(record, "n_hashes"), knob_cell(record, "q_cluster_size")
            if not math.isnan(hashes) and not math.isnan(cluster):
                parts.append(f"{knob_text(hashes)}x{knob_text(cluster)}")
            elif not math.isnan(hashes):
                parts.append(f"n_hashes={knob_text(hashes)}")
            elif not math.isnan(cluster):
                parts.append(f"q_cluster_size={knob_text(cluster)}")
            n = None
            for column in columns:
                if column["source"] != "sweep":
                    continue
                value = record[column["name"]]
                if column["key"] == "data.n_queries":
                    n = None if is_missing(value) or isinstance(value, (bytes, str)) else int(value)
                    continue
                leaf = column["key"].rsplit(".", 1)[-1]
                if leaf in ("method", "n_hashes", "q_cluster_size") or not column["key"].startswith("attention."):
                    continue
                if is_missing(value):
                    continue  # this run's method does not have the knob
                parts.append(f"{leaf}={knob_text(value)}")
            if n is None:  # N not swept: it is in the run's resolved config
                config = json.loads(text(f["runs"][row["run_id"]].attrs["config_json"]))
                n = int(config["data"]["n_queries"])
            row["n"] = n
            row["label"] = " ".join([row["method"]] + parts)
            for column in columns:
                if column["source"] == "metric":
                    row[column["name"]] = float(record[column["name"]])
            rows.append(row)
    return rows, title


def metric_of(row, name):
    value = row.get(name, float("nan"))
    return value if math.isfinite(value) else None


def speedup_table(rows, metric):
    """Lines of text: t_reference / t_method per N and label, for each reference present in the file."""
    by_n = collections.defaultdict(dict)
    for r in rows:
        t = metric_of(r, metric)
        if t is not None and t > 0:
            by_n[r["n"]].setdefault(r["label"], t)
    lines = []
    for ref in REFERENCES:
        if not any(ref in labels for labels in by_n.values()):
            lines.append(f"{metric}: no complete '{ref}' run in this file; no speed-up over {ref}")
            continue
        lines.append(f"{metric}: speed-up over {ref} (t_{ref} / t; > 1 is faster than {ref})")
        labels = sorted({label for labels in by_n.values() for label in labels})
        width = max(len(label) for label in labels)
        lines.append(f"  {'method':<{width}}  " + "  ".join(f"{'N=' + str(n):>9}" for n in sorted(by_n)))
        for label in labels:
            cells = []
            for n in sorted(by_n):
                t, t_ref = by_n[n].get(label), by_n[n].get(ref)
                cells.append(f"{t_ref / t:9.3g}" if t is not None and t_ref is not None else f"{'-':>9}")
            lines.append(f"  {label:<{width}}  " + "  ".join(cells))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="results file (.h5) written by `smyrf run` with the speed pipeline")
    parser.add_argument("-o", "--output", help="PNG to write (default: <results>_speed.png)")
    args = parser.parse_args(argv)
    try:
        rows, title = read_summary(args.results)
    except (OSError, KeyError, ValueError) as e:
        sys.exit(f"error: cannot read '{args.results}' as a smyrf results file: {e}")

    complete = []
    for r in rows:
        if r["status"] != "complete":
            why = f": {r['error'].splitlines()[0]}" if r["error"] else ""
            print(f"skipped {r['run_id']} ({r['status']}{why})", file=sys.stderr)
        elif metric_of(r, "forward_time_s") is None:
            print(f"skipped {r['run_id']} (complete but has no forward_time_s: not a speed run?)", file=sys.stderr)
        else:
            complete.append(r)
    if not complete:
        sys.exit(f"error: '{args.results}' has no complete speed run (metric forward_time_s)")
    output = args.output or args.results.rsplit(".", 1)[0] + "_speed.png"

    by_label = collections.defaultdict(list)
    for r in complete:
        by_label[r["label"]].append(r)
    labels = sorted(by_label, key=lambda label: (label.split()[0] not in REFERENCES, label))
    sizes = sorted({r["n"] for r in complete})
    fig, axes = plt.subplots(2, 2, figsize=(13, 9.5), dpi=110)
    for ax, (metric, panel_title, ylabel, scale, memory) in zip(axes.flat, PANELS):
        drawn = floored = 0
        for i, label in enumerate(labels):
            points = sorted((r["n"], metric_of(r, metric)) for r in by_label[label] if metric_of(r, metric) is not None)
            missing = [r["run_id"] for r in by_label[label] if metric_of(r, metric) is None]
            if missing:
                print(f"{panel_title}: no {metric} for {', '.join(missing)} (left out)", file=sys.stderr)
            if not points:
                continue
            reference = label in REFERENCES
            ys = [v * scale for _, v in points]
            if memory:
                floored += sum(y < MEMORY_FLOOR_MIB for y in ys)
                ys = [max(y, MEMORY_FLOOR_MIB) for y in ys]
            ax.plot([n for n, _ in points], ys, marker=MARKERS[i % len(MARKERS)],
                    linewidth=2.6 if reference else 1.6, linestyle="-" if reference or i < 10 else "--",
                    markersize=6, label=label, color=f"C{i % 10}")
            drawn += 1
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        # label the measured sizes themselves (1024, 2048, ...) rather than powers of two
        ax.set_xticks(sizes)
        ax.set_xticklabels([str(n) for n in sizes])
        ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        ax.yaxis.set_major_formatter(PlainLogFormatter())
        ax.yaxis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))
        if floored:
            ax.text(0.01, 0.01, f"{floored} point(s) at 1 KiB: no RSS growth (memory reused)",
                    transform=ax.transAxes, ha="left", va="bottom", fontsize=8, color="0.35")
        ax.set_title(panel_title)
        ax.set_xlabel("sequence length N (= M)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        if drawn == 0:
            ax.text(0.5, 0.5, f"no {metric} in this file\n(eval.backward false, or every run failed)",
                    transform=ax.transAxes, ha="center", va="center", color="0.4")
    handles, legend_labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, legend_labels, loc="lower center", ncol=min(6, max(1, len(legend_labels))), frameon=False)
    fig.suptitle(f"{title}: time and peak memory vs N (log-log)")
    fig.tight_layout(rect=(0, 0.07, 1, 0.96))
    fig.savefig(output)

    for metric in ("forward_time_s", "forward_backward_time_s"):
        if any(metric_of(r, metric) is not None for r in complete):
            print("\n".join(speedup_table(complete, metric)))
    print(output)


if __name__ == "__main__":
    main()
