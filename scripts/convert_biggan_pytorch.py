#!/usr/bin/env python3
"""Converts a BigGAN-PyTorch checkpoint (github.com/ajbrock/BigGAN-PyTorch) into SMYRF's BigGAN files.

    scripts/convert_biggan_pytorch.py weights/BigGAN_ch96_bs256x8_138k -o models/biggan128
    scripts/convert_biggan_pytorch.py path/G_ema.pth --discriminator path/D.pth -o out --sn-eps 1e-6
    scripts/convert_biggan_pytorch.py path/G.pth -o out --no-discriminator

Writes into the output folder:
  generator.safetensors      the G state dict, float32, under BigGAN-PyTorch's own key names
                             (`linear.u0`, `blocks.3.0.bn1.gain.weight`, `blocks.3.1.gamma`, ...);
  discriminator.safetensors  the same for D (when a D checkpoint is given or found);
  biggan.json                {"resolution", "g_ch", "d_ch", "dim_z", "n_classes", "shared_dim" (0 = no
                             shared embedding), "hier", "g_attn", "d_attn" (0 = none), "bn_eps", "sn_eps"}.

Input: the first argument is a BigGAN-PyTorch weights folder (as written by train.py's save_weights:
G.pth, G_ema.pth, D.pth, G_optim.pth, D_optim.pth, state_dict.pth, each optionally with a name
suffix such as `_best0`, chosen with --name-suffix) or a G .pth file. From a folder the EMA copy
G_ema.pth is used when present (as sample.py does with --use_ema), unless --no-ema; D.pth is
converted when present. Optimizer states and state_dict.pth are refused with a message.

The public ImageNet 128x128 model: the BigGAN-PyTorch README's "Pretrained models" section links
the main checkpoint (BigGAN_ch96_bs256x8_138k, "trained on ImageNet at 128x128, using BS256 and 8
gradient accumulations, taken just before collapse") on Google Drive:
    https://drive.google.com/open?id=1nAle7FCVFZdix2--ks0r5JBkFnKw8ctW
(and an earlier 100k-iteration one: https://drive.google.com/open?id=1dmZrcVJUAWkPBGza_XgswSuT-UODXZcO).
Its settings, from scripts/launch_BigGAN_bs256x8.sh and scripts/sample_BigGAN_bs256x8.sh:
resolution 128 (I128_hdf5), 1000 classes, G_ch 96, D_ch 96, dim_z 120, shared_dim 128, --hier,
--G_shared, G_attn 64, D_attn 64, BN_eps 1e-5, SN_eps 1e-6, norm_style bn (no --mybn, no
--cross_replica), sampled with --use_ema --G_eval_mode. Everything but the two eps values is read
from the tensors; the eps values are not stored in a checkpoint, so --bn-eps/--sn-eps default to
that model's 1e-5/1e-6. Other sources need theirs: train.py's own defaults are BN_eps 1e-5,
SN_eps 1e-8; TFHub/converter.py ports TF-Hub BigGAN with BN_eps 1e-4, SN_eps 1e-4 (and leaves out
the sv0 buffers, which this script then fills with 1, their initial value; sv0 is only logged).

Inferred from shapes and key names: resolution (number of G blocks), g_ch/d_ch (last channel
counts), n_classes, shared_dim (shared.weight), hier (ccbn input width > shared_dim), dim_z
(linear.weight in-features times the number of z chunks when hier), g_attn/d_attn (which block
carries `blocks.<i>.1.*`, named by BigGAN.py's arch-table resolution). Flags override; the full key
set and every shape are then checked against the architecture the config describes, and any
mismatch is an error listing the offending keys.

Not supported (refused with a message): several attention blocks in one network (G_attn/D_attn like
'32_64', D_attn 16 at resolution 32 where BigGAN.py's table labels all four D blocks 16, D_attn 4 at
resolution >= 64 where two D blocks are labelled 4), the thin SN-GAN discriminator (--D_thin),
--mybn/--cross_replica batch norms, output_dim > 1, resolution 512, non-SN parameterisations.
Note for users of other configs: BigGAN-PyTorch's output BN (output_layer.0) always uses eps 1e-5,
whatever BN_eps is.
"""
import argparse
import json
import pathlib
import re
import sys
from collections.abc import Mapping

import torch
from safetensors.torch import save_file

G_RESOLUTION_BY_BLOCKS = {3: 32, 4: 64, 5: 128, 6: 256}
D_RESOLUTION_BY_BLOCKS = {4: 32, 5: 64, 6: 128, 7: 256}
# BigGAN.py G_arch / D_arch channel multipliers; D in-multiplier None = the 3 image channels.
G_CHANNELS = {
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
}
D_LAYOUT = {  # in multipliers, out multipliers, downsample flags, arch-table resolution labels
    32: ([None, 4, 4, 4], [4, 4, 4, 4], [1, 1, 0, 0], [16, 16, 16, 16]),
    64: ([None, 1, 2, 4, 8], [1, 2, 4, 8, 16], [1, 1, 1, 1, 0], [32, 16, 8, 4, 4]),
    128: ([None, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [1, 1, 1, 1, 1, 0], [64, 32, 16, 8, 4, 4]),
    256: ([None, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [1, 1, 1, 1, 1, 1, 0], [128, 64, 32, 16, 8, 4, 4]),
}
DEFAULT_BN_EPS = 1e-5  # the 138k ImageNet-128 model (launch_BigGAN_bs256x8.sh)
DEFAULT_SN_EPS = 1e-6
CONFIG_KEYS = ("resolution", "g_ch", "d_ch", "dim_z", "n_classes", "shared_dim", "hier", "g_attn", "d_attn",
               "bn_eps", "sn_eps")
DROPPED_SUFFIXES = ("num_batches_tracked",)


class ConversionError(Exception):
    pass


def g_labels(resolution):
    return [8 * 2 ** i for i in range(len(G_CHANNELS[resolution][0]))]


# ----------------------------------------------------------------------------------------------
# Loading.

def _describe_keys(obj, limit=60):
    items = []
    for key, value in list(obj.items())[:limit]:
        kind = f"tensor{list(value.shape)}" if torch.is_tensor(value) else type(value).__name__
        items.append(f"  {key!s}: {kind}")
    more = f"\n  ... and {len(obj) - limit} more" if len(obj) > limit else ""
    return "\n".join(items) + more


def load_checkpoint(path, trust_pickle=False):
    """The tensors of a BigGAN-PyTorch G or D state dict (float32, num_batches_tracked dropped)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except Exception as err:  # noqa: BLE001 - report whatever torch says
        hint = "" if trust_pickle else " (if you trust the file, --trust-pickle loads it with weights_only=False)"
        raise ConversionError(f"{path}: torch.load failed: {err}{hint}") from err
    if not isinstance(obj, Mapping):
        raise ConversionError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    if "param_groups" in obj and "state" in obj:
        raise ConversionError(
            f"{path}: this is an optimizer state (G_optim.pth / D_optim.pth), not model weights; "
            f"give G.pth or G_ema.pth (and D.pth). Keys:\n{_describe_keys(obj)}")
    non_tensors = [k for k, v in obj.items() if not torch.is_tensor(v)]
    if non_tensors:
        what = ("BigGAN-PyTorch's training state (state_dict.pth)"
                if {"itr", "epoch"} & set(map(str, obj)) else "not a model state dict")
        raise ConversionError(
            f"{path}: {what}: entries that are not tensors: {non_tensors[:10]}. Keys:\n{_describe_keys(obj)}")
    keys = list(obj)
    if keys and all(str(k).startswith("module.") for k in keys):  # saved from a DataParallel wrapper
        obj = {str(k)[len("module."):]: v for k, v in obj.items()}
    state = {}
    for key, value in obj.items():
        if str(key).endswith(DROPPED_SUFFIXES):
            continue
        if not value.is_floating_point():
            raise ConversionError(f"{path}: tensor {key!r} has dtype {value.dtype}; BigGAN weights are floats. "
                                  f"Keys:\n{_describe_keys(obj)}")
        state[str(key)] = value.detach().to(torch.float32).contiguous()
    return state


# ----------------------------------------------------------------------------------------------
# Expected layouts.

def _sn_entries(shapes, prefix, weight_shape, bias=True, u_len=None):
    shapes[prefix + ".weight"] = tuple(weight_shape)
    if bias:
        shapes[prefix + ".bias"] = (weight_shape[0],)
    shapes[prefix + ".u0"] = (1, weight_shape[0] if u_len is None else u_len)
    shapes[prefix + ".sv0"] = (1,)


def _attention_entries(shapes, prefix, ch):
    _sn_entries(shapes, prefix + ".theta", (ch // 8, ch, 1, 1), bias=False)
    _sn_entries(shapes, prefix + ".phi", (ch // 8, ch, 1, 1), bias=False)
    _sn_entries(shapes, prefix + ".g", (ch // 2, ch, 1, 1), bias=False)
    _sn_entries(shapes, prefix + ".o", (ch, ch // 2, 1, 1), bias=False)
    shapes[prefix + ".gamma"] = ()


def expected_generator(cfg):
    res, ch = cfg["resolution"], cfg["g_ch"]
    ins, outs = G_CHANNELS[res]
    labels = g_labels(res)
    slots = len(ins) + 1 if cfg["hier"] else 1
    chunk = cfg["dim_z"] // slots if cfg["hier"] else 0
    shapes = {}
    if cfg["shared_dim"] > 0:
        shapes["shared.weight"] = (cfg["n_classes"], cfg["shared_dim"])
    _sn_entries(shapes, "linear", (ins[0] * ch * 16, cfg["dim_z"] // slots))
    for i, (a, b) in enumerate(zip(ins, outs)):
        cin, cout, p = a * ch, b * ch, f"blocks.{i}.0"
        _sn_entries(shapes, p + ".conv1", (cout, cin, 3, 3))
        _sn_entries(shapes, p + ".conv2", (cout, cout, 3, 3))
        _sn_entries(shapes, p + ".conv_sc", (cout, cin, 1, 1))
        for bn, c in (("bn1", cin), ("bn2", cout)):
            for part in ("gain", "bias"):
                if cfg["shared_dim"] > 0:
                    _sn_entries(shapes, f"{p}.{bn}.{part}", (c, cfg["shared_dim"] + chunk), bias=False)
                else:
                    shapes[f"{p}.{bn}.{part}.weight"] = (cfg["n_classes"], c)
            shapes[f"{p}.{bn}.stored_mean"] = (c,)
            shapes[f"{p}.{bn}.stored_var"] = (c,)
        if labels[i] == cfg["g_attn"]:
            _attention_entries(shapes, f"blocks.{i}.1", cout)
    last = outs[-1] * ch
    for name in ("gain", "bias", "stored_mean", "stored_var"):
        shapes[f"output_layer.0.{name}"] = (last,)
    _sn_entries(shapes, "output_layer.2", (3, last, 3, 3))
    return shapes


def expected_discriminator(cfg):
    res, ch = cfg["resolution"], cfg["d_ch"]
    ins, outs, downs, labels = D_LAYOUT[res]
    shapes = {}
    for i, (a, b, down, label) in enumerate(zip(ins, outs, downs, labels)):
        cin, cout, p = (3 if a is None else a * ch), b * ch, f"blocks.{i}.0"
        _sn_entries(shapes, p + ".conv1", (cout, cin, 3, 3))  # wide D: hidden = out channels
        _sn_entries(shapes, p + ".conv2", (cout, cout, 3, 3))
        if cin != cout or down:
            _sn_entries(shapes, p + ".conv_sc", (cout, cin, 1, 1))
        if label == cfg["d_attn"]:
            _attention_entries(shapes, f"blocks.{i}.1", cout)
    _sn_entries(shapes, "linear", (1, outs[-1] * ch))
    _sn_entries(shapes, "embed", (cfg["n_classes"], outs[-1] * ch), bias=False, u_len=cfg["n_classes"])
    return shapes


def check_against(state, shapes, what, path):
    """Fills missing sv0 (TF-Hub ports) with 1; any other difference is an error listing the keys."""
    notes = []
    missing_sv = [k for k in shapes if k.endswith(".sv0") and k not in state]
    for key in missing_sv:
        state[key] = torch.ones(1)
    if missing_sv:
        notes.append(f"{what}: {len(missing_sv)} sv0 buffers missing (a TF-Hub port?), filled with 1 (only logged)")
    missing = sorted(set(shapes) - set(state))
    unexpected = sorted(set(state) - set(shapes))
    wrong = sorted(k for k in set(shapes) & set(state) if tuple(state[k].shape) != tuple(shapes[k]))
    if missing or unexpected or wrong:
        lines = [f"{path}: the {what} tensors do not match the architecture of the config"]
        if missing:
            lines.append(f"  missing ({len(missing)}): {missing[:20]}")
        if unexpected:
            lines.append(f"  unexpected ({len(unexpected)}): {unexpected[:20]}")
        for k in wrong[:20]:
            lines.append(f"  {k}: shape {list(state[k].shape)}, expected {list(shapes[k])}")
        if any(".bn." in k or k.endswith("accumulation_counter") or k.endswith("running_mean") for k in unexpected):
            lines.append("  (keys like bn1.bn.* come from --mybn or --cross_replica batch norms: not supported)")
        raise ConversionError("\n".join(lines))
    return notes


# ----------------------------------------------------------------------------------------------
# Inference.

def _block_indices(state, sub):
    pattern = re.compile(r"^blocks\.(\d+)\." + re.escape(sub))
    return sorted({int(m.group(1)) for k in state for m in [pattern.match(k)] if m})


def _require(state, keys, what, path):
    absent = [k for k in keys if k not in state]
    if absent:
        raise ConversionError(f"{path}: does not look like a BigGAN-PyTorch {what} state dict (no {absent}). "
                              f"Keys:\n{_describe_keys(state)}")


def infer_generator(state, path="generator"):
    """Config fields read off a G state dict (resolution, g_ch, dim_z, n_classes, shared_dim, hier, g_attn)."""
    _require(state, ["linear.weight", "output_layer.2.weight", "blocks.0.0.conv1.weight",
                     "blocks.0.0.bn1.gain.weight"], "Generator", path)
    n_blocks = len(_block_indices(state, "0.conv1.weight"))
    if n_blocks not in G_RESOLUTION_BY_BLOCKS:
        raise ConversionError(f"{path}: {n_blocks} generator blocks; supported: "
                              f"{ {v: k for k, v in G_RESOLUTION_BY_BLOCKS.items()} } (resolution: blocks)")
    res = G_RESOLUTION_BY_BLOCKS[n_blocks]
    last = state["output_layer.2.weight"].shape[1]
    mult = G_CHANNELS[res][1][-1]
    if last % mult:
        raise ConversionError(f"{path}: output_layer.2.weight has {last} input channels, not a multiple of {mult}")
    cfg = {"resolution": res, "g_ch": last // mult}
    gain = state["blocks.0.0.bn1.gain.weight"]
    linear_in = state["linear.weight"].shape[1]
    if "shared.weight" in state:
        cfg["n_classes"], cfg["shared_dim"] = map(int, state["shared.weight"].shape)
        chunk = gain.shape[1] - cfg["shared_dim"]
        if chunk < 0:
            raise ConversionError(f"{path}: blocks.0.0.bn1.gain.weight has {gain.shape[1]} in-features, fewer than "
                                  f"shared_dim {cfg['shared_dim']}")
        cfg["hier"] = chunk > 0
        if cfg["hier"]:
            if linear_in != chunk:
                raise ConversionError(f"{path}: hierarchical z chunk is {chunk} (bn gain in-features minus shared_dim) "
                                      f"but linear.weight has {linear_in} in-features")
            cfg["dim_z"] = chunk * (n_blocks + 1)
        else:
            cfg["dim_z"] = linear_in
    else:  # not G_shared: per-layer nn.Embedding gains [n_classes, C]
        if "blocks.0.0.bn1.gain.u0" in state:
            raise ConversionError(f"{path}: SN-linear BN gains but no shared.weight; "
                                  "not a G_shared=False layout either")
        cfg["n_classes"] = int(gain.shape[0])
        cfg["shared_dim"] = 0
        cfg["hier"] = False
        cfg["dim_z"] = linear_in
    attn = _block_indices(state, "1.gamma")
    labels = g_labels(res)
    if len(attn) > 1:
        raise ConversionError(f"{path}: attention after G blocks {attn} (resolutions {[labels[i] for i in attn]}); "
                              "biggan.json holds one G attention block")
    cfg["g_attn"] = labels[attn[0]] if attn and attn[0] < len(labels) else 0
    return cfg


def infer_discriminator(state, path="discriminator"):
    """Config fields read off a D state dict (resolution, d_ch, n_classes, d_attn)."""
    _require(state, ["linear.weight", "embed.weight", "blocks.0.0.conv1.weight"], "Discriminator", path)
    n_blocks = len(_block_indices(state, "0.conv1.weight"))
    if n_blocks not in D_RESOLUTION_BY_BLOCKS:
        raise ConversionError(f"{path}: {n_blocks} discriminator blocks; supported: "
                              f"{ {v: k for k, v in D_RESOLUTION_BY_BLOCKS.items()} } (resolution: blocks)")
    res = D_RESOLUTION_BY_BLOCKS[n_blocks]
    out_dim, last = state["linear.weight"].shape
    if out_dim != 1:
        raise ConversionError(f"{path}: linear.weight is {list(state['linear.weight'].shape)}: output_dim {out_dim} "
                              "is not supported (1 expected)")
    mult = D_LAYOUT[res][1][-1]
    if last % mult:
        raise ConversionError(f"{path}: linear.weight has {last} in-features, not a multiple of {mult}")
    cfg = {"resolution": res, "d_ch": last // mult, "n_classes": int(state["embed.weight"].shape[0])}
    conv1 = state["blocks.0.0.conv1.weight"]
    if conv1.shape[0] != cfg["d_ch"] * D_LAYOUT[res][1][0]:
        raise ConversionError(f"{path}: blocks.0.0.conv1.weight is {list(conv1.shape)}: a thin (SN-GAN, --D_thin) "
                              "discriminator, not supported (wide D expected)")
    attn = _block_indices(state, "1.gamma")
    labels = D_LAYOUT[res][3]
    if len(attn) > 1:
        why = ""
        if len({labels[i] for i in attn if i < len(labels)}) == 1:
            why = (f" (BigGAN.py's D table labels these blocks all {labels[attn[0]]}, so D_attn "
                   f"'{labels[attn[0]]}' attaches attention to each of them)")
        raise ConversionError(f"{path}: attention after D blocks {attn}{why}; biggan.json holds one D attention block")
    cfg["d_attn"] = labels[attn[0]] if attn and attn[0] < len(labels) else 0
    return cfg


# ----------------------------------------------------------------------------------------------
# Driver.

def find_files(source, use_ema=True, name_suffix="", discriminator=None, no_discriminator=False):
    """(generator path, discriminator path or None) from a folder or a G file."""
    source = pathlib.Path(source)
    suffix = f"_{name_suffix}" if name_suffix else ""
    if source.is_dir():
        candidates = ([f"G_ema{suffix}.pth"] if use_ema else []) + [f"G{suffix}.pth"]
        found = [source / c for c in candidates if (source / c).is_file()]
        if not found:
            contents = sorted(p.name for p in source.iterdir())
            raise ConversionError(f"{source}: none of {candidates} there (contents: {contents})")
        g_path = found[0]
        d_default = source / f"D{suffix}.pth"
    elif source.is_file():
        g_path, d_default = source, None
    else:
        raise ConversionError(f"{source}: no such file or folder")
    if no_discriminator:
        return g_path, None
    if discriminator is not None:
        return g_path, pathlib.Path(discriminator)
    return g_path, d_default if d_default is not None and d_default.is_file() else None


def build_config(g_state, d_state, overrides, g_path="generator", d_path="discriminator"):
    """biggan.json dict: inferred values, then overrides (None = keep), then checks. Returns (config, notes)."""
    notes = []
    cfg = infer_generator(g_state, g_path)
    d_cfg = infer_discriminator(d_state, d_path) if d_state is not None else None
    if d_cfg is not None:
        if d_cfg["resolution"] != cfg["resolution"]:
            raise ConversionError(f"{d_path} is a resolution-{d_cfg['resolution']} D but {g_path} a "
                                  f"resolution-{cfg['resolution']} G")
        if d_cfg["n_classes"] != cfg["n_classes"]:
            raise ConversionError(f"{d_path} has {d_cfg['n_classes']} classes (embed.weight) but {g_path} "
                                  f"{cfg['n_classes']}")
        cfg["d_ch"], cfg["d_attn"] = d_cfg["d_ch"], d_cfg["d_attn"]
    else:
        d_labels = D_LAYOUT[cfg["resolution"]][3]
        single = cfg["g_attn"] in d_labels and d_labels.count(cfg["g_attn"]) == 1
        cfg["d_ch"], cfg["d_attn"] = cfg["g_ch"], cfg["g_attn"] if single else 0
        notes.append(f"no discriminator: d_ch {cfg['d_ch']} and d_attn {cfg['d_attn']} taken from G "
                     "(override with --d-ch/--d-attn)")
    cfg["bn_eps"], cfg["sn_eps"] = DEFAULT_BN_EPS, DEFAULT_SN_EPS
    for key, value in overrides.items():
        if value is None:
            continue
        if key in ("bn_eps", "sn_eps"):
            cfg[key] = float(value)
        elif key == "hier":
            cfg[key] = bool(value)
        else:
            if key in cfg and cfg[key] != value:
                notes.append(f"{key}: {cfg[key]} read from the tensors, {value} from the command line")
            cfg[key] = int(value)
    if cfg["resolution"] not in G_CHANNELS:
        raise ConversionError(f"resolution {cfg['resolution']}: supported {sorted(G_CHANNELS)}")
    if cfg["hier"] and cfg["shared_dim"] <= 0:
        raise ConversionError("hier needs a shared embedding (shared_dim > 0): BigGAN-PyTorch concatenates the "
                              "z chunks to shared(y)")
    if cfg["hier"]:
        slots = len(G_CHANNELS[cfg["resolution"]][0]) + 1
        effective = cfg["dim_z"] // slots * slots
        if effective != cfg["dim_z"]:
            notes.append(f"dim_z {cfg['dim_z']} -> {effective}: hier splits z into {slots} equal chunks "
                         "(BigGAN-PyTorch does the same)")
            cfg["dim_z"] = effective
    g_allowed = g_labels(cfg["resolution"])
    if cfg["g_attn"] and cfg["g_attn"] not in g_allowed:
        raise ConversionError(f"g_attn {cfg['g_attn']}: a resolution-{cfg['resolution']} G has blocks at {g_allowed} "
                              "(0 = no attention)")
    d_labels = D_LAYOUT[cfg["resolution"]][3]
    d_allowed = sorted(label for label in set(d_labels) if d_labels.count(label) == 1)
    if cfg["d_attn"] and cfg["d_attn"] not in d_allowed:
        raise ConversionError(f"d_attn {cfg['d_attn']}: at resolution {cfg['resolution']} one D attention block can "
                              f"sit at {d_allowed} (BigGAN.py's D table labels {d_labels}; 0 = no attention)")
    notes += check_against(g_state, expected_generator(cfg), "generator", g_path)
    if d_state is not None:
        notes += check_against(d_state, expected_discriminator(cfg), "discriminator", d_path)
    return {k: cfg[k] for k in CONFIG_KEYS}, notes


def convert(source, output_dir, overrides=None, use_ema=True, name_suffix="", discriminator=None,
            no_discriminator=False, trust_pickle=False, log=print):
    """Converts; returns the biggan.json dict. Raises ConversionError on anything unexpected."""
    g_path, d_path = find_files(source, use_ema, name_suffix, discriminator, no_discriminator)
    g_state = load_checkpoint(g_path, trust_pickle)
    d_state = load_checkpoint(d_path, trust_pickle) if d_path is not None else None
    cfg, notes = build_config(g_state, d_state, overrides or {}, str(g_path), str(d_path))
    out = pathlib.Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"format": "pt", "source": "BigGAN-PyTorch"}
    save_file(dict(sorted(g_state.items())), str(out / "generator.safetensors"), metadata={**meta, "file": g_path.name})
    if d_state is not None:
        save_file(dict(sorted(d_state.items())), str(out / "discriminator.safetensors"),
                  metadata={**meta, "file": d_path.name})
    (out / "biggan.json").write_text(json.dumps(cfg, indent=1) + "\n")
    for note in notes:
        log(f"note: {note}")
    log(f"{g_path} -> {out / 'generator.safetensors'} ({len(g_state)} tensors)")
    if d_state is not None:
        log(f"{d_path} -> {out / 'discriminator.safetensors'} ({len(d_state)} tensors)")
    log(f"{out / 'biggan.json'}: {json.dumps(cfg)}")
    return cfg


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="See the module docstring (head of this file) for details.")
    parser.add_argument("source", help="BigGAN-PyTorch weights folder, or a G .pth file")
    parser.add_argument("-o", "--output-dir", required=True)
    parser.add_argument("--discriminator", help="D .pth file (default: D.pth of the source folder, when present)")
    parser.add_argument("--no-discriminator", action="store_true", help="convert G only")
    parser.add_argument("--no-ema", dest="use_ema", action="store_false",
                        help="from a folder, use G.pth rather than the EMA copy G_ema.pth")
    parser.add_argument("--name-suffix", default="", help="e.g. best0 for G_ema_best0.pth / D_best0.pth")
    parser.add_argument("--trust-pickle", action="store_true", help="torch.load with weights_only=False")
    parser.add_argument("--resolution", type=int)
    parser.add_argument("--g-ch", type=int)
    parser.add_argument("--d-ch", type=int)
    parser.add_argument("--dim-z", type=int)
    parser.add_argument("--n-classes", type=int)
    parser.add_argument("--shared-dim", type=int)
    parser.add_argument("--hier", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--g-attn", type=int, help="resolution of G's attention block, 0 = none")
    parser.add_argument("--d-attn", type=int, help="resolution of D's attention block, 0 = none")
    parser.add_argument("--bn-eps", type=float, help=f"BigGAN-PyTorch's BN_eps (default {DEFAULT_BN_EPS})")
    parser.add_argument("--sn-eps", type=float, help=f"BigGAN-PyTorch's SN_eps (default {DEFAULT_SN_EPS})")
    args = parser.parse_args(argv)
    overrides = {k: getattr(args, k) for k in ("resolution", "g_ch", "d_ch", "dim_z", "n_classes", "shared_dim",
                                               "hier", "g_attn", "d_attn", "bn_eps", "sn_eps")}
    try:
        convert(args.source, args.output_dir, overrides, args.use_ema, args.name_suffix, args.discriminator,
                args.no_discriminator, args.trust_pickle)
    except ConversionError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
