"""Independent NumPy implementations of polynomial attention and of the polysketch feature map check
ours (`smyrf attend`, which writes the sketch matrices it drew), with padding and causal masks at odd
sizes. Conventions are those of core/attention/polysketch.h: logits s q.k with s = 1/sqrt(D),
weights (s q.k)^4, output sum_j w_ij v_j / (1 + sum_j w_ij); the sketch
phi(x) = (x' S1) * (x' S2) / sqrt(r) with x' = sqrt(s) x, weights <phi(q), phi(k)>^2."""
import subprocess

import h5py
import numpy as np
import pytest


def write_capture(path, rng, B=2, H=2, N=45, M=37, D=8, E=5, causal=False):
    M = N if causal else M
    q = rng.normal(size=(B, H, N, D))
    k = rng.normal(size=(B, H, M, D))
    v = rng.normal(size=(B, H, M, E))
    key_keep = np.ones((B, M), dtype=np.int8)
    key_keep[1, M - 9:] = 0  # padded tail of batch row 1
    k[1, :, M - 9:] = np.nan  # must never leak
    v[1, :, M - 9:] = np.nan
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "smyrf-captured-qkv"
        g = f.create_group("layer0")
        g["q"], g["k"], g["v"], g["key_keep"] = q, k, v, key_keep
        g.attrs["causal"] = int(causal)
    return q, np.nan_to_num(k), np.nan_to_num(v), key_keep.astype(bool)


def numpy_attention(weights_fn, q, k, v, keep, causal):
    """o_i = sum_j w_ij v_j / (1 + sum_j w_ij) over kept (and, if causal, earlier) keys."""
    B, H, N, _ = q.shape
    M = k.shape[2]
    out = np.zeros((B, H, N, v.shape[-1]))
    for b in range(B):
        for h in range(H):
            w = weights_fn(q[b, h], k[b, h])  # [N, M]
            mask = np.broadcast_to(keep[b][None, :], (N, M)).copy()
            if causal:
                mask &= np.tril(np.ones((N, M), dtype=bool))
            w = np.where(mask, w, 0.0)
            out[b, h] = (w @ v[b, h]) / (1.0 + w.sum(-1, keepdims=True))
    return out


def run_attend(smyrf_cli, capture, out_path, attention):
    proc = subprocess.run([str(smyrf_cli), "attend", str(capture), "--group", "layer0", "--attention", attention,
                           "--output", str(out_path), "--seed", "7", "--float64"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return h5py.File(out_path, "r")


@pytest.mark.parametrize("causal", [False, True])
def test_polynomial_attention_matches_numpy(smyrf_cli, tmp_path, causal):
    q, k, v, keep = write_capture(tmp_path / "qkv.h5", np.random.default_rng(1), causal=causal)
    s = 1.0 / np.sqrt(q.shape[-1])
    expected = numpy_attention(lambda a, b: (s * a @ b.T) ** 4, q, k, v, keep, causal)
    with run_attend(smyrf_cli, tmp_path / "qkv.h5", tmp_path / "out.h5", '{"method": "polynomial"}') as f:
        np.testing.assert_allclose(f["out_BHNE"][...], expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("causal,local_exact", [(False, False), (True, False), (True, True)])
def test_polysketch_matches_numpy_on_the_same_sketch(smyrf_cli, tmp_path, causal, local_exact):
    q, k, v, keep = write_capture(tmp_path / "qkv.h5", np.random.default_rng(2), causal=causal)
    D = q.shape[-1]
    s, r, block = 1.0 / np.sqrt(D), 8, 16
    attention = f'{{"method": "polysketch", "sketch_size": {r}, "block": {block}, "local_exact": {str(local_exact).lower()}}}'
    with run_attend(smyrf_cli, tmp_path / "qkv.h5", tmp_path / "out.h5", attention) as f:
        ours = f["out_BHNE"][...]
        s1, s2 = f["aux/sketch_1_DF"][...], f["aux/sketch_2_DF"][...]
    assert s1.shape == (D, r) and s2.shape == (D, r)

    def phi(x):
        x = np.sqrt(s) * x
        return (x @ s1) * (x @ s2) / np.sqrt(r)

    def weights(a, b):
        w = (phi(a) @ phi(b).T) ** 2
        if local_exact:  # exact degree-4 weights inside each diagonal block
            same_block = (np.arange(a.shape[0])[:, None] // block) == (np.arange(b.shape[0])[None, :] // block)
            w = np.where(same_block, (s * a @ b.T) ** 4, w)
        return w

    expected = numpy_attention(weights, q, k, v, keep, causal)
    np.testing.assert_allclose(ours, expected, rtol=1e-9, atol=1e-12)
    # the sketch approximates polynomial attention, not exactly: a different function would fail above
    exact = numpy_attention(lambda a, b: (s * a @ b.T) ** 4, q, k, v, keep, causal)
    assert np.abs(ours - exact).max() > 1e-6


def test_exact_tensor_products_are_the_degree_four_feature_map(smyrf_cli, tmp_path):
    q, k, v, keep = write_capture(tmp_path / "qkv.h5", np.random.default_rng(3))
    s = 1.0 / np.sqrt(q.shape[-1])
    # NumPy: vec(x x^T) . vec(y y^T) = (x.y)^2, squared = (x.y)^4
    x, y = q[0, 0, 0], k[0, 0, 0]
    assert np.isclose(np.dot(np.outer(x, x).ravel(), np.outer(y, y).ravel()) ** 2, np.dot(x, y) ** 4)
    expected = numpy_attention(lambda a, b: (s * a @ b.T) ** 4, q, k, v, keep, False)
    with run_attend(smyrf_cli, tmp_path / "qkv.h5", tmp_path / "out.h5",
                    '{"method": "polysketch", "sketch": "exact", "block": 7}') as f:
        np.testing.assert_allclose(f["out_BHNE"][...], expected, rtol=1e-9, atol=1e-12)


def test_attend_rejects_bad_json_and_missing_groups(smyrf_cli, tmp_path):
    write_capture(tmp_path / "qkv.h5", np.random.default_rng(4))
    bad = subprocess.run([str(smyrf_cli), "attend", str(tmp_path / "qkv.h5"), "--group", "layer0", "--attention",
                          "{method: polysketch", "--output", str(tmp_path / "o.h5")], capture_output=True, text=True)
    assert bad.returncode == 2 and "--attention is not valid JSON" in bad.stderr
    missing = subprocess.run([str(smyrf_cli), "attend", str(tmp_path / "qkv.h5"), "--group", "layer9", "--attention",
                              '{"method": "dense"}', "--output", str(tmp_path / "o.h5")], capture_output=True, text=True)
    assert missing.returncode == 2 and "layer0" in missing.stderr
