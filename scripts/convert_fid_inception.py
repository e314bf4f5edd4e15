#!/usr/bin/env python3
"""Convert pytorch-fid's FID Inception-v3 weights (.pth) to inception_fid.safetensors for smyrf.

The weights are the TensorFlow FID graph (inception-2015-12-05) as ported by pytorch-fid:

    https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth

Download that file once (about 92 MiB; its name carries the first 8 hex digits of its sha256, as
torch.hub names files) and run

    python3 scripts/convert_fid_inception.py pt_inception-2015-12-05-6726825d.pth inception_fid.safetensors

A pure format change: every tensor keeps its pytorch-fid state_dict name (Conv2d_1a_3x3.conv.weight,
Mixed_5b.branch1x1.bn.running_mean, ..., fc.weight) and becomes float32; BatchNorm's
num_batches_tracked counters are dropped (not part of the network). The key set is checked against
the FID Inception-v3 architecture (core/models/inception_fid.h) before anything is written: a
missing, extra or wrongly shaped tensor is an error naming it. The sha256 of the input is printed
and stored in the output's metadata (source_sha256), and from there in every statistics file that
`smyrf fid-stats` writes, so that FID values record which weights they came from.

Needs torch and safetensors (no torchvision, no pytorch-fid). Tested by tests/python/test_fid.py
(round trip of a random state dict through this script and `smyrf fid-stats`).
"""
import argparse
import hashlib
import os
import sys

import torch
from safetensors.torch import save_file

OFFICIAL_NAME = "pt_inception-2015-12-05-6726825d.pth"
OFFICIAL_SHA256_PREFIX = "6726825d"


def basic_conv(name, cin, cout, kh, kw):
    """One BasicConv2d: conv without bias, BatchNorm with running statistics."""
    return {f"{name}.conv.weight": (cout, cin, kh, kw), f"{name}.bn.weight": (cout,), f"{name}.bn.bias": (cout,),
            f"{name}.bn.running_mean": (cout,), f"{name}.bn.running_var": (cout,)}


def expected_shapes():
    """state_dict key -> shape of pytorch-fid's fid_inception_v3() (torchvision Inception3, 1008
    classes, no aux classifier), without num_batches_tracked."""
    shapes = {}
    for name, cin, cout, k in [("Conv2d_1a_3x3", 3, 32, 3), ("Conv2d_2a_3x3", 32, 32, 3), ("Conv2d_2b_3x3", 32, 64, 3),
                               ("Conv2d_3b_1x1", 64, 80, 1), ("Conv2d_4a_3x3", 80, 192, 3)]:
        shapes.update(basic_conv(name, cin, cout, k, k))

    def block(prefix, convs):
        for branch, cin, cout, kh, kw in convs:
            shapes.update(basic_conv(f"{prefix}.{branch}", cin, cout, kh, kw))

    for prefix, cin, pool in [("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)]:
        block(prefix, [("branch1x1", cin, 64, 1, 1), ("branch5x5_1", cin, 48, 1, 1), ("branch5x5_2", 48, 64, 5, 5),
                       ("branch3x3dbl_1", cin, 64, 1, 1), ("branch3x3dbl_2", 64, 96, 3, 3),
                       ("branch3x3dbl_3", 96, 96, 3, 3), ("branch_pool", cin, pool, 1, 1)])
    block("Mixed_6a", [("branch3x3", 288, 384, 3, 3), ("branch3x3dbl_1", 288, 64, 1, 1),
                       ("branch3x3dbl_2", 64, 96, 3, 3), ("branch3x3dbl_3", 96, 96, 3, 3)])
    for prefix, c7 in [("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)]:
        block(prefix, [("branch1x1", 768, 192, 1, 1), ("branch7x7_1", 768, c7, 1, 1), ("branch7x7_2", c7, c7, 1, 7),
                       ("branch7x7_3", c7, 192, 7, 1), ("branch7x7dbl_1", 768, c7, 1, 1),
                       ("branch7x7dbl_2", c7, c7, 7, 1), ("branch7x7dbl_3", c7, c7, 1, 7),
                       ("branch7x7dbl_4", c7, c7, 7, 1), ("branch7x7dbl_5", c7, 192, 1, 7),
                       ("branch_pool", 768, 192, 1, 1)])
    block("Mixed_7a", [("branch3x3_1", 768, 192, 1, 1), ("branch3x3_2", 192, 320, 3, 3),
                       ("branch7x7x3_1", 768, 192, 1, 1), ("branch7x7x3_2", 192, 192, 1, 7),
                       ("branch7x7x3_3", 192, 192, 7, 1), ("branch7x7x3_4", 192, 192, 3, 3)])
    for prefix, cin in [("Mixed_7b", 1280), ("Mixed_7c", 2048)]:
        block(prefix, [("branch1x1", cin, 320, 1, 1), ("branch3x3_1", cin, 384, 1, 1),
                       ("branch3x3_2a", 384, 384, 1, 3), ("branch3x3_2b", 384, 384, 3, 1),
                       ("branch3x3dbl_1", cin, 448, 1, 1), ("branch3x3dbl_2", 448, 384, 3, 3),
                       ("branch3x3dbl_3a", 384, 384, 1, 3), ("branch3x3dbl_3b", 384, 384, 3, 1),
                       ("branch_pool", cin, 192, 1, 1)])
    shapes["fc.weight"] = (1008, 2048)
    shapes["fc.bias"] = (1008,)
    return shapes


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def convert(src, dst):
    """Returns the sha256 of src; raises ValueError naming every key that does not fit."""
    sha = sha256_of(src)
    state = torch.load(src, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{src} holds a {type(state).__name__}, not a state_dict")
    state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    expected = expected_shapes()
    problems = [f"missing tensor {k} {list(s)}" for k, s in expected.items() if k not in state]
    problems += [f"unexpected tensor {k}" for k in state if k not in expected]
    problems += [f"tensor {k} has shape {list(v.shape)}, expected {list(expected[k])}"
                 for k, v in state.items() if k in expected and tuple(v.shape) != expected[k]]
    problems += [f"tensor {k} is {v.dtype}, not floating point"
                 for k, v in state.items() if k in expected and not v.is_floating_point()]
    if problems:
        raise ValueError(f"{src} is not pytorch-fid's FID Inception-v3 state_dict:\n  " + "\n  ".join(problems))
    tensors = {k: v.detach().to(torch.float32).contiguous() for k, v in state.items()}
    metadata = {"format": "pt", "network": "pt_inception-2015-12-05 (pytorch-fid FID Inception-v3)",
                "source": os.path.basename(src), "source_sha256": sha}
    save_file(tensors, dst, metadata=metadata)
    return sha


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("src", help=f"pytorch-fid weights, {OFFICIAL_NAME}")
    parser.add_argument("dst", help="output .safetensors (e.g. inception_fid.safetensors)")
    args = parser.parse_args()
    if not os.path.isfile(args.src):
        sys.exit(f"error: {args.src} not found; download it from the URL in this script's docstring")
    try:
        sha = convert(args.src, args.dst)
    except ValueError as e:
        sys.exit(f"error: {e}")
    print(f"sha256({args.src}) = {sha}")
    if os.path.basename(args.src) == OFFICIAL_NAME and not sha.startswith(OFFICIAL_SHA256_PREFIX):
        print(f"warning: the official file's sha256 starts with {OFFICIAL_SHA256_PREFIX}; this one does not "
              "(damaged or modified download?)", file=sys.stderr)
    print(f"wrote {args.dst} ({len(expected_shapes())} tensors, float32)")


if __name__ == "__main__":
    main()
