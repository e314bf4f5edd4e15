"""FID, KID and IS of `smyrf` (experiments/metrics/image_metrics.cpp, core/models/inception_fid.cpp) against
independent Python oracles.

* Fréchet distance vs pytorch-fid's formula with scipy.linalg.sqrtm (real part) on statistics written
  with h5py: random SPD covariances at D = 64, and D = 2048 from N = 1000 < D features (singular
  covariances, as with too few images); relative agreement 1e-6.
* KID vs a numpy unbiased polynomial-kernel MMD² on the whole sets (--subsets 1 --subset-size n, which
  draws nothing), 1e-9; the Inception Score vs numpy on random logits, 1e-9.
* The network: a Python reference of the FID Inception-v3 forward written with torch.nn.functional
  only (no torchvision), on random weights under pytorch-fid's state_dict names, saved as a .pth with
  num_batches_tracked, converted by scripts/convert_fid_inception.py and run through `smyrf fid-stats
  --features-output` on 3 random uint8 images of 96×80 (so the bilinear resize to 299 matters), in
  two batches; pool3 and logits agree to 1e-4 of their scale. Also the converter's refusals and the
  CLI's exit codes (2 for mismatched feature files, 3 for missing weights).
Run: SMYRF_BUILD_DIR=build python3 -m pytest -q tests/python/test_fid.py
"""
import importlib.util
import json
import subprocess
import sys

import h5py
import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from conftest import ROOT

CONVERTER = ROOT / "scripts/convert_fid_inception.py"
_spec = importlib.util.spec_from_file_location("convert_fid_inception", CONVERTER)
convert_fid_inception = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(convert_fid_inception)


def run_cli(smyrf_cli, *args, expect=0):
    proc = subprocess.run([str(smyrf_cli), *map(str, args)], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == expect, proc.stdout + proc.stderr
    return proc


def cli_json(smyrf_cli, *args):
    return json.loads(run_cli(smyrf_cli, *args).stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- Fréchet distance

def write_stats(path, mu, sigma, count, **attrs):
    with h5py.File(path, "w") as f:
        f["mu"] = mu
        f["sigma"] = sigma
        f.attrs["count"] = count
        for k, v in attrs.items():
            f.attrs[k] = v
    return path


def scipy_fid(mu1, s1, mu2, s2):
    """pytorch-fid's calculate_frechet_distance, without its eps fallback (not needed here)."""
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    assert np.isfinite(covmean).all()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean).real)


def random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_matches_scipy_sqrtm_d64(smyrf_cli, tmp_path):
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.standard_normal(64), rng.standard_normal(64) * 0.5
    s1, s2 = random_spd(rng, 64), random_spd(rng, 64)
    a = write_stats(tmp_path / "a.h5", mu1, s1, 5000)
    b = write_stats(tmp_path / "b.h5", mu2, s2, 5000)
    got = cli_json(smyrf_cli, "fid", "--stats", a, "--stats", b)["fid"]
    want = scipy_fid(mu1, s1, mu2, s2)
    assert abs(got - want) <= 1e-6 * abs(want), (got, want)
    same = cli_json(smyrf_cli, "fid", "--stats", a, "--stats", a)["fid"]
    assert abs(same) < 1e-9 * np.trace(s1)


def test_frechet_distance_matches_scipy_sqrtm_d2048_rank_deficient(smyrf_cli, tmp_path):
    # N = 1000 < D = 2048 features: covariances of rank 999, what too few images give.
    rng = np.random.default_rng(1)
    d, n = 2048, 1000
    x = rng.standard_normal((n, d)) * rng.uniform(0.2, 1.5, d)
    y = rng.standard_normal((n, d)) * rng.uniform(0.2, 1.5, d) + 0.1
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    a = write_stats(tmp_path / "a.h5", mu1, s1, n)
    b = write_stats(tmp_path / "b.h5", mu2, s2, n)
    proc = run_cli(smyrf_cli, "fid", "--stats", a, "--stats", b)
    assert "below 2048" in proc.stderr  # the sample-count warning
    got = json.loads(proc.stdout)["fid"]
    want = scipy_fid(mu1, s1, mu2, s2)
    assert abs(got - want) <= 1e-6 * abs(want), (got, want)


def test_fid_refuses_statistics_of_other_weights(smyrf_cli, tmp_path):
    mu, s = np.zeros(4), np.eye(4)
    a = write_stats(tmp_path / "a.h5", mu, s, 10, weights_sha256="aaaa")
    b = write_stats(tmp_path / "b.h5", mu, s, 10, weights_sha256="bbbb")
    proc = run_cli(smyrf_cli, "fid", "--stats", a, "--stats", b, expect=2)
    assert "different weights" in proc.stderr


# ---------------------------------------------------------------- KID and IS

def numpy_mmd2_unbiased(x, y):
    d = x.shape[1]
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
            - 2 * kxy.sum() / (m * n))


def write_features(path, pool3=None, logits=None):
    with h5py.File(path, "w") as f:
        if pool3 is not None:
            f["pool3"] = pool3
        if logits is not None:
            f["logits"] = logits
    return path


def test_kid_whole_sets_match_numpy(smyrf_cli, tmp_path):
    rng = np.random.default_rng(2)
    n, d = 120, 32
    x = rng.standard_normal((n, d)).astype(np.float32)
    y = (rng.standard_normal((n, d)) * 1.2 + 0.3).astype(np.float32)
    a, b = write_features(tmp_path / "a.h5", x), write_features(tmp_path / "b.h5", y)
    got = cli_json(smyrf_cli, "kid", "--features", a, "--features", b, "--subsets", 1, "--subset-size", n)
    want = numpy_mmd2_unbiased(x.astype(np.float64), y.astype(np.float64))
    assert abs(got["kid_mean"] - want) <= 1e-9 * max(1.0, abs(want)), (got, want)
    assert got["kid_std"] == 0.0
    # Random subsets: the same seed gives the same draws; the estimate stays near the whole-set one.
    sub = cli_json(smyrf_cli, "kid", "--features", a, "--features", b, "--subsets", 50, "--subset-size", 60, "--seed", 3)
    again = cli_json(smyrf_cli, "kid", "--features", a, "--features", b, "--subsets", 50, "--subset-size", 60,
                     "--seed", 3)
    assert sub == again
    assert sub["subset_size"] == 60 and sub["kid_std"] > 0
    assert abs(sub["kid_mean"] - want) < 4 * sub["kid_std"]


def numpy_inception_score(logits, splits):
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    n = len(p)
    scores = []
    for i in range(splits):
        part = p[i * n // splits:(i + 1) * n // splits]
        py = part.mean(axis=0, keepdims=True)
        kl = (part * (np.log(part) - np.log(py))).sum(axis=1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def test_inception_score_matches_numpy(smyrf_cli, tmp_path):
    rng = np.random.default_rng(3)
    logits = (rng.standard_normal((103, 1008)) * 3).astype(np.float32)
    f = write_features(tmp_path / "f.h5", logits=logits)
    got = cli_json(smyrf_cli, "inception-score", "--features", f, "--splits", 4)
    mean, std = numpy_inception_score(logits.astype(np.float64), 4)
    assert abs(got["is_mean"] - mean) <= 1e-9 * mean, (got, mean)
    assert abs(got["is_std"] - std) <= 1e-9 * max(1.0, std), (got, std)


# ---------------------------------------------------------------- the network

def reference_state_dict(seed):
    """Random weights under pytorch-fid's names and shapes: He-scaled convs, BatchNorm statistics near
    (0, 1) with positive variances, so activations keep their scale through all 94 layers."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in convert_fid_inception.expected_shapes().items():
        if key.endswith("conv.weight"):
            fan_in = shape[1] * shape[2] * shape[3]
            t = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("bn.weight") or key.endswith("bn.running_var"):
            t = torch.rand(shape, generator=g) * 0.4 + 0.8
        elif key.endswith("bn.bias") or key.endswith("bn.running_mean"):
            t = torch.randn(shape, generator=g) * 0.1
        elif key == "fc.weight":
            t = torch.randn(shape, generator=g) / shape[1] ** 0.5
        else:
            t = torch.randn(shape, generator=g) * 0.1
        state[key] = t
    return state


def reference_forward(state, images01):
    """pytorch-fid's FID Inception-v3 (resize, scale, stem, Mixed_5b..7c, pool3, fc) with F.* only."""
    def conv(prefix, x, stride=1, padding=0):
        x = F.conv2d(x, state[f"{prefix}.conv.weight"], stride=stride, padding=padding)
        x = F.batch_norm(x, state[f"{prefix}.bn.running_mean"], state[f"{prefix}.bn.running_var"],
                         state[f"{prefix}.bn.weight"], state[f"{prefix}.bn.bias"], training=False, eps=0.001)
        return F.relu(x)

    def tf_avg(x):
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)

    def block_a(p, x):
        b1 = conv(f"{p}.branch1x1", x)
        b5 = conv(f"{p}.branch5x5_2", conv(f"{p}.branch5x5_1", x), padding=2)
        b3 = conv(f"{p}.branch3x3dbl_1", x)
        b3 = conv(f"{p}.branch3x3dbl_3", conv(f"{p}.branch3x3dbl_2", b3, padding=1), padding=1)
        return torch.cat([b1, b5, b3, conv(f"{p}.branch_pool", tf_avg(x))], 1)

    def block_b(p, x):
        b3 = conv(f"{p}.branch3x3", x, stride=2)
        bd = conv(f"{p}.branch3x3dbl_2", conv(f"{p}.branch3x3dbl_1", x), padding=1)
        bd = conv(f"{p}.branch3x3dbl_3", bd, stride=2)
        return torch.cat([b3, bd, F.max_pool2d(x, 3, stride=2)], 1)

    def block_c(p, x):
        b1 = conv(f"{p}.branch1x1", x)
        b7 = conv(f"{p}.branch7x7_1", x)
        b7 = conv(f"{p}.branch7x7_2", b7, padding=(0, 3))
        b7 = conv(f"{p}.branch7x7_3", b7, padding=(3, 0))
        bd = conv(f"{p}.branch7x7dbl_1", x)
        for i, pad in [(2, (3, 0)), (3, (0, 3)), (4, (3, 0)), (5, (0, 3))]:
            bd = conv(f"{p}.branch7x7dbl_{i}", bd, padding=pad)
        return torch.cat([b1, b7, bd, conv(f"{p}.branch_pool", tf_avg(x))], 1)

    def block_d(p, x):
        b3 = conv(f"{p}.branch3x3_2", conv(f"{p}.branch3x3_1", x), stride=2)
        b7 = conv(f"{p}.branch7x7x3_1", x)
        b7 = conv(f"{p}.branch7x7x3_2", b7, padding=(0, 3))
        b7 = conv(f"{p}.branch7x7x3_3", b7, padding=(3, 0))
        b7 = conv(f"{p}.branch7x7x3_4", b7, stride=2)
        return torch.cat([b3, b7, F.max_pool2d(x, 3, stride=2)], 1)

    def block_e(p, x, max_pool):
        b1 = conv(f"{p}.branch1x1", x)
        b3 = conv(f"{p}.branch3x3_1", x)
        b3 = torch.cat([conv(f"{p}.branch3x3_2a", b3, padding=(0, 1)), conv(f"{p}.branch3x3_2b", b3, padding=(1, 0))], 1)
        bd = conv(f"{p}.branch3x3dbl_2", conv(f"{p}.branch3x3dbl_1", x), padding=1)
        bd = torch.cat([conv(f"{p}.branch3x3dbl_3a", bd, padding=(0, 1)),
                        conv(f"{p}.branch3x3dbl_3b", bd, padding=(1, 0))], 1)
        pooled = F.max_pool2d(x, 3, stride=1, padding=1) if max_pool else tf_avg(x)
        return torch.cat([b1, b3, bd, conv(f"{p}.branch_pool", pooled)], 1)

    with torch.no_grad():
        x = F.interpolate(images01, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = conv("Conv2d_1a_3x3", x, stride=2)
        x = conv("Conv2d_2a_3x3", x)
        x = conv("Conv2d_2b_3x3", x, padding=1)
        x = F.max_pool2d(x, 3, stride=2)
        x = conv("Conv2d_3b_1x1", x)
        x = conv("Conv2d_4a_3x3", x)
        x = F.max_pool2d(x, 3, stride=2)
        for p in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = block_a(p, x)
        x = block_b("Mixed_6a", x)
        for p in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = block_c(p, x)
        x = block_d("Mixed_7a", x)
        x = block_e("Mixed_7b", x, max_pool=False)
        x = block_e("Mixed_7c", x, max_pool=True)
        pool3 = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        logits = F.linear(pool3, state["fc.weight"], state["fc.bias"])
    return pool3, logits


def assert_close_to_scale(got, want, name, tol=1e-4):
    scale = np.abs(want).max()
    worst = np.unravel_index(np.abs(got - want).argmax(), want.shape)
    err = np.abs(got - want).max() / scale
    report = f"{name}: max |diff| / scale = {err:.3g} at {worst} (ours {got[worst]}, ref {want[worst]}, tol {tol})"
    print(report)
    assert err <= tol, report


def test_network_matches_functional_reference_through_the_converter(smyrf_cli, tmp_path):
    state = reference_state_dict(seed=4)
    # A raw state_dict as torch saves it, with BatchNorm's step counters.
    raw = dict(state)
    for key in state:
        if key.endswith("bn.running_var"):
            raw[key.replace("running_var", "num_batches_tracked")] = torch.tensor(0, dtype=torch.long)
    pth = tmp_path / "pt_inception-random.pth"
    torch.save(raw, pth)
    weights = tmp_path / "inception_fid.safetensors"
    proc = subprocess.run([sys.executable, str(CONVERTER), str(pth), str(weights)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sha = convert_fid_inception.sha256_of(pth)
    assert sha in proc.stdout

    rng = np.random.default_rng(5)
    imgs = rng.integers(0, 256, size=(3, 3, 96, 80), dtype=np.uint8)
    images = tmp_path / "images.h5"
    with h5py.File(images, "w") as f:
        f["imgs"] = imgs
        f["labels"] = np.zeros(3, dtype=np.int64)
    stats, features = tmp_path / "stats.h5", tmp_path / "features.h5"
    run_cli(smyrf_cli, "fid-stats", "--weights", weights, "--images", images, "--output", stats, "--features-output",
            features, "--batch", 2, "--device", "cpu", "--no-progress")

    want_pool3, want_logits = reference_forward(state, torch.from_numpy(imgs).float() / 255)
    with h5py.File(features, "r") as f:
        got_pool3, got_logits = f["pool3"][()], f["logits"][()]
        assert f.attrs["weights_sha256"] == sha
        assert f.attrs["count"] == 3
    assert got_pool3.shape == (3, 2048) and got_logits.shape == (3, 1008)
    assert_close_to_scale(got_pool3, want_pool3.numpy(), "pool3")
    assert_close_to_scale(got_logits, want_logits.numpy(), "logits")
    with h5py.File(stats, "r") as f:
        np.testing.assert_allclose(f["mu"][()], got_pool3.astype(np.float64).mean(0), rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(f["sigma"][()], np.cov(got_pool3.astype(np.float64), rowvar=False),
                                   rtol=1e-5, atol=1e-9)
        assert f.attrs["feature"] == "pool3"
        assert "pt_inception-2015-12-05" in f.attrs["feature_network"]


def test_converter_refuses_other_state_dicts(tmp_path):
    # Expanded zeros: every shape at the cost of one stored element each.
    state = {k: torch.zeros(1).expand(s) for k, s in convert_fid_inception.expected_shapes().items()}
    del state["Mixed_6d.branch7x7dbl_3.bn.running_mean"]
    state["AuxLogits.fc.weight"] = torch.zeros(1).expand(1008, 768)
    state["fc.bias"] = torch.zeros(1000)
    pth, dst = tmp_path / "bad.pth", tmp_path / "bad.safetensors"
    torch.save(state, pth)
    with pytest.raises(ValueError) as error:
        convert_fid_inception.convert(str(pth), str(dst))
    for fragment in ("missing tensor Mixed_6d.branch7x7dbl_3.bn.running_mean", "unexpected tensor AuxLogits.fc.weight",
                     "tensor fc.bias has shape [1000], expected [1008]"):
        assert fragment in str(error.value)
    assert not dst.exists()


def test_fid_stats_without_weights_points_to_the_converter(smyrf_cli, tmp_path):
    images = tmp_path / "images.h5"
    with h5py.File(images, "w") as f:
        f["imgs"] = np.zeros((2, 3, 8, 8), dtype=np.uint8)
    proc = run_cli(smyrf_cli, "fid-stats", "--weights", tmp_path / "absent.safetensors", "--images", images,
                   "--output", tmp_path / "s.h5", expect=3)
    assert "convert_fid_inception.py" in proc.stderr
