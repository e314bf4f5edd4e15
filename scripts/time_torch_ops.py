#!/usr/bin/env python3
"""Timing (not a test) of the PyTorch path: smyrf_torch.attention against the same C++ method called
directly (Google Benchmark's BM_Smyrf in build/bin/smyrf_bench), and the MiniLM forward through
transformers with attn_implementation="smyrf" against "sdpa" and "eager".

    python3 scripts/time_torch_ops.py [--rounds 3] [--repetitions 5] [--skip-minilm]

Shapes are smyrf_bench's: B = 1, H = 8, D = E = 64, float32, N = M in {1024, 16384}, SMYRF 2x64
(fused kernels), forward without autograd and forward+backward of out.sum(). Rounds alternate the
C++ benchmark (a subprocess, --benchmark_repetitions) and the Python calls, so both see the same
machine load; the medians over all repetitions are printed with their ratio. The Python backward
replays the forward (smyrf_torch/_ops.py), so its forward+backward is expected to cost one forward
more than the C++ method's own autograd. MiniLM: a batch of 4 windows of 512 tokens of real text.
"""
import argparse
import json
import pathlib
import statistics
import subprocess
import time

import torch

import smyrf_torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
SIZES = (1024, 16384)
HASHES, CLUSTER = 2, 64


def cpp_times(bench, repetitions):
    pattern = "|".join(f"N:{n}/backward:{b}/hashes:{HASHES}/C:{CLUSTER}/kernel:0" for n in SIZES for b in (0, 1))
    proc = subprocess.run([str(bench), f"--benchmark_filter=BM_Smyrf/({pattern})",
                           f"--benchmark_repetitions={repetitions}", "--benchmark_format=json"],
                          capture_output=True, text=True, check=True)
    times = {}
    for run in json.loads(proc.stdout)["benchmarks"]:
        if run.get("run_type") != "iteration":
            continue
        fields = dict(part.split(":") for part in run["name"].split("/")[1:] if ":" in part)
        key = (int(fields["N"]), int(fields["backward"]))
        times.setdefault(key, []).append(run["real_time"] / 1e3)  # ms -> s
    return times


def python_times(repetitions):
    times = {}
    for n in SIZES:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 8, n, 64, generator=g) for _ in range(3))
        for backward in (0, 1):
            for tensor in (q, k, v):
                tensor.requires_grad_(bool(backward))
            for repetition in range(repetitions + 1):  # the first call warms up and is not counted
                start = time.perf_counter()
                if backward:
                    smyrf_torch.attention(q, k, v, "smyrf", seed=7, n_hashes=HASHES, q_cluster_size=CLUSTER).sum().backward()
                    q.grad = k.grad = v.grad = None
                else:
                    with torch.no_grad():
                        smyrf_torch.attention(q, k, v, "smyrf", seed=7, n_hashes=HASHES, q_cluster_size=CLUSTER)
                if repetition > 0:
                    times.setdefault((n, backward), []).append(time.perf_counter() - start)
    return times


def minilm_times(repetitions):
    import transformers
    model_dir = ROOT / "models" / "all-MiniLM-L6-v2"
    smyrf_torch.register_with_transformers()
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    ids = tokenizer(open("/usr/share/common-licenses/GPL-3").read(), add_special_tokens=False)["input_ids"]
    windows = torch.tensor([ids[i * 510:(i + 1) * 510] for i in range(4)])
    batch = torch.cat([torch.full((4, 1), tokenizer.cls_token_id), windows, torch.full((4, 1), tokenizer.sep_token_id)], 1)
    models = {name: transformers.AutoModel.from_pretrained(model_dir, attn_implementation=name).eval()
              for name in ("sdpa", "eager", "smyrf")}
    times = {name: [] for name in models}
    with torch.no_grad(), smyrf_torch.attention_options(smyrf={"n_hashes": 2, "q_cluster_size": 32}):
        for repetition in range(repetitions + 1):  # the first round warms up and is not counted
            for name, model in models.items():
                start = time.perf_counter()
                model(input_ids=batch)
                if repetition > 0:
                    times[name].append(time.perf_counter() - start)
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repetitions", type=int, default=5)
    p.add_argument("--bench", default=str(ROOT / "build" / "bin" / "smyrf_bench"))
    p.add_argument("--skip-minilm", action="store_true")
    args = p.parse_args()
    cpp, python = {}, {}
    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds}", flush=True)
        for key, values in cpp_times(args.bench, args.repetitions).items():
            cpp.setdefault(key, []).extend(values)
        for key, values in python_times(args.repetitions).items():
            python.setdefault(key, []).extend(values)
    print(f"threads {torch.get_num_threads()}; medians of {args.rounds} x {args.repetitions} calls each")
    print(f"{'N':>6} {'mode':>17} {'C++ ms':>10} {'Python ms':>10} {'overhead':>9}")
    for key in sorted(cpp):
        c, py = statistics.median(cpp[key]), statistics.median(python[key])
        mode = "forward+backward" if key[1] else "forward"
        print(f"{key[0]:>6} {mode:>17} {c * 1e3:>10.2f} {py * 1e3:>10.2f} {100 * (py / c - 1):>8.1f}%")
    if not args.skip_minilm:
        times = minilm_times(args.rounds * args.repetitions)
        sdpa = statistics.median(times["sdpa"])
        print("MiniLM forward through transformers, batch 4 x 512 tokens (median):")
        for name, values in times.items():
            m = statistics.median(values)
            print(f"  {name:>6}: {m * 1e3:8.1f} ms  ({m / sdpa:.2f}x sdpa)")


if __name__ == "__main__":
    main()
