"""BigGAN: scripts/convert_biggan_pytorch.py, the Python oracle (biggan_reference.py), and the C++ model against it.

(a) Converter round trip on random checkpoints in BigGAN-PyTorch format (written by the oracle's
    random_*_state_dict, saved with torch.save like train.py's save_weights): key set (num_batches_tracked
    dropped), float32 dtypes, values, the inferred biggan.json, EMA/non-EMA choice, float16 input, and
    loud refusals (optimizer state, training state, inconsistent flags, several attention blocks).
(b) `smyrf biggan-forward --model biggan.json --weights generator.safetensors --discriminator
    discriminator.safetensors --inputs in.h5 --output out.h5` (in.h5: z [B, dim_z], y [B] class ids
    and x [B, 3, R, R], float32; out.h5: images [B, 3, R, R], d_out [B]; eval mode, dense attention)
    on the converter's output against the oracle in float64: max |diff| <= 1e-4 for images, and
    <= 1e-4 * max(1, max |d_out|) for the discriminator logits (unbounded, up to ~20 here).
    A binary without the subcommand fails these tests.
(c) The oracle itself: spectral norm against numpy's SVD, attention block against a per-position
    loop, gamma = 0 removes attention, tanh range, train-mode BN/SN buffer updates re-derived by hand,
    float32 close to float64, and that each test config can tell apart the mistakes a port is likely
    to make (sigma from sv0 instead of a power iteration, 1/sqrt(d) scaling, gamma ignored, output BN
    with BN_eps instead of 1e-5) by more than 10x the tolerance.
The oracle matched BigGAN-PyTorch's own BigGAN.py/layers.py to ~1e-13 (float64, eval and train, every
resolution) when it was written; `python3 tests/python/test_biggan_convert.py BIGGAN_PYTORCH_DIR`
repeats that check against a checkout of github.com/ajbrock/BigGAN-PyTorch (not a pytest test: the
checkout is not on the test machines).
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_biggan_convert.py
"""
import contextlib
import importlib.util
import io
import json
import pathlib
import subprocess
import sys
import types

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open
from safetensors.torch import load_file

import biggan_reference as ref
from conftest import ROOT

CONVERTER = ROOT / "scripts" / "convert_biggan_pytorch.py"
TOL = 1e-4
BATCH = 3

# Tiny configs, chosen so that every difference the C++ port could get wrong shows (see
# test_reference_sensitivity). BigGAN-PyTorch's resolution-32 D table labels all four blocks 16, so
# a d_attn of 16 there means four attention blocks: D attention is exercised at 64 and 128 instead.
CONFIGS = {
    "r32_hier": dict(ref.TINY_CONFIG),
    "r64_shared": dict(resolution=64, g_ch=4, d_ch=8, dim_z=16, n_classes=7, shared_dim=8, hier=False, g_attn=32,
                       d_attn=8, bn_eps=1e-3, sn_eps=1e-8),
    "r32_embedding_bn": dict(resolution=32, g_ch=4, d_ch=2, dim_z=12, n_classes=3, shared_dim=0, hier=False,
                             g_attn=32, d_attn=0, bn_eps=1e-5, sn_eps=1e-4),
    "r128_hier": dict(resolution=128, g_ch=8, d_ch=8, dim_z=24, n_classes=10, shared_dim=8, hier=True, g_attn=64,
                      d_attn=64, bn_eps=1e-5, sn_eps=1e-6),
}


def _load_converter():
    spec = importlib.util.spec_from_file_location("convert_biggan_pytorch", CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CONVERTER_MODULE = _load_converter()


def run_converter(*args, in_process=True):
    """The converter's command line: in this process (fast) or as a subprocess. -> returncode, stdout, stderr."""
    args = [str(a) for a in args]
    if not in_process:
        return subprocess.run([sys.executable, str(CONVERTER), *args], capture_output=True, text=True, cwd=ROOT)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = CONVERTER_MODULE.main(args)
        except SystemExit as exit_:  # argparse errors
            code = exit_.code
    return types.SimpleNamespace(returncode=code, stdout=out.getvalue(), stderr=err.getvalue())


def inputs_for(config, seed=5):
    """float32 z [B, dim_z], y [B] (class ids as floats), x [B, 3, R, R] in [-1, 1].

    x is smooth (bilinear upsampling of an R/8 grid, then tanh) like an image, so D's features do
    not average away through the pools as they would for pixel noise."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(BATCH, config["dim_z"], generator=gen)
    y = torch.randint(0, config["n_classes"], (BATCH,), generator=gen).float()
    y[0] = config["n_classes"] - 1  # the last class too
    res = config["resolution"]
    coarse = torch.randn(BATCH, 3, res // 8, res // 8, generator=gen)
    x = torch.tanh(2 * F.interpolate(coarse, size=(res, res), mode="bilinear", align_corners=False))
    return z, y, x


def write_checkpoint_folder(folder, config, seed=1):
    """A BigGAN-PyTorch weights folder: G.pth, G_ema.pth, D.pth, G_optim.pth, state_dict.pth.

    Returns the G_ema, G and D state dicts written (float32)."""
    folder.mkdir(parents=True, exist_ok=True)
    g_ema = ref.random_generator_state_dict(config, seed)
    g_raw = {k: v + 0.01 if k.endswith(".weight") else v.clone() for k, v in g_ema.items()}
    d_state = ref.random_discriminator_state_dict(config, seed)
    with_counter = dict(g_ema)
    with_counter["blocks.0.0.bn1.num_batches_tracked"] = torch.tensor(1234, dtype=torch.int64)
    torch.save(with_counter, folder / "G_ema.pth")
    torch.save(g_raw, folder / "G.pth")
    torch.save(d_state, folder / "D.pth")
    params = [torch.nn.Parameter(v.clone()) for v in list(g_raw.values())[:3]]
    optim = torch.optim.Adam(params, lr=1e-4)
    sum(p.sum() for p in params).backward()
    optim.step()
    torch.save(optim.state_dict(), folder / "G_optim.pth")
    torch.save({"itr": 138000, "epoch": 3, "best_FID": 9.0, "config": {"G_ch": config["g_ch"]}},
               folder / "state_dict.pth")
    return g_ema, g_raw, d_state


def assert_same_tensors(path, expected):
    loaded = load_file(str(path))
    assert set(loaded) == set(expected), (sorted(set(loaded) ^ set(expected)))[:20]
    for key, value in expected.items():
        assert loaded[key].dtype == torch.float32, key
        assert tuple(loaded[key].shape) == tuple(value.shape), key
        assert torch.equal(loaded[key], value.to(torch.float32)), key


# ----------------------------------------------------------------------------------------------
# (a) Converter.

@pytest.mark.parametrize("name", list(CONFIGS))
def test_converter_round_trip(name, tmp_path):
    config = CONFIGS[name]
    g_ema, g_raw, d_state = write_checkpoint_folder(tmp_path / "ckpt", config)
    out = tmp_path / "out"
    proc = run_converter(tmp_path / "ckpt", "-o", out, "--bn-eps", config["bn_eps"], "--sn-eps", config["sn_eps"],
                         in_process=name != "r32_hier")  # once through the real command line
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_tensors(out / "generator.safetensors", g_ema)  # the EMA copy, num_batches_tracked dropped
    assert_same_tensors(out / "discriminator.safetensors", d_state)
    written = json.loads((out / "biggan.json").read_text())
    assert list(written) == list(CONVERTER_MODULE.CONFIG_KEYS)
    assert written == config
    assert isinstance(written["hier"], bool) and all(
        isinstance(written[k], int) for k in written if k not in ("hier", "bn_eps", "sn_eps"))
    with safe_open(str(out / "generator.safetensors"), "pt") as f:
        assert f.metadata()["source"] == "BigGAN-PyTorch"

    # G.pth with --no-ema, G only; eps flags absent -> the 138k model's values.
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "raw", "--no-ema", "--no-discriminator")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_tensors(tmp_path / "raw" / "generator.safetensors", g_raw)
    assert not (tmp_path / "raw" / "discriminator.safetensors").exists()
    raw_config = json.loads((tmp_path / "raw" / "biggan.json").read_text())
    assert raw_config["bn_eps"] == 1e-5 and raw_config["sn_eps"] == 1e-6
    d_labels = [block["label"] for block in ref.d_arch(config)]
    d_attn_from_g = config["g_attn"] if d_labels.count(config["g_attn"]) == 1 else 0  # one D block there
    assert raw_config["d_ch"] == config["g_ch"] and raw_config["d_attn"] == d_attn_from_g
    assert "no discriminator" in proc.stdout


def test_converter_float16_and_file_arguments(tmp_path):
    config = CONFIGS["r32_hier"]
    g_state = ref.random_generator_state_dict(config, 3)
    d_state = ref.random_discriminator_state_dict(config, 3)
    torch.save({k: v.half() for k, v in g_state.items()}, tmp_path / "gen.pth")
    torch.save(d_state, tmp_path / "disc.pth")
    proc = run_converter(tmp_path / "gen.pth", "--discriminator", tmp_path / "disc.pth", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_tensors(tmp_path / "out" / "generator.safetensors", {k: v.half().float() for k, v in g_state.items()})
    assert_same_tensors(tmp_path / "out" / "discriminator.safetensors", d_state)


def test_converter_fills_missing_sv0(tmp_path):
    """TF-Hub ports (BigGAN-PyTorch's TFHub/converter.py) carry no sv0: filled with 1, their initial value."""
    config = CONFIGS["r64_shared"]
    g_state = ref.random_generator_state_dict(config, 3)
    torch.save({k: v for k, v in g_state.items() if not k.endswith(".sv0")}, tmp_path / "G.pth")
    proc = run_converter(tmp_path / "G.pth", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sv0" in proc.stdout
    loaded = load_file(str(tmp_path / "out" / "generator.safetensors"))
    assert set(loaded) == set(g_state)
    assert all(torch.equal(loaded[k], torch.ones(1)) for k in g_state if k.endswith(".sv0"))


def test_converter_rejects_optimizer_and_training_state(tmp_path):
    write_checkpoint_folder(tmp_path, CONFIGS["r32_hier"])
    proc = run_converter(tmp_path / "G_optim.pth", "-o", tmp_path / "out")
    assert proc.returncode != 0
    assert "optimizer state" in proc.stderr and "param_groups" in proc.stderr, proc.stderr
    proc = run_converter(tmp_path / "state_dict.pth", "-o", tmp_path / "out")
    assert proc.returncode != 0
    assert "state_dict.pth" in proc.stderr and "itr" in proc.stderr, proc.stderr
    assert not (tmp_path / "out" / "generator.safetensors").exists()


def test_converter_rejects_other_models(tmp_path):
    torch.save({"encoder.layer.0.weight": torch.zeros(2, 2), "encoder.layer.0.bias": torch.zeros(2)},
               tmp_path / "x.pth")
    proc = run_converter(tmp_path / "x.pth", "-o", tmp_path / "out")
    assert proc.returncode != 0
    assert "does not look like a BigGAN-PyTorch Generator" in proc.stderr and "encoder.layer.0.weight" in proc.stderr


def test_converter_checks_flags_against_shapes(tmp_path):
    config = CONFIGS["r32_hier"]
    write_checkpoint_folder(tmp_path / "ckpt", config)
    # hier at resolution 32: 4 chunks of 5; dim_z 24 gives chunks of 6.
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "out", "--dim-z", 24)
    assert proc.returncode != 0
    assert "linear.weight: shape [256, 5], expected [256, 6]" in proc.stderr, proc.stderr
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "out", "--g-attn", 32)
    assert proc.returncode != 0
    assert "blocks.1.1.gamma" in proc.stderr and "blocks.2.1.gamma" in proc.stderr, proc.stderr
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "out", "--g-attn", 12)
    assert proc.returncode != 0 and "g_attn 12" in proc.stderr
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "out", "--shared-dim", 0, "--hier")
    assert proc.returncode != 0 and "hier needs a shared embedding" in proc.stderr
    # dim_z 23 with hier: BigGAN-PyTorch rounds down to 4 chunks of 5, so does the converter.
    proc = run_converter(tmp_path / "ckpt", "-o", tmp_path / "out", "--dim-z", 23)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "biggan.json").read_text())["dim_z"] == 20


def test_converter_rejects_several_attention_blocks(tmp_path):
    """BigGAN-PyTorch's D table at resolution 32 labels all four blocks 16: D_attn '16' means four blocks."""
    config = dict(CONFIGS["r32_hier"], d_attn=16)
    d_state = ref.random_discriminator_state_dict(config, 1)
    assert {k.split(".")[1] for k in d_state if k.endswith(".gamma")} == {"0", "1", "2", "3"}
    torch.save(ref.random_generator_state_dict(config, 1), tmp_path / "G.pth")
    torch.save(d_state, tmp_path / "D.pth")
    proc = run_converter(tmp_path, "-o", tmp_path / "out")
    assert proc.returncode != 0
    assert "attention after D blocks [0, 1, 2, 3]" in proc.stderr and "labels these blocks all 16" in proc.stderr
    g_multi = ref.random_generator_state_dict(dict(CONFIGS["r64_shared"], g_attn="16_32"), 1)
    torch.save(g_multi, tmp_path / "G2.pth")
    proc = run_converter(tmp_path / "G2.pth", "-o", tmp_path / "out")
    assert proc.returncode != 0 and "attention after G blocks [1, 2]" in proc.stderr


# ----------------------------------------------------------------------------------------------
# (b) The C++ model against the oracle.

@pytest.fixture(scope="module", params=list(CONFIGS))
def cpp_run(request, smyrf_cli, tmp_path_factory):
    """(config, converted state dicts, inputs, out.h5 path, process) of one biggan-forward run."""
    name = request.param
    config = CONFIGS[name]
    tmp = tmp_path_factory.mktemp(f"biggan_{name}")
    write_checkpoint_folder(tmp / "ckpt", config, seed=2)
    proc = run_converter(tmp / "ckpt", "-o", tmp / "model", "--bn-eps", config["bn_eps"], "--sn-eps", config["sn_eps"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    z, y, x = inputs_for(config)
    with h5py.File(tmp / "in.h5", "w") as f:
        f.create_dataset("z", data=z.numpy().astype(np.float32))
        f.create_dataset("y", data=y.numpy().astype(np.float32))
        f.create_dataset("x", data=x.numpy().astype(np.float32))
    out = tmp / "out.h5"
    cmd = [str(smyrf_cli), "biggan-forward", "--model", str(tmp / "model" / "biggan.json"),
           "--weights", str(tmp / "model" / "generator.safetensors"),
           "--discriminator", str(tmp / "model" / "discriminator.safetensors"),
           "--inputs", str(tmp / "in.h5"), "--output", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
    g_state = load_file(str(tmp / "model" / "generator.safetensors"))
    d_state = load_file(str(tmp / "model" / "discriminator.safetensors"))
    return dict(name=name, config=config, g=g_state, d=d_state, z=z, y=y, x=x, out=out, proc=proc, cmd=cmd)


def _cpp_output(run, dataset, shape):
    proc = run["proc"]
    assert proc.returncode == 0, f"{' '.join(run['cmd'])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    with h5py.File(run["out"], "r") as f:
        assert dataset in f, f"{run['out']} lacks /{dataset}: {list(f)}"
        data = f[dataset]
        assert data.dtype == np.float32, data.dtype
        assert data.shape == shape, data.shape
        return torch.from_numpy(data[()]).double()


def test_cpp_generator_matches_reference(cpp_run):
    config = cpp_run["config"]
    res = config["resolution"]
    images = _cpp_output(cpp_run, "images", (BATCH, 3, res, res))
    expected = ref.generator_forward(cpp_run["g"], config, cpp_run["z"].double(), cpp_run["y"])
    diff = (images - expected).abs().max().item()
    assert diff <= TOL, f"{cpp_run['name']}: images differ from the oracle by {diff:.3g} (> {TOL})"


def test_cpp_discriminator_matches_reference(cpp_run):
    config = cpp_run["config"]
    d_out = _cpp_output(cpp_run, "d_out", (BATCH,))
    expected = ref.discriminator_forward(cpp_run["d"], config, cpp_run["x"].double(), cpp_run["y"])
    tol = TOL * max(1.0, expected.abs().max().item())
    diff = (d_out - expected).abs().max().item()
    assert diff <= tol, (f"{cpp_run['name']}: d_out {d_out.tolist()} vs oracle {expected.tolist()} "
                         f"(|diff| {diff:.3g} > {tol:.3g})")


# ----------------------------------------------------------------------------------------------
# (c) The oracle.

def test_reference_spectral_norm_matches_svd():
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(12, 5, 3, 3, generator=gen, dtype=torch.float64)
    top = np.linalg.svd(weight.reshape(12, -1).numpy(), compute_uv=False)[0]
    u = F.normalize(torch.randn(1, 12, generator=gen, dtype=torch.float64), dim=1)
    sigma, u1 = ref.sn_sigma(weight, u, 1e-12)
    assert sigma.item() <= top * (1 + 1e-12)  # one iteration from a random u under-estimates
    assert abs(torch.linalg.vector_norm(u1).item() - 1) < 1e-12
    for _ in range(500):
        sigma, u = ref.sn_sigma(weight, u, 1e-12)
    assert abs(sigma.item() - top) < 1e-9 * top
    # the normalised weight has spectral norm 1
    normalised = (weight / sigma).reshape(12, -1).numpy()
    assert abs(np.linalg.svd(normalised, compute_uv=False)[0] - 1) < 1e-9
    # eps: a zero weight gives a zero u instead of NaN
    sigma0, u0 = ref.sn_sigma(torch.zeros(3, 4, dtype=torch.float64), u[:, :3], 1e-6)
    assert sigma0.item() == 0 and torch.all(u0 == 0)


def test_reference_attention_block_matches_loop():
    config = CONFIGS["r64_shared"]
    state = ref.random_generator_state_dict(config, 4, calibrate_batch=0)
    prefix = "blocks.2.1"
    c = state[prefix + ".o.weight"].shape[0]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, c, 8, 6, generator=gen, dtype=torch.float64)
    got = ref.attention_block_forward(state, prefix, x, config["sn_eps"])

    def w(name):
        weight = state[f"{prefix}.{name}.weight"].double()
        sigma, _ = ref.sn_sigma(weight, state[f"{prefix}.{name}.u0"].double(), config["sn_eps"])
        return (weight / sigma).reshape(weight.shape[0], -1).numpy()

    xs = x.numpy()
    theta = np.einsum("oc,bchw->bohw", w("theta"), xs)
    phi = np.einsum("oc,bchw->bohw", w("phi"), xs)
    g = np.einsum("oc,bchw->bohw", w("g"), xs)
    pool = lambda t: t.reshape(t.shape[0], t.shape[1], t.shape[2] // 2, 2, t.shape[3] // 2, 2).max(axis=(3, 5))
    phi, g = pool(phi), pool(g)
    expected = np.empty_like(xs)
    for b in range(2):
        keys = phi[b].reshape(phi.shape[1], -1)
        values = g[b].reshape(g.shape[1], -1)
        for i in range(8):
            for j in range(6):
                logits = theta[b, :, i, j] @ keys  # no 1/sqrt(d)
                p = np.exp(logits - logits.max())
                p /= p.sum()
                o = w("o") @ (values @ p)
                expected[b, :, i, j] = xs[b, :, i, j] + state[prefix + ".gamma"].item() * o
    assert np.abs(got.numpy() - expected).max() < 1e-12


@pytest.mark.parametrize("name", ["r32_hier", "r64_shared"])
def test_reference_gamma_zero_is_no_attention(name):
    config = CONFIGS[name]
    g_state = ref.random_generator_state_dict(config, 6)
    d_state = ref.random_discriminator_state_dict(config, 6)
    z, y, x = inputs_for(config)
    zero = lambda s: {k: torch.zeros(()) if k.endswith(".gamma") else v for k, v in s.items()}
    strip = lambda s: {k: v for k, v in s.items() if not (k.startswith("blocks.") and k.split(".")[2] == "1")}
    plain = dict(config, g_attn=0, d_attn=0)
    a = ref.generator_forward(zero(g_state), config, z.double(), y)
    b = ref.generator_forward(strip(g_state), plain, z.double(), y)
    assert torch.equal(a, b)
    assert not torch.equal(a, ref.generator_forward(g_state, config, z.double(), y))
    if config["d_attn"]:
        a = ref.discriminator_forward(zero(d_state), config, x.double(), y)
        assert torch.equal(a, ref.discriminator_forward(strip(d_state), plain, x.double(), y))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_reference_shapes_range_and_key_use(name):
    config = CONFIGS[name]
    g_state = ref.random_generator_state_dict(config, 7)
    d_state = ref.random_discriminator_state_dict(config, 7)
    z, y, x = inputs_for(config)
    images, unused = ref.generator_forward(g_state, config, z.double(), y, return_unused=True)
    assert unused == []  # every tensor of the state dict takes part
    res = config["resolution"]
    assert images.shape == (BATCH, 3, res, res)
    assert images.abs().max() <= 1
    assert (images.abs() > 0.99).double().mean() < 0.05  # not saturated: differences stay visible
    logits, unused = ref.discriminator_forward(d_state, config, x.double(), y, return_unused=True)
    assert unused == [] and logits.shape == (BATCH,) and torch.isfinite(logits).all()
    # float32 computation stays well inside the C++ tolerance
    assert (ref.generator_forward(g_state, config, z, y).double() - images).abs().max() < TOL / 10
    d_scale = max(1.0, logits.abs().max().item())
    assert (ref.discriminator_forward(d_state, config, x, y).double() - logits).abs().max() < TOL / 10 * d_scale


def test_reference_train_mode_updates():
    config = CONFIGS["r32_hier"]
    state = ref.random_generator_state_dict(config, 8)
    z, y, _ = inputs_for(config)
    z = z.double()
    eval_images = ref.generator_forward(state, config, z, y)
    images, updates = ref.generator_forward(state, config, z, y, train=True)
    assert not torch.allclose(images, eval_images)
    assert set(updates) == {k for k in state if k.rsplit(".", 1)[1] in ("u0", "sv0", "stored_mean", "stored_var")}
    assert torch.equal(ref.generator_forward(state, config, z, y), eval_images)  # state left untouched
    # the first BN (blocks.0.0.bn1) sees linear(z chunk 0), re-derived here
    chunk = config["dim_z"] // 4
    weight = state["linear.weight"].double()
    sigma, u_new = ref.sn_sigma(weight, state["linear.u0"].double(), config["sn_eps"])
    h = (z[:, :chunk] @ (weight / sigma).t() + state["linear.bias"].double()).reshape(BATCH, -1, 4, 4)
    mean = h.mean(dim=(0, 2, 3))
    var_unbiased = h.var(dim=(0, 2, 3), unbiased=True)
    old_mean, old_var = state["blocks.0.0.bn1.stored_mean"].double(), state["blocks.0.0.bn1.stored_var"].double()
    assert torch.allclose(updates["blocks.0.0.bn1.stored_mean"], 0.9 * old_mean + 0.1 * mean, atol=1e-12)
    assert torch.allclose(updates["blocks.0.0.bn1.stored_var"], 0.9 * old_var + 0.1 * var_unbiased, atol=1e-12)
    assert torch.allclose(updates["linear.u0"], u_new, atol=1e-14)
    assert torch.allclose(updates["linear.sv0"], sigma.reshape(1), atol=1e-14)
    for key, value in updates.items():
        if key.endswith(".u0"):
            assert abs(torch.linalg.vector_norm(value).item() - 1) < 1e-12, key
    # D: only u0/sv0 change
    d_state = ref.random_discriminator_state_dict(config, 8)
    x_in = inputs_for(config)[2]
    logits, d_updates = ref.discriminator_forward(d_state, config, x_in.double(), y, train=True)
    assert torch.allclose(logits, ref.discriminator_forward(d_state, config, x_in.double(), y))
    assert set(d_updates) == {k for k in d_state if k.endswith((".u0", ".sv0"))}
    assert d_updates["embed.u0"].shape == (1, config["n_classes"])


# (variant, applies?) pairs; each applicable variant must move the outputs by >= 10x the tolerance.
def _variants(config):
    def attention_channels(which):
        if which == "g":
            blocks = [b for b in ref.g_arch(config) if b["attention"]]
        else:
            blocks = [b for b in ref.d_arch(config) if b["attention"]]
        return blocks[0]["cout"] // 8 if blocks else 0

    return {
        "sigma from sv0": (dict(use_stored_sv=True), True, True),
        "1/sqrt(d) scaling": (dict(attention=ref.scaled_attention), attention_channels("g") > 1,
                              attention_channels("d") > 1),
        "output BN with bn_eps": (dict(output_bn_eps=config["bn_eps"]), config["bn_eps"] >= 1e-3, False),
    }


def test_reference_sensitivity():
    """Every mistake in _variants shows in at least one config's images or logits, by >= 10x the tolerance."""
    seen = {}
    for name, config in CONFIGS.items():
        g_state = ref.random_generator_state_dict(config, 2)
        d_state = ref.random_discriminator_state_dict(config, 2)
        z, y, x = inputs_for(config)
        images = ref.generator_forward(g_state, config, z.double(), y)
        logits = ref.discriminator_forward(d_state, config, x.double(), y)
        d_tol = TOL * max(1.0, logits.abs().max().item())
        for variant, (kwargs, on_g, on_d) in _variants(config).items():
            if on_g:
                diff = (ref.generator_forward(g_state, config, z.double(), y, **kwargs) - images).abs().max().item()
                assert diff > 10 * TOL, (name, variant, diff)
                seen.setdefault(variant, []).append(f"{name} G")
            if on_d:
                d_kwargs = {k: v for k, v in kwargs.items() if k != "output_bn_eps"}
                variant_logits = ref.discriminator_forward(d_state, config, x.double(), y, **d_kwargs)
                diff = (variant_logits - logits).abs().max().item()
                assert diff > 10 * d_tol, (name, variant, diff)
                seen.setdefault(variant, []).append(f"{name} D")
        nets = (("G", g_state, ref.generator_forward, z.double(), images, TOL),
                ("D", d_state, ref.discriminator_forward, x.double(), logits, d_tol))
        for net, state, fwd, inp, ref_out, tol in nets:
            if any(k.endswith(".gamma") for k in state):
                zeroed = {k: torch.zeros(()) if k.endswith(".gamma") else v for k, v in state.items()}
                diff = (fwd(zeroed, config, inp, y) - ref_out).abs().max().item()
                assert diff > 10 * tol, (name, net, "gamma ignored", diff)
                seen.setdefault("gamma ignored", []).append(f"{name} {net}")
    assert set(seen) == {"sigma from sv0", "1/sqrt(d) scaling", "output BN with bn_eps", "gamma ignored"}, seen
    for variant in ("1/sqrt(d) scaling", "gamma ignored"):
        assert any(s.endswith(" D") for s in seen[variant]), (variant, seen[variant])


def compare_with_biggan_pytorch(source):
    """The oracle against BigGAN-PyTorch's own modules (not vendored), from a checkout at `source`."""
    sys.path.insert(0, str(pathlib.Path(source)))
    try:
        import BigGAN  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    for name, config in dict(CONFIGS, r32_d_attn16=dict(CONFIGS["r32_hier"], d_attn=16)).items():
        g_state = ref.random_generator_state_dict(config, 9)
        d_state = ref.random_discriminator_state_dict(config, 9)
        z, y, x = inputs_for(config)
        for train in (False, True):
            G = BigGAN.Generator(G_ch=config["g_ch"], dim_z=config["dim_z"], resolution=config["resolution"],
                                 G_attn=str(config["g_attn"]), n_classes=config["n_classes"],
                                 G_shared=config["shared_dim"] > 0, shared_dim=config["shared_dim"],
                                 hier=config["hier"], BN_eps=config["bn_eps"], SN_eps=config["sn_eps"],
                                 skip_init=True, no_optim=True).double()
            D = BigGAN.Discriminator(D_ch=config["d_ch"], resolution=config["resolution"], D_attn=str(config["d_attn"]),
                                     n_classes=config["n_classes"], SN_eps=config["sn_eps"], skip_init=True).double()
            G.load_state_dict({k: v.double() for k, v in g_state.items()}, strict=True)
            D.load_state_dict({k: v.double() for k, v in d_state.items()}, strict=True)
            G.train(train)
            D.train(train)
            with torch.no_grad():
                theirs = G(z.double(), G.shared(y.long()))
                their_logits = D(x.double(), y.long()).squeeze(1)
            ours = ref.generator_forward(g_state, config, z.double(), y, train=train)
            our_logits = ref.discriminator_forward(d_state, config, x.double(), y, train=train)
            if train:
                (ours, g_upd), (our_logits, d_upd) = ours, our_logits
                for module, upd in ((G, g_upd), (D, d_upd)):
                    sd = module.state_dict()
                    for key, value in upd.items():
                        assert (sd[key] - value).abs().max() < 1e-12, (name, key)
            assert (theirs - ours).abs().max() < 1e-10, name
            assert (their_logits - our_logits).abs().max() < 1e-10 * max(1, their_logits.abs().max().item()), name


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: test_biggan_convert.py BIGGAN_PYTORCH_CHECKOUT")
    compare_with_biggan_pytorch(sys.argv[1])
    print("reference matches BigGAN-PyTorch (eval and train, every test config)")
