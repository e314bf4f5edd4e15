#!/usr/bin/env python3
"""Wall time and peak memory of the SMYRF authors' own PyTorch attention, forward + backward, on the CPU.

    scripts/bench_authors_smyrf.py --checkout DIR [--commit SHA] [--n 16384] [--configs 1x32,2x64,4x128]
                                   [--threads 2] [--repeats 3] [--seed 0]
    scripts/bench_authors_smyrf.py --checkout DIR --check

DIR is a checkout of github.com/giannisdaras/smyrf that the user supplies (e.g. the files of a
`git archive` of it, extracted anywhere outside this repository). That code is GPL-licensed: this
script only puts DIR on sys.path and imports `smyrf.torch.attn.SmyrfAttention` from it at run time;
none of it is copied into, or distributed with, this repository.

What one measurement is (the same protocol as the `speed` pipeline, experiments/pipelines/speed.cpp):
inputs q, k, v of shape [B=1, H=8, N, 64] float32 drawn from N(0, 1), requiring grad; each call runs
`out = attn(q, k, v); out.sum().backward()` into fresh gradients, with the hashing RNG reseeded before
every call so each call draws the same hashes. One untimed warm-up call, then the VmRSS high-water
mark is reset (writing 5 to /proc/self/clear_refs) and --repeats timed calls follow; reported are the
median, min and max seconds and the peak RSS growth (VmHWM after the timed calls minus VmRSS at the
reset), in MiB. Every configuration runs in its own child process (this script with --one CONFIG),
so one configuration's allocations cannot hide or inflate another's peak.

A configuration "HxC" means H hashes and clusters of C queries and C keys: SmyrfAttention(n_hashes=H,
q_cluster_size=C, k_cluster_size=C); the attention sizes (the chunk lengths the code actually sorts
into) default to the cluster sizes. Our [B, H, N, D] layout is passed as [B*H, N, D] (the authors'
module takes [batch, sequence, dim] and treats every head as a batch entry, as their BERT fork
does), with norm_factor=sqrt(D) so the scores carry the usual 1/sqrt(D) scale, and no mask.

--check runs the authors' module at N=256 with a single cluster (C = N), where it must equal dense
attention for any number of hashes, and prints the largest absolute difference of the output and of
the q/k/v gradients from torch.nn.functional.scaled_dot_product_attention; it exits non-zero when a
difference exceeds the tolerance. It also checks the property the clustering relies on in the
asymmetric (XBOX+) transform this script may patch (see below): transformed queries and keys keep
every query-key inner product and all have the same norm.

Compatibility: the authors' XBOXPLUS.Q/K build a column of zeros with `tensor.repeat(shape, 1)`,
which current PyTorch rejects (TypeError). When (and only when) that call fails on the installed
torch, this script replaces those two methods, in memory and for its own process only, with its own
version of the transform (q -> [q, 0, sqrt(MQ^2 + MK^2 - |q|^2)], k -> [k, sqrt(MQ^2 + MK^2 - |k|^2), 0],
MQ / MK the largest query / key norm per batch entry). The output says whether the patch is active.
The files in DIR are never modified.
"""
import argparse
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

B, H, D, E = 1, 8, 64, 64
CHECK_N = 256
CHECK_TOLERANCE = 1e-4


# ---------------------------------------------------------------------------------------------
# Loading the authors' module from the user's checkout


def load_authors(checkout):
    """Imports SmyrfAttention from `checkout`; returns (class, whether the XBOX+ patch is active)."""
    checkout = os.path.abspath(checkout)
    if not os.path.isfile(os.path.join(checkout, "smyrf", "torch", "attn.py")):
        sys.exit(f"--checkout {checkout}: no smyrf/torch/attn.py there; pass a checkout of giannisdaras/smyrf")
    sys.path.insert(0, checkout)
    from smyrf.torch import attn as authors_attn  # noqa: E402
    from smyrf.torch import utils as authors_utils  # noqa: E402
    if not os.path.abspath(authors_attn.__file__).startswith(checkout + os.sep):
        sys.exit(f"imported smyrf from {authors_attn.__file__}, not from --checkout {checkout}")
    patched = patch_xbox_plus_if_needed(authors_utils.XBOXPLUS)
    return authors_attn.SmyrfAttention, patched


def _xbox_plus_q(self, x):
    # our own implementation of the XBOX+ query map: [x, 0, sqrt(MQ^2 + MK^2 - |x|^2)]
    lift = torch.sqrt(self.MQ**2 + self.MK**2 - self.q_norms**2)
    return torch.cat((x, x.new_zeros(lift.shape), lift), -1)


def _xbox_plus_k(self, x):
    # our own implementation of the XBOX+ key map: [x, sqrt(MQ^2 + MK^2 - |x|^2), 0]
    lift = torch.sqrt(self.MQ**2 + self.MK**2 - self.k_norms**2)
    return torch.cat((x, lift, x.new_zeros(lift.shape)), -1)


def patch_xbox_plus_if_needed(xbox_plus_cls):
    probe = xbox_plus_cls()
    x = torch.randn(2, 4, 3)
    probe.set_norms(x, x)
    try:
        probe.Q(x)
        probe.K(x)
        return False
    except TypeError:
        xbox_plus_cls.Q = _xbox_plus_q
        xbox_plus_cls.K = _xbox_plus_k
        return True


def checkout_commit(checkout, given):
    if given:
        return given
    checkout = os.path.realpath(checkout)
    try:  # a git work tree of its own (not merely a folder inside some other repository)
        top = subprocess.run(["git", "-C", checkout, "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10)
        if top.returncode == 0 and os.path.realpath(top.stdout.strip()) == checkout:
            head = subprocess.run(["git", "-C", checkout, "rev-parse", "HEAD"], capture_output=True, text=True,
                                  timeout=10)
            if head.returncode == 0:
                return head.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    match = re.search(r"(?<![0-9a-f])[0-9a-f]{7,40}(?![0-9a-f])", os.path.basename(checkout))
    return match.group(0) if match else "unknown"


# ---------------------------------------------------------------------------------------------
# One call, the same way for the measurement and the check


def parse_config(text):
    match = re.fullmatch(r"\s*(\d+)x(\d+)\s*", text)
    if not match:
        sys.exit(f"config '{text}': expected HASHESxCLUSTER, e.g. 2x64")
    return int(match.group(1)), int(match.group(2))


def make_inputs(n, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(B, H, n, dim, generator=gen).requires_grad_() for dim in (D, D, E)]


def authors_forward(attn, q, k, v):
    """[B, H, N, D] in, [B, H, N, E] out, through the authors' [batch, seq, dim] interface."""
    b, h, n, d = q.shape
    m = k.shape[2]
    out = attn(q.reshape(b * h, n, d), k.reshape(b * h, m, d), v.reshape(b * h, m, v.shape[-1]),
               norm_factor=math.sqrt(d))
    return out.reshape(b, h, n, -1)


def make_attention(cls, n_hashes, cluster, n):
    if n % cluster:
        sys.exit(f"N={n} is not a multiple of the cluster size {cluster}; the authors' code needs equal chunks")
    return cls(n_hashes=n_hashes, q_cluster_size=cluster, k_cluster_size=cluster)


# ---------------------------------------------------------------------------------------------
# Memory (Linux /proc)


def proc_status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------------------------------------
# Modes


def run_one(args, config):
    """Child process: measures one configuration, prints one JSON line."""
    torch.set_num_threads(args.threads)
    cls, patched = load_authors(args.checkout)
    n_hashes, cluster = parse_config(config)
    attn = make_attention(cls, n_hashes, cluster, args.n)
    q, k, v = make_inputs(args.n, args.seed)
    out = None

    def before_each():
        nonlocal out
        out = None
        for x in (q, k, v):
            x.grad = None
        torch.manual_seed(args.seed)  # the authors' hashes come from the global RNG

    def call():
        nonlocal out
        out = authors_forward(attn, q, k, v)
        out.sum().backward()

    for _ in range(args.warmup):
        before_each()
        call()
    before_each()
    reset_ok = reset_peak_rss()
    rss_before_kib = proc_status_kib("VmRSS")
    seconds = []
    for _ in range(args.repeats):
        before_each()
        t0 = time.perf_counter()
        call()
        seconds.append(time.perf_counter() - t0)
    before_each()
    peak_kib = proc_status_kib("VmHWM")
    print(json.dumps({
        "config": config,
        "seconds": seconds,
        "peak_rss_growth_mib": (peak_kib - rss_before_kib) / 1024.0 if reset_ok else None,
        "patched": patched,
    }))


def run_all(args):
    commit = checkout_commit(args.checkout, args.commit)
    rows, patched = [], None
    for config in args.configs.split(","):
        parse_config(config)
        cmd = [sys.executable, os.path.abspath(__file__), "--checkout", args.checkout, "--one", config.strip(),
               "--n", str(args.n), "--threads", str(args.threads), "--repeats", str(args.repeats),
               "--warmup", str(args.warmup), "--seed", str(args.seed)]
        print(f"# running {config.strip()} ...", file=sys.stderr, flush=True)
        child = subprocess.run(cmd, capture_output=True, text=True)
        result = None
        for line in child.stdout.splitlines()[::-1]:
            if line.startswith("{"):
                result = json.loads(line)
                break
        if child.returncode != 0 or result is None:
            sys.stderr.write(child.stderr)
            rows.append(f"| {config.strip()} | failed (exit {child.returncode}) | | | | |")
            continue
        patched = result["patched"]
        s = result["seconds"]
        mem = result["peak_rss_growth_mib"]
        rows.append(f"| {config.strip()} | {statistics.median(s):.4f} | {min(s):.4f} | {max(s):.4f} | "
                    + (f"{mem:.1f}" if mem is not None else "n/a (clear_refs refused)") + " | "
                    + ", ".join(f"{t:.4f}" for t in s) + " |")

    print(f"authors' SMYRF (giannisdaras/smyrf @ {commit}), forward+backward, CPU: torch {torch.__version__}, "
          f"threads {args.threads}, B={B} H={H} N=M={args.n} D=E={D} float32, warm-up {args.warmup}, "
          f"repeats {args.repeats}" + ("" if patched is None else
                                       f", XBOX+ compatibility patch {'active' if patched else 'not needed'}"))
    print()
    print("| config (hashes x cluster) | median s | min s | max s | peak RSS growth MiB | all times s |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(row)
    if any("failed" in r for r in rows):
        sys.exit(1)


def run_check(args):
    torch.set_num_threads(args.threads)
    cls, patched = load_authors(args.checkout)
    print(f"torch {torch.__version__}; authors' code from {os.path.abspath(args.checkout)} "
          f"({checkout_commit(args.checkout, args.commit)}); XBOX+ compatibility patch "
          f"{'active' if patched else 'not needed'}")
    ok = True

    # 1. the asymmetric transform (patched or not) keeps inner products and equalises norms
    from smyrf.torch.utils import XBOXPLUS
    gen = torch.Generator().manual_seed(1)
    qs, ks = torch.randn(3, 50, D, generator=gen) * 2, torch.randn(3, 40, D, generator=gen)
    xbox = XBOXPLUS()
    xbox.set_norms(qs, ks)
    tq, tk = xbox.Q(qs), xbox.K(ks)
    inner_err = (tq @ tk.transpose(-2, -1) - qs @ ks.transpose(-2, -1)).abs().max().item()
    norms = torch.cat((tq.norm(dim=-1), tk.norm(dim=-1)), -1)
    norm_spread = (norms - norms[:, :1]).abs().max().item()
    print(f"XBOX+ transform: shapes {tuple(tq.shape)}, {tuple(tk.shape)}; max |<Q(q),K(k)> - <q,k>| = "
          f"{inner_err:.2e}; max norm spread = {norm_spread:.2e}")
    ok &= tq.shape[-1] == D + 2 and tk.shape[-1] == D + 2 and inner_err < 1e-3 and norm_spread < 1e-3

    # 2. one cluster (C = N): must equal dense attention, output and gradients
    q, k, v = make_inputs(CHECK_N, args.seed)
    ref = F.scaled_dot_product_attention(q, k, v)
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for n_hashes in (1, 2):
        torch.manual_seed(args.seed)
        attn = make_attention(cls, n_hashes, CHECK_N, CHECK_N)
        out = authors_forward(attn, q, k, v)
        grads = torch.autograd.grad(out.sum(), (q, k, v))
        out_err = (out - ref).abs().max().item()
        grad_err = max((g - r).abs().max().item() for g, r in zip(grads, ref_grads))
        print(f"{n_hashes}x{CHECK_N} at N={CHECK_N}, B={B} H={H} D=E={D}: shape {tuple(out.shape)}; "
              f"max abs error vs scaled_dot_product_attention: output {out_err:.2e}, q/k/v grads {grad_err:.2e}")
        ok &= out.shape == ref.shape and out_err < CHECK_TOLERANCE and grad_err < CHECK_TOLERANCE
    print("check " + ("passed" if ok else f"FAILED (tolerance {CHECK_TOLERANCE:g})"))
    sys.exit(0 if ok else 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkout", required=True, help="checkout of giannisdaras/smyrf (imported, never copied)")
    parser.add_argument("--commit", default=None, help="the checkout's commit, for the report")
    parser.add_argument("--n", type=int, default=16384, help="sequence length N = M")
    parser.add_argument("--configs", default="1x32,2x64,4x128", help="comma-separated HASHESxCLUSTER")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--check", action="store_true", help="correctness check at N=256 instead of timing")
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # child mode: one configuration
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    if args.check:
        run_check(args)
    elif args.one:
        run_one(args, args.one)
    else:
        run_all(args)


if __name__ == "__main__":
    main()
