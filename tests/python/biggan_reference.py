"""Independent functional oracle of BigGAN-PyTorch's Generator and Discriminator (github.com/ajbrock/BigGAN-PyTorch).

Not a test module: tests/python/test_biggan_convert.py imports it. Everything is plain
torch.nn.functional over a dict of tensors keyed exactly like BigGAN-PyTorch's state_dict
(`linear.u0`, `blocks.3.0.bn1.gain.weight`, `blocks.3.1.gamma`, `output_layer.2.weight`, `embed.u0`, ...)
and a config dict with the keys scripts/convert_biggan_pytorch.py writes to biggan.json:
    resolution, g_ch, d_ch, dim_z, n_classes, shared_dim (0 = no shared embedding: per-layer embedding
    gains), hier, g_attn, d_attn (0 = none; an int, or BigGAN-PyTorch's '32_64' string), bn_eps, sn_eps.
Computation runs in the dtype of the inputs (float64 for an oracle, float32 to mimic a float32 run).

Behaviour reproduced (read from BigGAN.py / layers.py, written anew here):
- Spectral norm, one singular vector, one power iteration per forward in either mode, from the stored
  u (shape [1, rows of W viewed as [rows, -1]]): v = n(u W), u' = n(v Wᵀ), sigma = v Wᵀ u'ᵀ with
  n(x) = x / max(|x|, sn_eps); the layer uses W / sigma; u' and sigma are stored (u0, sv0) only in
  training. u and v carry no gradient, sigma does. For the embedding of D, W is [n_classes, C].
- Conditional BN: x normalised with batch statistics (biased variance) in training, stored_mean /
  stored_var in eval, then * (1 + gain(c)) + bias(c). Running update in training, momentum 0.1, with
  the unbiased batch variance (torch.batch_norm's rule). gain/bias are bias-free SN linears of
  c = [shared(y), z chunk] (shared) or plain embeddings of the class id (not shared).
- Output BN (output_layer.0) has learned gain/bias and eps 1e-5 whatever BN_eps is (layers.bn is built
  without eps in BigGAN.py); `output_bn_eps` overrides it.
- Attention after every block whose *label* in BigGAN.py's arch table is in the attention set. The G
  labels are the blocks' output resolutions. The D labels are not always: at resolution 32 every D
  block is labelled 16, so d_attn 16 puts attention after all four D blocks, and at 64/128/256 the
  last two D blocks are both labelled 4.
"""
import math

import torch
import torch.nn.functional as F

OUTPUT_BN_EPS = 1e-5
BN_MOMENTUM = 0.1
BOTTOM_WIDTH = 4


# ----------------------------------------------------------------------------------------------
# Architecture tables (BigGAN.py G_arch / D_arch), as channel multipliers of ch.

_G_MULT = {  # resolution -> (in multipliers, out multipliers); every block upsamples by 2
    32: ([4, 4, 4], [4, 4, 4]),
    64: ([16, 16, 8, 4], [16, 8, 4, 2]),
    128: ([16, 16, 8, 4, 2], [16, 8, 4, 2, 1]),
    256: ([16, 16, 8, 8, 4, 2], [16, 8, 8, 4, 2, 1]),
}
_D_TABLE = {  # resolution -> (in multipliers, with None = 3 image channels; out multipliers; downsample; labels)
    32: ([None, 4, 4, 4], [4, 4, 4, 4], [True, True, False, False], [16, 16, 16, 16]),
    64: ([None, 1, 2, 4, 8], [1, 2, 4, 8, 16], [True] * 4 + [False], [32, 16, 8, 4, 4]),
    128: ([None, 1, 2, 4, 8, 16], [1, 2, 4, 8, 16, 16], [True] * 5 + [False], [64, 32, 16, 8, 4, 4]),
    256: ([None, 1, 2, 4, 8, 8, 16], [1, 2, 4, 8, 8, 16, 16], [True] * 6 + [False],
          [128, 64, 32, 16, 8, 4, 4]),
}


def attention_set(attn):
    """BigGAN-PyTorch's attention argument as a set of resolutions: 0/'0'/None -> empty, 64, '32_64'."""
    if attn is None:
        return set()
    if isinstance(attn, str):
        return {int(item) for item in attn.split("_") if int(item) != 0}
    return set() if int(attn) == 0 else {int(attn)}


def g_arch(config):
    """List of dicts (in, out, label, attention) per G block."""
    res, ch = int(config["resolution"]), int(config["g_ch"])
    if res not in _G_MULT:
        raise ValueError(f"resolution {res}: BigGAN G tables cover {sorted(_G_MULT)}")
    ins, outs = _G_MULT[res]
    attn = attention_set(config.get("g_attn", 0))
    labels = [8 * 2 ** i for i in range(len(ins))]
    return [dict(cin=ch * a, cout=ch * b, label=lab, attention=lab in attn)
            for a, b, lab in zip(ins, outs, labels)]


def d_arch(config):
    """List of dicts (in, out, downsample, label, attention, learnable_sc) per D block (wide D)."""
    res, ch = int(config["resolution"]), int(config["d_ch"])
    if res not in _D_TABLE:
        raise ValueError(f"resolution {res}: BigGAN D tables cover {sorted(_D_TABLE)}")
    ins, outs, downs, labels = _D_TABLE[res]
    attn = attention_set(config.get("d_attn", 0))
    blocks = []
    for a, b, down, lab in zip(ins, outs, downs, labels):
        cin = 3 if a is None else ch * a
        blocks.append(dict(cin=cin, cout=ch * b, downsample=down, label=lab, attention=lab in attn,
                           learnable_sc=(cin != ch * b) or down))
    return blocks


def num_slots(config):
    return len(g_arch(config)) + 1 if config.get("hier") else 1


def z_chunk(config):
    return int(config["dim_z"]) // num_slots(config) if config.get("hier") else 0


def shared_dim(config):
    return int(config.get("shared_dim", 0) or 0)


# ----------------------------------------------------------------------------------------------
# Building blocks.

class _Ctx:
    """Per-forward state: the tensors (cast to the compute dtype), mode and collected buffer updates."""

    def __init__(self, state, config, dtype, device, train, attention, use_stored_sv, output_bn_eps):
        self.state = {k: v.to(device=device, dtype=dtype) if v.is_floating_point() else v.to(device)
                      for k, v in state.items()}
        self.config = config
        self.train = train
        self.attention = attention or dense_attention
        self.use_stored_sv = use_stored_sv
        self.sn_eps = float(config["sn_eps"])
        self.bn_eps = float(config["bn_eps"])
        self.output_bn_eps = OUTPUT_BN_EPS if output_bn_eps is None else float(output_bn_eps)
        self.updates = {}
        self.used = set()

    def get(self, key):
        if key not in self.state:
            raise KeyError(f"state dict lacks {key!r}")
        self.used.add(key)
        return self.state[key]


def _normalize(x, eps):
    return x / torch.clamp(torch.linalg.vector_norm(x, dim=1, keepdim=True), min=eps)


def sn_sigma(weight, u, eps):
    """One power iteration from u ([1, rows]): (sigma, new u) for weight viewed as [rows, -1]."""
    w = weight.reshape(weight.shape[0], -1)
    with torch.no_grad():
        v = _normalize(u @ w, eps)
        u_new = _normalize(v @ w.t(), eps)
    sigma = (v @ w.t() @ u_new.t()).reshape(())
    return sigma, u_new


def _sn_weight(ctx, prefix):
    weight = ctx.get(prefix + ".weight")
    u = ctx.get(prefix + ".u0")
    ctx.used.add(prefix + ".sv0")
    if ctx.use_stored_sv:  # deliberately wrong variant, for sensitivity checks
        return weight / ctx.get(prefix + ".sv0").reshape(())
    sigma, u_new = sn_sigma(weight, u, ctx.sn_eps)
    if ctx.train:
        ctx.updates[prefix + ".u0"] = u_new.detach().clone()
        ctx.updates[prefix + ".sv0"] = sigma.detach().reshape(1).clone()
    return weight / sigma


def _sn_conv(ctx, prefix, x, padding, bias=True):
    b = ctx.get(prefix + ".bias") if bias else None
    return F.conv2d(x, _sn_weight(ctx, prefix), b, padding=padding)


def _sn_linear(ctx, prefix, x, bias=True):
    b = ctx.get(prefix + ".bias") if bias else None
    return F.linear(x, _sn_weight(ctx, prefix), b)


def _batch_norm(ctx, prefix, x, eps):
    """x normalised (no affine); in training also records the running-stat update."""
    mean_key, var_key = prefix + ".stored_mean", prefix + ".stored_var"
    stored_mean, stored_var = ctx.get(mean_key), ctx.get(var_key)
    if ctx.train:
        mean = x.mean(dim=(0, 2, 3))
        var = x.var(dim=(0, 2, 3), unbiased=False)
        n = x.numel() // x.shape[1]
        ctx.updates[mean_key] = ((1 - BN_MOMENTUM) * stored_mean + BN_MOMENTUM * mean).detach()
        ctx.updates[var_key] = ((1 - BN_MOMENTUM) * stored_var + BN_MOMENTUM * var * n / (n - 1)).detach()
    else:
        mean, var = stored_mean, stored_var
    return (x - mean.view(1, -1, 1, 1)) / torch.sqrt(var.view(1, -1, 1, 1) + eps)


def _ccbn(ctx, prefix, x, cond):
    """Class-conditional BN. cond: [B, shared_dim + chunk] float (shared) or [B] int64 class ids."""
    if shared_dim(ctx.config) > 0:
        gain = 1 + _sn_linear(ctx, prefix + ".gain", cond, bias=False)
        bias = _sn_linear(ctx, prefix + ".bias", cond, bias=False)
    else:
        gain = 1 + F.embedding(cond, ctx.get(prefix + ".gain.weight"))
        bias = F.embedding(cond, ctx.get(prefix + ".bias.weight"))
    out = _batch_norm(ctx, prefix, x, ctx.bn_eps)
    return out * gain[:, :, None, None] + bias[:, :, None, None]


def dense_attention(q, k, v):
    """softmax(q kᵀ) v with no 1/sqrt(d) scaling. q [B, X, D], k [B, M, D], v [B, M, E] -> [B, X, E]."""
    return torch.softmax(q @ k.transpose(1, 2), dim=-1) @ v


def scaled_attention(q, k, v):
    """softmax(q kᵀ / sqrt(D)) v: NOT BigGAN's; for checking a test can tell the difference."""
    return torch.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1) @ v


def _attention_block(ctx, prefix, x):
    b, c, h, w = x.shape
    theta = _sn_conv(ctx, prefix + ".theta", x, 0, bias=False)
    phi = F.max_pool2d(_sn_conv(ctx, prefix + ".phi", x, 0, bias=False), 2)
    g = F.max_pool2d(_sn_conv(ctx, prefix + ".g", x, 0, bias=False), 2)
    q = theta.reshape(b, c // 8, h * w).transpose(1, 2)
    k = phi.reshape(b, c // 8, -1).transpose(1, 2)
    v = g.reshape(b, c // 2, -1).transpose(1, 2)
    attended = ctx.attention(q, k, v)  # [B, X, C/2]
    o = _sn_conv(ctx, prefix + ".o", attended.transpose(1, 2).reshape(b, c // 2, h, w), 0, bias=False)
    return x + ctx.get(prefix + ".gamma").reshape(()) * o


def attention_block_forward(state, prefix, x, sn_eps, attention=None):
    """The attention block `prefix` (e.g. 'blocks.2.1') alone, eval mode: x [B, C, H, W] -> same shape."""
    ctx = _Ctx(state, {"sn_eps": sn_eps, "bn_eps": 0.0}, x.dtype, x.device, False, attention, False, None)
    return _attention_block(ctx, prefix, x)


# ----------------------------------------------------------------------------------------------
# Generator and discriminator.

def generator_forward(state, config, z, y, train=False, attention=None, use_stored_sv=False,
                      output_bn_eps=None, return_unused=False):
    """BigGAN-PyTorch G(z, G.shared(y)) from a state dict.

    z: [B, dim_z] float (its dtype is the compute dtype), y: [B] class ids (any numeric dtype).
    Returns images [B, 3, R, R]; in train mode returns (images, updates) where updates maps buffer
    names (every u0, sv0, stored_mean, stored_var the forward touched) to their new values.
    attention: f(q [B,X,D], k [B,M,D], v [B,M,E]) -> [B,X,E]; default dense_attention.
    """
    ctx = _Ctx(state, config, z.dtype, z.device, train, attention, use_stored_sv, output_bn_eps)
    blocks = g_arch(config)
    y = y.to(torch.int64)
    if shared_dim(config) > 0:
        emb = F.embedding(y, ctx.get("shared.weight"))
    else:
        if config.get("hier"):
            raise ValueError("hier needs a shared embedding (BigGAN-PyTorch concatenates z chunks to it)")
        emb = y
    if config.get("hier"):
        chunk = z_chunk(config)
        pieces = torch.split(z, chunk, dim=1)
        z0 = pieces[0]
        conds = [torch.cat([emb, pieces[i + 1]], dim=1) for i in range(len(blocks))]
    else:
        z0 = z
        conds = [emb] * len(blocks)
    h = _sn_linear(ctx, "linear", z0)
    h = h.reshape(h.shape[0], -1, BOTTOM_WIDTH, BOTTOM_WIDTH)
    for i, block in enumerate(blocks):
        p = f"blocks.{i}.0"
        x = h
        h = F.relu(_ccbn(ctx, p + ".bn1", x, conds[i]))
        h = F.interpolate(h, scale_factor=2, mode="nearest")
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        h = _sn_conv(ctx, p + ".conv1", h, 1)
        h = F.relu(_ccbn(ctx, p + ".bn2", h, conds[i]))
        h = _sn_conv(ctx, p + ".conv2", h, 1)
        h = h + _sn_conv(ctx, p + ".conv_sc", x, 0)  # every G block upsamples, so conv_sc always exists
        if block["attention"]:
            h = _attention_block(ctx, f"blocks.{i}.1", h)
    h = _batch_norm(ctx, "output_layer.0", h, ctx.output_bn_eps)
    h = h * ctx.get("output_layer.0.gain").view(1, -1, 1, 1) + ctx.get("output_layer.0.bias").view(1, -1, 1, 1)
    images = torch.tanh(_sn_conv(ctx, "output_layer.2", F.relu(h), 1))
    out = (images, ctx.updates) if train else images
    if return_unused:
        return out, sorted(set(state) - ctx.used)
    return out


def discriminator_forward(state, config, x, y, train=False, attention=None, use_stored_sv=False,
                          return_unused=False):
    """BigGAN-PyTorch D(x, y) from a state dict: x [B, 3, R, R], y [B] class ids -> [B] logits.

    In train mode returns (logits, updates) with the new u0/sv0 of every SN layer.
    """
    ctx = _Ctx(state, config, x.dtype, x.device, train, attention, use_stored_sv, None)
    y = y.to(torch.int64)
    h = x
    for i, block in enumerate(d_arch(config)):
        p = f"blocks.{i}.0"
        inp = h
        t = F.relu(inp) if i > 0 else inp  # preactivation in every block but the first
        t = _sn_conv(ctx, p + ".conv1", t, 1)
        t = _sn_conv(ctx, p + ".conv2", F.relu(t), 1)
        if block["downsample"]:
            t = F.avg_pool2d(t, 2)
        sc = inp
        if i > 0:  # preactivation blocks: conv then pool
            if block["learnable_sc"]:
                sc = _sn_conv(ctx, p + ".conv_sc", sc, 0)
            if block["downsample"]:
                sc = F.avg_pool2d(sc, 2)
        else:  # first block: pool then conv
            if block["downsample"]:
                sc = F.avg_pool2d(sc, 2)
            if block["learnable_sc"]:
                sc = _sn_conv(ctx, p + ".conv_sc", sc, 0)
        h = t + sc
        if block["attention"]:
            h = _attention_block(ctx, f"blocks.{i}.1", h)
    pooled = F.relu(h).sum(dim=(2, 3))
    out = _sn_linear(ctx, "linear", pooled)  # [B, 1]
    emb = F.embedding(y, _sn_weight(ctx, "embed"))
    out = (out + (emb * pooled).sum(dim=1, keepdim=True)).squeeze(1)
    result = (out, ctx.updates) if train else out
    if return_unused:
        return result, sorted(set(state) - ctx.used)
    return result


# ----------------------------------------------------------------------------------------------
# Random BigGAN-PyTorch-format state dicts.

def generator_shapes(config):
    """{key: shape} of a BigGAN-PyTorch Generator state dict (norm_style bn, no mybn/cross_replica)."""
    shapes = {}

    def sn(prefix, w_shape, bias=True):
        shapes[prefix + ".weight"] = tuple(w_shape)
        if bias:
            shapes[prefix + ".bias"] = (w_shape[0],)
        shapes[prefix + ".u0"] = (1, w_shape[0])
        shapes[prefix + ".sv0"] = (1,)

    blocks = g_arch(config)
    sd_ = shared_dim(config)
    n_classes = int(config["n_classes"])
    if sd_ > 0:
        shapes["shared.weight"] = (n_classes, sd_)
    sn("linear", (blocks[0]["cin"] * BOTTOM_WIDTH ** 2, int(config["dim_z"]) // num_slots(config)))
    for i, blk in enumerate(blocks):
        p = f"blocks.{i}.0"
        sn(p + ".conv1", (blk["cout"], blk["cin"], 3, 3))
        sn(p + ".conv2", (blk["cout"], blk["cout"], 3, 3))
        sn(p + ".conv_sc", (blk["cout"], blk["cin"], 1, 1))
        for bn, c in (("bn1", blk["cin"]), ("bn2", blk["cout"])):
            for part in ("gain", "bias"):
                if sd_ > 0:
                    sn(f"{p}.{bn}.{part}", (c, sd_ + z_chunk(config)), bias=False)
                else:
                    shapes[f"{p}.{bn}.{part}.weight"] = (n_classes, c)
            shapes[f"{p}.{bn}.stored_mean"] = (c,)
            shapes[f"{p}.{bn}.stored_var"] = (c,)
        if blk["attention"]:
            _attention_shapes(shapes, sn, f"blocks.{i}.1", blk["cout"])
    c = blocks[-1]["cout"]
    for name in ("gain", "bias", "stored_mean", "stored_var"):
        shapes[f"output_layer.0.{name}"] = (c,)
    sn("output_layer.2", (3, c, 3, 3))
    return shapes


def discriminator_shapes(config):
    """{key: shape} of a BigGAN-PyTorch Discriminator state dict (wide D, output_dim 1)."""
    shapes = {}

    def sn(prefix, w_shape, bias=True, rows=None):
        shapes[prefix + ".weight"] = tuple(w_shape)
        if bias:
            shapes[prefix + ".bias"] = (w_shape[0],)
        shapes[prefix + ".u0"] = (1, w_shape[0] if rows is None else rows)
        shapes[prefix + ".sv0"] = (1,)

    blocks = d_arch(config)
    for i, blk in enumerate(blocks):
        p = f"blocks.{i}.0"
        sn(p + ".conv1", (blk["cout"], blk["cin"], 3, 3))
        sn(p + ".conv2", (blk["cout"], blk["cout"], 3, 3))
        if blk["learnable_sc"]:
            sn(p + ".conv_sc", (blk["cout"], blk["cin"], 1, 1))
        if blk["attention"]:
            _attention_shapes(shapes, sn, f"blocks.{i}.1", blk["cout"])
    c = blocks[-1]["cout"]
    sn("linear", (1, c))
    sn("embed", (int(config["n_classes"]), c), bias=False)  # u0 is [1, n_classes]
    return shapes


def _attention_shapes(shapes, sn, prefix, c):
    sn(prefix + ".theta", (c // 8, c, 1, 1), bias=False)
    sn(prefix + ".phi", (c // 8, c, 1, 1), bias=False)
    sn(prefix + ".g", (c // 2, c, 1, 1), bias=False)
    sn(prefix + ".o", (c, c // 2, 1, 1), bias=False)
    shapes[prefix + ".gamma"] = ()


def _random_orthonormal(n, k, gen):
    """[n, k] with orthonormal columns (QR of a Gaussian, signs fixed)."""
    q, r = torch.linalg.qr(torch.randn(n, k, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r)).where(torch.diagonal(r) != 0, torch.ones(()))


def _fill_random(shapes, gen, spectrum_floor=0.5, bias_std=0.1, u_noise=0.7, dtype=torch.float32):
    """Random tensors for every key; SN states look like the end of training (u0 = the vector one power
    iteration produced from a partly converged u, sv0 = the sigma of that iteration), so the next
    iteration still moves u and sigma a little. SN weights are U diag(s) Vᵀ with s in
    [spectrum_floor, 1]; biases N(0, bias_std²); u_noise sets how far the u before that iteration was
    from the top singular vector."""
    state, top_vectors = {}, {}
    for key, shape in shapes.items():
        name = key.rsplit(".", 1)[1]
        if name == "gamma":
            sign = 1.0 if torch.rand((), generator=gen, dtype=torch.float64) < 0.5 else -1.0
            state[key] = torch.tensor(sign * (0.5 + 0.5 * torch.rand((), generator=gen, dtype=torch.float64).item()))
        elif name == "stored_mean":
            state[key] = 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name == "stored_var":
            state[key] = 0.5 + torch.rand(shape, generator=gen, dtype=torch.float64)
        elif name in ("u0", "sv0"):
            continue
        elif key == "shared.weight":
            state[key] = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif key.startswith("output_layer.0."):
            base = 1.0 if name == "gain" else 0.0
            state[key] = base + 0.1 * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif name == "bias" and len(shape) == 1:
            state[key] = bias_std * torch.randn(shape, generator=gen, dtype=torch.float64)
        elif key.endswith(".weight") and key[: -len(".weight")] + ".u0" in shapes:
            # U diag(s) Vᵀ with s in [spectrum_floor, 1]: features keep their scale through the layers (like
            # BigGAN's orthogonal init) while the spectrum stays spread (so the power iteration matters).
            rows, cols = shape[0], max(1, math.prod(shape[1:]))
            k = min(rows, cols)
            left = _random_orthonormal(rows, k, gen)
            right = _random_orthonormal(cols, k, gen)
            spread = torch.rand(k, generator=gen, dtype=torch.float64)
            spectrum = torch.sort(spectrum_floor + (1 - spectrum_floor) * spread, descending=True)[0]
            spectrum[0] = 1.0
            state[key] = ((left * spectrum) @ right.t()).reshape(shape)
            top_vectors[key] = left[:, 0]
        else:  # embeddings without SN (per-layer BN gains/biases when there is no shared embedding)
            state[key] = 0.3 * torch.randn(shape, generator=gen, dtype=torch.float64)
    for key, shape in shapes.items():
        if not key.endswith(".u0"):
            continue
        prefix = key[: -len(".u0")]
        w = state[prefix + ".weight"].reshape(shape[1], -1)
        top_u = top_vectors[prefix + ".weight"].reshape(1, -1)
        noise = torch.randn(shape, generator=gen, dtype=torch.float64) / math.sqrt(shape[1])
        u_prev = _normalize(top_u + u_noise * noise, 1e-12)
        sigma, u0 = sn_sigma(w, u_prev, 1e-12)
        state[key] = u0
        state[prefix + ".sv0"] = sigma.reshape(1)
    return {k: v.to(dtype) for k, v in state.items()}


def random_generator_state_dict(config, seed, calibrate_batch=16):
    """A random G state dict in BigGAN-PyTorch format for `config` (float32).

    stored_mean/stored_var are then set to the batch statistics of a train-mode pass over
    `calibrate_batch` random (z, y) (as standing stats would be), so eval mode stays in a sensible
    range (images not saturated at +-1); 0 keeps the random stored stats.
    """
    gen = torch.Generator().manual_seed(int(seed))
    state = _fill_random(generator_shapes(config), gen)
    if calibrate_batch:
        z = torch.randn(calibrate_batch, int(config["dim_z"]), generator=gen, dtype=torch.float64)
        y = torch.randint(0, int(config["n_classes"]), (calibrate_batch,), generator=gen)
        _, updates = generator_forward(state, config, z, y, train=True)
        for key in [k for k in state if k.endswith(".stored_mean") or k.endswith(".stored_var")]:
            # undo the momentum: the batch statistic itself (unbiased variance)
            batch_stat = (updates[key].double() - (1 - BN_MOMENTUM) * state[key].double()) / BN_MOMENTUM
            state[key] = batch_stat.float()
    return state


def random_discriminator_state_dict(config, seed):
    """A random D state dict in BigGAN-PyTorch format for `config` (float32).

    Spectra closer to 1 and larger biases than G's: D has no BN, so this keeps its features (and the
    attention logits) of order 1 through the blocks, as in a trained D."""
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    return _fill_random(discriminator_shapes(config), gen, spectrum_floor=0.8, bias_std=0.5, u_noise=1.5)


def random_state_dict(config, seed, net="G"):
    """Random BigGAN-PyTorch-format state dict for net 'G' or 'D'."""
    if net == "G":
        return random_generator_state_dict(config, seed)
    if net == "D":
        return random_discriminator_state_dict(config, seed)
    raise ValueError(f"net must be 'G' or 'D', not {net!r}")


# The brief's tiny config. d_attn is 0: at resolution 32 BigGAN.py's D table labels every block 16, so
# d_attn 16 would mean attention after all four D blocks (random_discriminator_state_dict does build
# that faithfully when asked).
TINY_CONFIG = {
    "resolution": 32, "g_ch": 4, "d_ch": 4, "dim_z": 20, "n_classes": 5, "shared_dim": 8, "hier": True,
    "g_attn": 16, "d_attn": 0, "bn_eps": 1e-4, "sn_eps": 1e-6,
}
