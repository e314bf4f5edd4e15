#!/usr/bin/env python3
"""Says whether two results files of `smyrf run` hold the same results bit for bit, apart from the
things that legitimately change between two runs (times, memory, provenance).

    scripts/compare_results.py before/quickstart.h5 after/quickstart.h5
    scripts/compare_results.py BEFORE.h5 AFTER.h5 --ignore '^metrics/threads$' --quiet

Used to show that a refactor changed no metric: run the same configs with the old and the new
binary, then compare each pair of files. Schema: results/README.md.

Compared: the root attributes; the set of run ids; every run attribute (status, config_json and
sweep_point_json as parsed JSON, method, knobs, seed, memory_fraction, error of a failed run);
every metric, curve and tensor (same names, dtypes, shapes, bitwise-equal values, so NaN equals
NaN only with the same bits; metric units and directions too); the notes; the /summary table.
Every `config_json` is compared without its `output.path`, and in notes and error texts a path
to the results file or to a folder beside it (`DIR/NAME.samples/...`, `DIR/NAME.models/...`)
reads as `<results>.samples/...`, so files written to different paths compare equal.

Ignored: every item whose name matches one of DEFAULT_IGNORE (below) or of `--ignore REGEX`.
Names, as printed in the output: attributes by their bare name (`status`, `created_utc`), results
by kind and name (`metrics/wall_time_s`, `curves/step_time_s`, `tensors/rel_fro_error_BH`,
`notes/fid`); the regexes are matched with re.search. A summary column of a metric is ignored
with its metric.

Prints one line per difference, then a summary line. Exit status: 0 identical, 1 different,
2 usage error or unreadable file.

Tested by tests/python/test_compare_results.py.
"""
import argparse
import json
import os
import re
import sys
import textwrap

import h5py
import numpy as np

# (regex, why): what measures time, memory or provenance, and so differs between two runs of the
# same binary. Metric names come from every pipeline's table in results/README.md and the files of
# `smyrf run` on configs/quickstart.json, configs/smoke/*.json and configs/sweeps/equal_memory.json.
DEFAULT_IGNORE = [
    (r"^(created_utc|host|git_sha|git_dirty|harness_version|torch_version)$",
     "root provenance: when, where and from which sources and libraries the file was created"),
    (r"^(started|finished)$",
     "run timestamps"),
    (r"^(metrics|curves)/.*_s$",
     "durations in seconds (wall_time_s, forward_time_s, forward_backward_time_s, train_time_s, "
     "eval_time_s, g_forward_s, the curve step_time_s) and rates per second derived from them "
     "(tokens_per_s, train_tokens_per_s, train_examples_per_s, g_steps_per_s, images_per_s); "
     "`smyrf report` reads these suffixes as times and rates too"),
    (r"^(metrics|curves)/.*(_ms|seconds|per_second|throughput)",
     "other spellings of times and rates (no pipeline writes them today)"),
    (r"^(metrics|curves)/(.*_)?peak_rss(_.*)?$",
     "resident-memory high-water marks: peak_rss_bytes, peak_rss_delta_bytes, "
     "process_peak_rss_bytes, forward_peak_rss_delta_bytes, forward_backward_peak_rss_delta_bytes"),
    (r"^(metrics|curves)/cuda_.*_bytes$",
     "CUDA allocator peaks: cuda_peak_allocated_bytes"),
]
# Deliberately compared although their names speak of memory or bytes: memory_fraction,
# memory_budget and budget_<knob> (analytic, from the method's cost formula), score_entries and
# analytic_bytes (computed from shapes), captured_bytes (size of the file `capture` writes, a
# function of its contents), threads (the LibTorch thread count, fixed on one machine).

KINDS = ("metrics", "curves", "tensors")
MISSING = "<missing>"


class ReadError(Exception):
    """A file that cannot be read as a results file; the message names it."""


# ---------------------------------------------------------------------------------------------
# Reading a file into plain Python values


def read_attrs(obj):
    return {name: obj.attrs[name] for name in obj.attrs}


def read_datasets(group):
    if group is None:
        return None
    return {name: (ds[()], read_attrs(ds)) for name, ds in group.items() if isinstance(ds, h5py.Dataset)}


def results_path_pattern(path):
    """Matches a path to the results file or to a folder beside it (`DIR/NAME.samples/...`)."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return re.compile(r"[^\s'\"]*" + re.escape(stem) + r"(?=\.h5\b|\.\w+/)") if stem else None


def neutral_paths(value, pattern):
    if not isinstance(value, str) or pattern is None:
        return value
    return pattern.sub("<results>", value)


def read_run(group, pattern):
    attrs = read_attrs(group)
    if "error" in attrs:
        attrs["error"] = neutral_paths(attrs["error"], pattern)
    run = {"attrs": attrs}
    for kind in KINDS:
        run[kind] = read_datasets(group.get(kind))
    notes = group.get("notes")
    run["notes"] = None if notes is None else {
        name: neutral_paths(value, pattern) for name, value in read_attrs(notes).items()}
    return run


def read_summary(f):
    if "summary" not in f:
        return None
    columns = json.loads(f["summary"].attrs.get("columns_json", "[]"))
    return columns, f["summary"][()]


def read_file(path):
    try:
        with h5py.File(path, "r") as f:
            if "runs" not in f:
                raise ReadError(f"{path}: not a smyrf results file (no /runs group)")
            pattern = results_path_pattern(path)
            return {"attrs": read_attrs(f),
                    "runs": {run_id: read_run(g, pattern) for run_id, g in f["runs"].items()},
                    "summary": read_summary(f)}
    except ReadError:
        raise
    except FileNotFoundError:
        raise ReadError(f"{path}: no such file") from None
    except (OSError, KeyError, ValueError, RuntimeError) as e:
        raise ReadError(f"{path}: cannot read it as HDF5 results: {e}") from None


# ---------------------------------------------------------------------------------------------
# Comparing values


def bits(value):
    a = np.asarray(value)
    return "0x" + a.tobytes()[::-1].hex() if a.dtype.kind in "fc" and a.size == 1 else None


def show(value):
    if isinstance(value, (bytes, np.bytes_)):
        value = value.decode("utf-8", "replace")
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.ndarray) and value.size > 8:
        return f"array{value.shape}"
    return repr(value) if isinstance(value, str) and ("\n" in value or value == "") else str(value)


def type_name(value):
    return type(value).__name__ if isinstance(value, str) else str(np.asarray(value).dtype)


def show_pair(a, b):
    """`a != b`, with the bits or the types when the two print alike."""
    left, right = show(a), show(b)
    if left == right:
        same_type = type_name(a) == type_name(b)
        left += f" ({bits(a) if same_type and bits(a) else type_name(a)})"
        right += f" ({bits(b) if same_type and bits(b) else type_name(b)})"
    return f"{left} != {right}"


def same_array(a, b):
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind == "O":
        return a.tolist() == b.tolist()
    return np.ascontiguousarray(a).tobytes() == np.ascontiguousarray(b).tobytes()


def same_value(a, b):
    if isinstance(a, str) or isinstance(b, str):
        return type(a) is type(b) and a == b
    return same_array(np.asarray(a), np.asarray(b))


def array_difference(a, b):
    """What differs between two arrays, in words; None when they are bitwise equal."""
    if a.dtype != b.dtype:
        return f"dtype {a.dtype} != {b.dtype}"
    if a.shape != b.shape:
        return f"shape {a.shape} != {b.shape}"
    if same_array(a, b):
        return None
    if a.ndim == 0:
        return show_pair(a[()], b[()])
    if a.dtype.kind == "O":
        unequal = np.array([x != y for x, y in zip(a.ravel().tolist(), b.ravel().tolist())])
    else:
        unsigned = f"u{a.dtype.itemsize}" if a.dtype.itemsize in (1, 2, 4, 8) else None
        flat_a, flat_b = np.ascontiguousarray(a).ravel(), np.ascontiguousarray(b).ravel()
        unequal = (flat_a.view(unsigned) != flat_b.view(unsigned)) if unsigned else (flat_a != flat_b)
    where = np.flatnonzero(unequal)
    first = np.unravel_index(where[0], a.shape)
    index = ",".join(str(int(i)) for i in first)
    return f"{len(where)} of {a.size} values differ, first at [{index}]: {show_pair(a[first], b[first])}"


# ---------------------------------------------------------------------------------------------
# JSON attributes


def without_output_path(config):
    if isinstance(config, dict) and isinstance(config.get("output"), dict):
        config = dict(config, output={k: v for k, v in config["output"].items() if k != "path"})
    return config


def parse_json(name, text):
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return text
    return without_output_path(value) if name == "config_json" else value


def dump_json(value):
    return MISSING if value is MISSING else json.dumps(value, sort_keys=True)


def same_json(a, b):
    return dump_json(a) == dump_json(b)


def json_differences(a, b, where=""):
    """(dotted key, value before, value after) for each leaf that differs."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from json_differences(a.get(key, MISSING), b.get(key, MISSING), f"{where}.{key}" if where else key)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from json_differences(x, y, f"{where}[{i}]")
    elif not same_json(a, b):
        yield where or "(whole)", dump_json(a), dump_json(b)


# ---------------------------------------------------------------------------------------------
# Comparing files


def column_difference(a, b):
    names_a, names_b = [c.get("name") for c in a], [c.get("name") for c in b]
    if set(names_a) != set(names_b):
        only_a = ", ".join(sorted(set(names_a) - set(names_b))) or "none"
        only_b = ", ".join(sorted(set(names_b) - set(names_a))) or "none"
        return f"columns only in before: {only_a}; only in after: {only_b}"
    if names_a != names_b:
        return "same columns in another order"
    changed = [f"{x.get('name')} {dump_json(x)} != {dump_json(y)}" for x, y in zip(a, b) if not same_json(x, y)]
    return "; ".join(changed)


class Comparison:
    def __init__(self, ignore):
        self.ignore = [re.compile(pattern) for pattern in ignore]
        self.differences = []
        self.ignored = set()
        self.counts = dict(runs=0, metrics=0, curves=0, tensors=0)

    def skip(self, name):
        if any(pattern.search(name) for pattern in self.ignore):
            self.ignored.add(name)
            return True
        return False

    def differ(self, where, name, what):
        self.differences.append(f"{where}: {name}: {what}")

    def attrs(self, where, a, b):
        for name in sorted(set(a) | set(b)):
            if self.skip(name):
                continue
            if name not in a or name not in b:
                self.differ(where, name, f"only in {'before' if name in a else 'after'}")
            elif name.endswith("_json"):
                self.json_attr(where, name, a[name], b[name])
            elif not same_value(a[name], b[name]):
                self.differ(where, name, show_pair(a[name], b[name]))

    def json_attr(self, where, name, a, b):
        for key, x, y in json_differences(parse_json(name, a), parse_json(name, b)):
            self.differ(where, name, f"{key}: {x} != {y}")

    def datasets(self, where, kind, a, b):
        if a is None or b is None:
            if (a is None) != (b is None):
                self.differ(where, kind, f"group only in {'before' if b is None else 'after'}")
            return
        for name in sorted(set(a) | set(b)):
            item = f"{kind}/{name}"
            if self.skip(item):
                continue
            if name not in a or name not in b:
                self.differ(where, item, f"only in {'before' if name in a else 'after'}")
                continue
            self.counts[kind] += 1
            self.dataset(where, item, a[name], b[name])

    def dataset(self, where, item, a, b):
        (value_a, attrs_a), (value_b, attrs_b) = a, b
        what = array_difference(np.asarray(value_a), np.asarray(value_b))
        if what:
            self.differ(where, item, what)
        for name in sorted(set(attrs_a) | set(attrs_b)):
            x, y = attrs_a.get(name, MISSING), attrs_b.get(name, MISSING)
            if not same_value(x, y):
                self.differ(where, item, f"{name} {show_pair(x, y)}")

    def notes(self, where, a, b):
        a, b = a or {}, b or {}
        for name in sorted(set(a) | set(b)):
            item = f"notes/{name}"
            x, y = a.get(name, MISSING), b.get(name, MISSING)
            if not self.skip(item) and not same_value(x, y):
                self.differ(where, item, show_pair(x, y))

    def run(self, run_id, a, b):
        self.counts["runs"] += 1
        self.attrs(run_id, a["attrs"], b["attrs"])
        for kind in KINDS:
            self.datasets(run_id, kind, a[kind], b[kind])
        self.notes(run_id, a["notes"], b["notes"])

    def runs(self, a, b):
        for run_id in sorted(set(a) | set(b)):
            if run_id not in a or run_id not in b:
                self.differences.append(f"{run_id}: run only in {'before' if run_id in a else 'after'}")
            else:
                self.run(run_id, a[run_id], b[run_id])

    def summary_column_ignored(self, column):
        if column.get("source") == "metric":
            return self.skip(f"metrics/{column.get('key', column.get('name'))}")
        return self.skip(f"summary/{column.get('name')}")

    def summary(self, a, b):
        if a is None or b is None:
            if (a is None) != (b is None):
                self.differ("summary", "table", f"only in {'before' if b is None else 'after'}")
            return
        (columns_a, rows_a), (columns_b, rows_b) = a, b
        kept_a = [c for c in columns_a if not self.summary_column_ignored(c)]
        kept_b = [c for c in columns_b if not self.summary_column_ignored(c)]
        if not same_json(kept_a, kept_b):
            self.differ("summary", "columns_json", column_difference(kept_a, kept_b))
            return
        if rows_a.shape != rows_b.shape or not same_array(rows_a["run_id"], rows_b["run_id"]):
            return  # the runs differ, and are reported as such
        run_ids = [r.decode() if isinstance(r, bytes) else str(r) for r in rows_a["run_id"]]
        for column in (c["name"] for c in kept_a):
            if column not in (rows_a.dtype.names or ()) or column not in (rows_b.dtype.names or ()):
                self.differ("summary", column, "column named in columns_json but absent from the table")
                continue
            for row, run_id in enumerate(run_ids):
                x, y = rows_a[column][row], rows_b[column][row]
                if not same_value(x, y):
                    self.differ("summary", f"{column} of {run_id}", show_pair(x, y))

    def files(self, a, b):
        self.attrs("root", a["attrs"], b["attrs"])
        self.runs(a["runs"], b["runs"])
        self.summary(a["summary"], b["summary"])

    def summary_line(self):
        c = self.counts
        head = f"{c['runs']} runs compared, {c['metrics']} metrics, {c['curves']} curves, {c['tensors']} tensors"
        count = len(self.differences)
        verdict = f"{count} difference{'' if count == 1 else 's'}" if count else "identical"
        ignored = ", ".join(sorted(self.ignored)) or "nothing"
        return f"{head}: {verdict} (ignored: {ignored})"


# ---------------------------------------------------------------------------------------------


def regex(text):
    try:
        re.compile(text)
    except re.error as e:
        raise argparse.ArgumentTypeError(f"invalid regex {text!r}: {e}")
    return text


def parse_args(argv):
    parser = argparse.ArgumentParser(
        description="Compare two smyrf results files bit for bit, apart from times, memory and provenance.",
        epilog="Ignored by default (regexes on item names):\n" +
               "\n".join(f"  {pattern}\n" + textwrap.fill(why, 96, initial_indent=" " * 6, subsequent_indent=" " * 6)
                         for pattern, why in DEFAULT_IGNORE),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="results file written before the change")
    parser.add_argument("after", help="results file written after the change")
    parser.add_argument("--ignore", action="append", default=[], type=regex, metavar="REGEX",
                        help="also ignore items whose name (e.g. metrics/threads, notes/model, seed) matches")
    parser.add_argument("--quiet", action="store_true", help="print only the summary line")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    try:
        before, after = read_file(args.before), read_file(args.after)
    except ReadError as e:
        print(f"compare_results.py: {e}", file=sys.stderr)
        return 2
    comparison = Comparison([pattern for pattern, _ in DEFAULT_IGNORE] + args.ignore)
    comparison.files(before, after)
    if not args.quiet:
        for line in comparison.differences:
            print(line)
    print(comparison.summary_line())
    return 1 if comparison.differences else 0


if __name__ == "__main__":
    sys.exit(main())
