"""Sequence models (lstm, transformer, mamba): counts, shapes, causality, scans, derivatives."""

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from centralflows.engine import derivatives
from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models import get_architecture, mamba, transformer
from centralflows.problem.models.norms import RMSNorm, TrainableLayerNorm

SPEC = DataSpec(kind="sequence", input_shape=(15,), num_outputs=4, vocab_size=4)
COUNTS = {"lstm": 38_020, "transformer": 68_228, "mamba": 65_984}  # REFERENCE §3.3


def tokens(n, seed=0):
    return jnp.asarray(np.random.default_rng(seed).integers(0, 4, size=(n, 15)), jnp.int32)


def build(name, **overrides):
    return _build(name, tuple(sorted(overrides.items())))


@functools.cache  # compiling costs seconds on CPU: share models between tests
def _build(name, overrides):
    """(apply, params) with apply(params, tokens) -> logits, both jitted."""
    module = get_architecture(name)
    model = module.build({**module.DEFAULTS, **dict(overrides)}, SPEC)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), tokens(2))["params"]
    return jax.jit(lambda p, x: model.apply({"params": p}, x)), params


@pytest.mark.slow
@pytest.mark.parametrize("name", COUNTS)
def test_parameter_count(name):
    _, params = build(name)
    assert ravel_pytree(params)[0].shape == (COUNTS[name],)


@pytest.mark.slow
@pytest.mark.parametrize("name", COUNTS)
def test_forward_shape_finite_deterministic(name):
    apply, params = build(name)
    x = tokens(7)
    out = apply(params, x)
    assert out.shape == (7, 15, 4)
    assert bool(jnp.all(jnp.isfinite(out)))
    np.testing.assert_array_equal(out, apply(params, x))


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("lstm", {}),
        ("mamba", {"scan": "fused"}),
        ("mamba", {"scan": "parallel"}),
        ("mamba", {"scan": "sequential"}),
        ("transformer", {"cross_attention_mask": True, "weight_multiplier": 1.0}),
    ],
)
@pytest.mark.slow
def test_causal(name, overrides):
    """Changing token 10 leaves the outputs at positions 0..9 unchanged and changes position 10."""
    apply, params = build(name, **overrides)
    x = tokens(5)
    x2 = x.at[:, 10].set((x[:, 10] + 1) % 4)
    out, out2 = apply(params, x), apply(params, x2)
    np.testing.assert_allclose(out[:, :10], out2[:, :10], rtol=0, atol=1e-6)
    assert float(jnp.max(jnp.abs(out[:, 10] - out2[:, 10]))) > 1e-4


@pytest.mark.slow
def test_transformer_default_cross_attention_sees_the_future():
    """The reference's decoder(x, x, tgt_mask) has unmasked cross-attention (REFERENCE §1.10 item 7)."""
    apply, params = build("transformer", weight_multiplier=1.0)
    x = tokens(5)
    x2 = x.at[:, 10].set((x[:, 10] + 1) % 4)
    out, out2 = apply(params, x), apply(params, x2)
    assert float(jnp.min(jnp.max(jnp.abs(out[:, :10] - out2[:, :10]), axis=(1, 2)))) > 1e-4


def test_transformer_init():
    """Xavier bound of the packed in_proj (3d × d), zero attention biases, zero readout weight."""
    _, params = build("transformer")
    layer = params["layers"]["self_attn"]  # stacked [layers, ...] by nn.scan
    bound = math.sqrt(6 / (32 + 96))  # packed; separate d × d matrices would have √(6/64)
    w = np.abs(np.asarray(layer["in_proj_kernel"]))
    assert 0.95 * bound < w.max() <= bound
    assert not np.any(layer["in_proj_bias"]) and not np.any(layer["out_proj"]["bias"])
    assert not np.any(params["out"]["kernel"]) and np.any(params["out"]["bias"])


@pytest.mark.slow
def test_transformer_scanned_layers_equal_unrolled():
    """scan_layers only changes how the program is compiled: same outputs from the same weights."""
    unrolled, params = build("transformer", layers=2, scan_layers=False, weight_multiplier=1.0)
    scanned, _ = build("transformer", layers=2, weight_multiplier=1.0)
    shared = {k: v for k, v in params.items() if not k.startswith("layer")}
    stacked = jax.tree_util.tree_map(lambda *a: jnp.stack(a), params["layer0"], params["layer1"])
    x = tokens(3)
    np.testing.assert_allclose(
        scanned(shared | {"layers": stacked}, x), unrolled(params, x), rtol=1e-6, atol=1e-6
    )


@pytest.mark.slow
def test_multihead_attention_matches_per_head_numpy():
    rng = np.random.default_rng(0)
    x, m = rng.standard_normal((2, 5, 8)), rng.standard_normal((2, 5, 8))
    mha = transformer.MultiheadAttention(heads=2)
    params = mha.init(jax.random.PRNGKey(0), x, m, causal=True)["params"]
    params = jax.tree_util.tree_map(lambda a: a + 0.1 * rng.standard_normal(a.shape), params)  # biases ≠ 0
    out = mha.apply({"params": params}, x, m, causal=True)

    W, b = np.asarray(params["in_proj_kernel"]), np.asarray(params["in_proj_bias"])
    q, k, v = x @ W[:, :8] + b[:8], m @ W[:, 8:16] + b[8:16], m @ W[:, 16:] + b[16:]
    heads = []
    for h in range(2):
        s = slice(4 * h, 4 * h + 4)
        scores = q[..., s] @ np.swapaxes(k[..., s], 1, 2) / 2.0 + np.triu(np.full((5, 5), -np.inf), 1)
        p = np.exp(scores - scores.max(-1, keepdims=True))
        heads.append(p / p.sum(-1, keepdims=True) @ v[..., s])
    expected = np.concatenate(heads, -1) @ params["out_proj"]["kernel"] + params["out_proj"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_lstm_matches_numpy_cell():
    """torch.nn.LSTM equations, gates i, f, g, o, both bias vectors."""
    apply, params = build("lstm")
    x = tokens(3)
    out = apply(params, x)
    sig = lambda a: 1 / (1 + np.exp(-a))
    z = np.asarray(params["embedding"]["embedding"])[np.asarray(x)]
    for layer in ("layer0", "layer1"):
        p = {k: np.asarray(v, np.float64) for k, v in params[layer].items()}
        h, c, hs = np.zeros((3, 48)), np.zeros((3, 48)), []
        for t in range(15):
            i, f, g, o = np.split(
                z[:, t] @ p["weight_ih"] + p["bias_ih"] + h @ p["weight_hh"] + p["bias_hh"], 4, -1
            )
            c = sig(f) * c + sig(i) * np.tanh(g)
            h = sig(o) * np.tanh(c)
            hs.append(h)
        z = np.stack(hs, 1)
    expected = z @ params["out"]["kernel"] + params["out"]["bias"]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


class _LSTMBatchMajorLayer(nn.Module):
    """The LSTM layer as it was before its derivatives were made cheap: batch-major inputs, the input
    projection on every embedded token (the reference for `test_lstm_equals_batch_major_formulation`)."""

    hidden: int

    @nn.compact
    def __call__(self, x):
        h4 = 4 * self.hidden
        W_ih = self.param("weight_ih", nn.initializers.zeros, (x.shape[-1], h4))
        W_hh = self.param("weight_hh", nn.initializers.zeros, (self.hidden, h4))
        b_ih = self.param("bias_ih", nn.initializers.zeros, (h4,))
        b_hh = self.param("bias_hh", nn.initializers.zeros, (h4,))
        x_gates = jnp.swapaxes(x @ W_ih + b_ih, 0, 1)

        def step(carry, xg):
            h, c = carry
            i, f, g, o = jnp.split(xg + h @ W_hh + b_hh, 4, axis=-1)
            c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
            h = jax.nn.sigmoid(o) * jnp.tanh(c)
            return (h, c), h

        zeros = jnp.zeros((x.shape[0], self.hidden), x_gates.dtype)
        return jnp.swapaxes(jax.lax.scan(step, (zeros, zeros), x_gates)[1], 0, 1)


class _LSTMBatchMajor(nn.Module):
    layers: int

    @nn.compact
    def __call__(self, tokens):
        x = nn.Embed(4, 8, name="embedding")(tokens)
        for i in range(self.layers):
            x = _LSTMBatchMajorLayer(16, name=f"layer{i}")(x)
        return nn.Dense(4, name="out")(x)


@pytest.mark.parametrize("layers", [1, 2])
def test_lstm_equals_batch_major_formulation(layers):
    """The time-major LSTM with its first projection taken on the embedding table has the previous
    formulation's loss, Hessian-vector products and third derivatives to float64 round-off."""
    with jax.enable_x64(True):
        model = get_architecture("lstm").build({"embed_dim": 8, "hidden": 16, "layers": layers}, SPEC)
        x = tokens(6)
        params = jax.tree.map(lambda a: a.astype(jnp.float64), model.init(jax.random.PRNGKey(0), x)["params"])
        w, unravel = ravel_pytree(params)
        y = jax.nn.one_hot(jnp.flip(x, 1), 4, dtype=jnp.float64)

        def loss(m):
            return lambda w: jnp.mean((m.apply({"params": unravel(w)}, x) - y) ** 2)

        new, ref = loss(model), loss(_LSTMBatchMajor(layers))
        U = jax.random.normal(jax.random.PRNGKey(1), (w.shape[0], 3), jnp.float64)
        np.testing.assert_allclose(new(w), ref(w), rtol=1e-13)
        for f in (
            jax.grad,
            lambda l: lambda w: derivatives.batched_hvp(l, w, U),
            lambda l: lambda w: derivatives.third_derivative_pairs(l, w, U),
        ):
            a, b = f(new)(w), f(ref)(w)
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13 * float(jnp.max(jnp.abs(b))))


@pytest.mark.slow
def test_norms_match_formulas():
    x = np.random.default_rng(0).standard_normal((3, 6))
    ln = TrainableLayerNorm().apply({"params": {"gamma": np.ones(6), "beta": np.zeros(6)}}, x)
    expected = (x - x.mean(-1, keepdims=True)) / (x.std(-1, ddof=1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(ln, expected, rtol=1e-5)
    rms = RMSNorm().apply({"params": {"weight": 2 * np.ones(6)}}, x)
    np.testing.assert_allclose(rms, 2 * x / np.sqrt((x**2).mean(-1, keepdims=True) + 1e-5), rtol=1e-5)


@pytest.mark.slow
def test_mamba_reference_init():
    _, params = build("mamba")
    block = params["layer0"]["mixer"]
    np.testing.assert_allclose(block["A_log"], np.log(np.tile(np.arange(1, 17), (128, 1))), rtol=1e-6)
    np.testing.assert_array_equal(block["D"], np.ones(128))
    assert not np.any(block["dt_proj"]["bias"])  # _init_weights zeroes it, overriding Mamba's dt init
    assert 0.015 < float(jnp.std(block["in_proj"]["kernel"])) < 0.025
    assert 0.0015 < float(jnp.std(params["lm_head"]["kernel"])) < 0.0025  # N(0, 0.02) × init_scale 0.1
    assert float(jnp.max(jnp.abs(block["conv_weight"]))) <= 0.5  # PyTorch default, fan_in = d_conv = 4

    _, constructor = build("mamba", reference_init=False)
    dt = jax.nn.softplus(constructor["layer0"]["mixer"]["dt_proj"]["bias"])
    assert float(dt.min()) >= 1e-3 * (1 - 1e-5) and float(dt.max()) <= 0.1 * (1 + 1e-5)


@pytest.mark.slow
def test_selective_scan_parallel_equals_sequential():
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.uniform(0.5, 1.0, (3, 15, 5, 2)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((3, 15, 5, 2)), jnp.float32)
    h_par, h_seq = mamba.selective_scan(a, b, "parallel"), mamba.selective_scan(a, b, "sequential")
    np.testing.assert_allclose(h_par, h_seq, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h_seq[:, 1], a[:, 1] * b[:, 0] + b[:, 1], rtol=1e-6)


def mamba_outputs(dtype):
    x = tokens(4)
    out = {}
    for scan in mamba.SCANS:
        apply, params = build("mamba", scan=scan, init_scale=1.0)
        params = jax.tree_util.tree_map(lambda a: a.astype(dtype), params)
        out[scan] = apply(params, x)
        assert out[scan].dtype == dtype
    return out


@pytest.mark.slow
def test_mamba_scans_agree_float32():
    out = mamba_outputs(jnp.float32)
    for scan in ("fused", "parallel"):
        np.testing.assert_allclose(out[scan], out["sequential"], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_mamba_scans_agree_float64(x64):
    out = mamba_outputs(jnp.float64)
    for scan in ("fused", "parallel"):
        np.testing.assert_allclose(out[scan], out["sequential"], rtol=1e-12, atol=1e-14)


@pytest.mark.slow
def test_mamba_fused_scan_derivatives_match_sequential(x64):
    """The fused scan rematerialises its step: HVPs and third derivatives must not change (float64)."""
    x, y = tokens(3), jax.nn.one_hot(tokens(3, seed=1), 4)

    def derivs(scan):
        apply, params = build("mamba", scan=scan, layers=1, init_scale=1.0)
        w, unravel = ravel_pytree(jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params))
        loss_fn = lambda w: 0.5 * jnp.mean(jnp.sum((apply(unravel(w), x) - y) ** 2, -1))
        u, v = jax.random.normal(jax.random.PRNGKey(1), (2, w.shape[0]), jnp.float64)
        hvp = jax.jit(derivatives.hvp, static_argnums=0)(loss_fn, w, u)
        return hvp, jax.jit(derivatives.third_derivative, static_argnums=0)(loss_fn, w, u, v)

    for fused, sequential in zip(derivs("fused"), derivs("sequential"), strict=True):
        scale = float(jnp.max(jnp.abs(sequential)))
        assert scale > 0
        np.testing.assert_allclose(fused, sequential, rtol=1e-9, atol=1e-12 * scale)


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [("lstm", {}), ("transformer", {"layers": 1, "weight_multiplier": 1.0}), ("mamba", {"layers": 1})],
)
def test_third_derivative_finite(name, overrides):
    """D³L[u, v, ·] (jvp of an HVP) on a tiny batch: the engine's central flow needs it.

    One layer keeps XLA's compile time down; deeper models repeat the same layer code.
    """
    apply, params = build(name, **overrides)
    w, unravel = ravel_pytree(params)
    x, y = tokens(3), jax.nn.one_hot(tokens(3, seed=1), 4)
    loss_fn = lambda w: 0.5 * jnp.mean(jnp.sum((apply(unravel(w), x) - y) ** 2, -1))
    u, v = jax.random.normal(jax.random.PRNGKey(1), (2, w.shape[0]))
    t = jax.jit(derivatives.third_derivative, static_argnums=0)(loss_fn, w, u, v)
    assert t.shape == w.shape and bool(jnp.all(jnp.isfinite(t))) and float(jnp.linalg.norm(t)) > 0


@pytest.mark.parametrize(
    "name, overrides",
    [("lstm", None), ("mamba", {"scan": "pscan"}), ("transformer", {"heads": 5})],
)
def test_bad_options_raise(name, overrides):
    module = get_architecture(name)
    if overrides is not None:
        with pytest.raises(ValueError):
            module.build({**module.DEFAULTS, **overrides}, SPEC)
    with pytest.raises(ValueError, match="sequence"):
        module.build(module.DEFAULTS, DataSpec("image", (32, 32, 3), 4))


@pytest.mark.slow
def test_init_under_x64_keeps_float32_params(x64):
    """Bare initializers default to float64 under x64; nn.scan's carry check then fails at init."""
    module = get_architecture("transformer")
    model = module.build({**module.DEFAULTS, "layers": 1}, SPEC)
    params = jax.jit(model.init)(jax.random.PRNGKey(0), tokens(2))["params"]
    assert {leaf.dtype for leaf in jax.tree_util.tree_leaves(params)} == {jnp.dtype(jnp.float32)}


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, overrides",
    [
        ("lstm", {"embed_dim": 8, "hidden": 8, "layers": 1}),
        (
            "transformer",
            {"d_model": 8, "heads": 2, "layers": 1, "dim_feedforward": 16, "weight_multiplier": 1.0},
        ),
        ("mamba", {"d_model": 8, "layers": 1, "d_state": 4, "init_scale": 1.0}),
    ],
)
def test_one_hot_embedding_equals_the_gather(name, overrides, x64, monkeypatch):
    """The one-hot product (deterministic on a GPU) is nn.Embed's gather to round-off (float64): in the
    loss, its gradient, an HVP and a third derivative, from the same parameters."""
    module = get_architecture(name)
    model = module.build({**module.DEFAULTS, **overrides}, SPEC)
    x, y = tokens(5), jax.nn.one_hot(tokens(5, seed=1), 4)
    params = model.init(jax.random.PRNGKey(0), x)["params"]
    w, unravel = ravel_pytree(jax.tree_util.tree_map(lambda a: a.astype(jnp.float64), params))
    u, v = jax.random.normal(jax.random.PRNGKey(1), (2, w.shape[0]), jnp.float64)

    def quantities():  # traced anew on each call: the model looks its embedding class up when traced
        loss_fn = lambda w: 0.5 * jnp.mean(jnp.sum((model.apply({"params": unravel(w)}, x) - y) ** 2, -1))
        return jax.jit(lambda w: (*jax.value_and_grad(loss_fn)(w), derivatives.hvp(loss_fn, w, u),
                                  derivatives.third_derivative(loss_fn, w, u, v)))(w)  # fmt: skip

    one_hot = quantities()
    monkeypatch.setattr(module, "OneHotEmbed", nn.Embed)
    gather = quantities()
    for label, a, b in zip(("loss", "gradient", "HVP", "third derivative"), one_hot, gather, strict=True):
        scale = float(jnp.max(jnp.abs(b)))
        assert scale > 0, label
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-13 * scale, err_msg=label)
    for label, a in zip(("gradient", "HVP", "third derivative"), one_hot[1:], strict=True):
        assert float(jnp.max(jnp.abs(unravel(a)["embedding"]["embedding"]))) > 0, label  # reaches the table
