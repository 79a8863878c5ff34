"""Mamba language model for the sorting task (REFERENCE §3.3 `mamba`): 65,984 parameters for vocab 4.

Embedding(vocab, 64) → 2 × [x + MambaBlock(RMSNorm(x))] → RMSNorm → Linear(64, vocab, no bias), with
the block of the reference (d_inner 128, d_state 16, causal depthwise conv of width 4 with bias,
dt_rank 4, SiLU gate, softplus dt, A = −exp(A_log) with A_log = log(1..16), D = 1).

The selective scan is the linear recurrence h_t = a_t ⊙ h_{t−1} + b_t with a_t = exp(Δ_t A) and
b_t = Δ_t B_t x_t, read out as y_t = C_t · h_t. `scan: "fused"` (default) runs it sequentially as the
reference does, building a_t, b_t and y_t inside each step so that no [n, length, d_inner, d_state]
tensor is materialised, and recomputes a_t, b_t in the backward pass (only h_t is kept per step).
"sequential" (the same loop over precomputed a, b) and "parallel" (`jax.lax.associative_scan`) are
equal up to rounding; they cost 2-3x more per Hessian-vector product and 3x the memory on CPU
(bench/README.md, "Mamba's selective scan").
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import OneHotEmbed, torch_uniform
from centralflows.problem.models.norms import RMSNorm
from centralflows.problem.models.torch_init import F32, dense_of, torch_linear

DEFAULTS = {
    "d_model": 64,
    "layers": 2,
    "d_state": 16,
    "expand": 2,  # d_inner = expand · d_model
    "d_conv": 4,
    "dt_rank": 4,
    "init_scale": 0.1,  # final Linear weight × this at init
    # True: the reference's _init_weights, applied after the block constructors: N(0, 0.02) on every
    # Linear and Embedding weight including dt_proj, all Linear biases (dt_proj's too) zero.
    # False: the constructors' init (PyTorch defaults, Embedding N(0, 1), Mamba's dt init).
    "reference_init": True,
    "scan": "fused",  # or "sequential" (the reference's loop), "parallel"; equal up to rounding
}
SCANS = ("fused", "parallel", "sequential")


def selective_scan(a, b, method: str):
    """h_t = a_t ⊙ h_{t−1} + b_t from h_0 = 0 along axis 1 of a, b [n, length, ...]; returns all h_t."""
    if method == "parallel":
        # composing two steps (a1, b1) then (a2, b2) gives (a2 a1, a2 b1 + b2): associative
        _, h = jax.lax.associative_scan(lambda s1, s2: (s2[0] * s1[0], s2[0] * s1[1] + s2[1]), (a, b), axis=1)
        return h
    if method == "sequential":

        def step(h, ab):
            h = ab[0] * h + ab[1]
            return h, h

        _, h = jax.lax.scan(step, jnp.zeros_like(b[:, 0]), (jnp.swapaxes(a, 0, 1), jnp.swapaxes(b, 0, 1)))
        return jnp.swapaxes(h, 0, 1)
    raise ValueError(f"unknown scan '{method}'; valid names: {', '.join(SCANS)}")


def fused_selective_scan(dt, A, u, B, C):
    """y_t = C_t · h_t with h_t = exp(Δ_t A) ⊙ h_{t−1} + (u_t ⊗ B_t), h_0 = 0, per example and channel.

    Args:
        dt: Δ [n, length, E]; A: [E, N]; u: Δ·x [n, length, E]; B, C: [n, length, N].

    Returns:
        y [n, length, E]: the same numbers as `selective_scan` on the materialised a, b followed by
        the read-out, without ever holding an [n, length, E, N] tensor (the step is rematerialised).
    """

    @jax.checkpoint
    def step(h, inputs):
        dt_t, u_t, B_t, C_t = inputs
        # the outer product as an einsum: its transposes (derivatives in u and B) become dots, which
        # XLA:CPU runs faster than the multiply-and-reduce of a broadcast (bench/README.md)
        h = jnp.exp(dt_t[..., None] * A) * h + jnp.einsum("be,bn->ben", u_t, B_t)  # [n, E, N]
        return h, jnp.einsum("ben,bn->be", h, C_t)

    time_major = lambda v: jnp.swapaxes(v, 0, 1)
    h0 = jnp.zeros((dt.shape[0], *A.shape), dt.dtype)
    _, y = jax.lax.scan(step, h0, tuple(map(time_major, (dt, u, B, C))))
    return time_major(y)


def normal_002(key, shape, dtype=jnp.float32):
    return 0.02 * jax.random.normal(key, shape, dtype)


def a_log_init(key, shape, dtype=jnp.float32):
    """A_log[c, s] = log(s + 1): the same real, diagonal A = −(1..d_state) for every channel (S4D-Real)."""
    return jnp.log(jnp.broadcast_to(jnp.arange(1, shape[-1] + 1, dtype=dtype), shape))


def mamba_dt_bias(key, shape, dtype=jnp.float32, dt_min=1e-3, dt_max=0.1, floor=1e-4):
    """Mamba's dt_proj bias: softplus⁻¹(dt) with dt log-uniform in [dt_min, dt_max], floored."""
    u = jax.random.uniform(key, shape, dtype)
    dt = jnp.maximum(jnp.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)), floor)
    return dt + jnp.log(-jnp.expm1(-dt))


class MambaBlock(nn.Module):
    """Mamba mixer on [n, length, d_model] (no normalisation or residual: see ResidualBlock)."""

    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int
    reference_init: bool
    scan: str

    def linear(self, features, fan_in, use_bias=False, name=None):
        if self.reference_init:
            return nn.Dense(
                features, use_bias, kernel_init=normal_002, bias_init=nn.initializers.zeros, name=name
            )
        return nn.Dense(
            features, use_bias, kernel_init=torch_uniform(fan_in), bias_init=torch_uniform(fan_in), name=name
        )

    @nn.compact
    def __call__(self, x):
        n, t, d_model = x.shape
        E, N, R = self.d_inner, self.d_state, self.dt_rank
        x, z = jnp.split(self.linear(2 * E, d_model, name="in_proj")(x), 2, axis=-1)  # [n, t, E] each

        # depthwise causal Conv1d (padding d_conv−1, output cut to the first t steps); PyTorch default
        # init U(±1/√fan_in) with fan_in = d_conv, since _init_weights leaves convolutions alone
        conv_w = self.param("conv_weight", torch_uniform(self.d_conv), (self.d_conv, E), jnp.float32)
        conv_b = self.param("conv_bias", torch_uniform(self.d_conv), (E,), jnp.float32)
        x_pad = jnp.pad(x, ((0, 0), (self.d_conv - 1, 0), (0, 0)))
        x = sum(conv_w[k] * x_pad[:, k : k + t] for k in range(self.d_conv)) + conv_b
        x = jax.nn.silu(x)

        A_log = self.param("A_log", a_log_init, (E, N), jnp.float32)
        D = self.param("D", nn.initializers.ones, (E,), jnp.float32)
        dt, B, C = jnp.split(self.linear(R + 2 * N, E, name="x_proj")(x), [R, R + N], axis=-1)
        if self.reference_init:
            dt_proj = nn.Dense(E, kernel_init=normal_002, bias_init=nn.initializers.zeros, name="dt_proj")
        else:  # Mamba's "random" dt init with dt_scale 1
            dt_proj = nn.Dense(E, kernel_init=torch_uniform(R), bias_init=mamba_dt_bias, name="dt_proj")
        dt = jax.nn.softplus(dt_proj(dt))  # [n, t, E]

        if self.scan == "fused":
            y = fused_selective_scan(dt, -jnp.exp(A_log), dt * x, B, C) + D * x
        else:
            a = jnp.exp(dt[..., None] * -jnp.exp(A_log))  # [n, t, E, N]
            b = (dt * x)[..., None] * B[:, :, None, :]  # [n, t, E, N]
            h = selective_scan(a, b, self.scan)  # [n, t, E, N]
            y = jnp.einsum("bten,btn->bte", h, C) + D * x
        return self.linear(d_model, E, name="out_proj")(y * jax.nn.silu(z))


class ResidualBlock(nn.Module):
    """x + MambaBlock(RMSNorm(x)): pre-norm residual."""

    block: dict

    @nn.compact
    def __call__(self, x):
        return x + MambaBlock(**self.block, name="mixer")(RMSNorm(name="norm")(x))


class Mamba(nn.Module):
    """Token ids [n, length] → logits [n, length, num_outputs]."""

    vocab_size: int
    d_model: int
    layers: int
    init_scale: float
    block: dict
    num_outputs: int

    @nn.compact
    def __call__(self, tokens):
        reference_init = self.block["reference_init"]
        embed_init = normal_002 if reference_init else nn.initializers.normal(1.0)
        x = OneHotEmbed(self.vocab_size, self.d_model, embedding_init=embed_init, name="embedding")(tokens)
        for i in range(self.layers):
            x = ResidualBlock(self.block, name=f"layer{i}")(x)
        x = RMSNorm(name="norm_f")(x)
        base = normal_002 if reference_init else torch_uniform(self.d_model)
        head_init = lambda key, shape, dtype=jnp.float32: self.init_scale * base(key, shape, dtype)
        return nn.Dense(self.num_outputs, use_bias=False, kernel_init=head_init, name="lm_head")(x)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the Mamba model for token inputs; `options` are DEFAULTS with overrides."""
    if spec.kind != "sequence":
        raise ValueError(f"mamba needs a sequence dataset, got kind '{spec.kind}'")
    if options["scan"] not in SCANS:
        raise ValueError(f"unknown mamba scan '{options['scan']}'; valid names: {', '.join(SCANS)}")
    block = {
        "d_inner": options["expand"] * options["d_model"],
        "d_state": options["d_state"],
        "d_conv": options["d_conv"],
        "dt_rank": options["dt_rank"],
        "reference_init": options["reference_init"],
        "scan": options["scan"],
    }
    return Mamba(
        spec.vocab_size, options["d_model"], options["layers"], options["init_scale"], block, spec.num_outputs
    )


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    d, E, N, R, K = o["d_model"], o["expand"] * o["d_model"], o["d_state"], o["dt_rank"], o["d_conv"]
    P = {"embed.weight": g.normal((spec.vocab_size, d), 0.0, 1.0)}
    for i in range(o["layers"]):
        m, built = f"mamba.layers.{i}.mixer", {}
        torch_linear(g, built, "in_proj", d, 2 * E, bias=False)
        built["conv1d.weight"] = g.kaiming_uniform((E, 1, K))
        built["conv1d.bias"] = g.default_bias(E, (E, 1, K))
        torch_linear(g, built, "x_proj", E, R + 2 * N, bias=False)
        torch_linear(g, built, "dt_proj", R, E)
        built["dt_proj.weight"] = g.uniform((E, R), -(R**-0.5), R**-0.5)
        dt = np.exp(g.uniform((E,), 0.0, 1.0) * (math.log(0.1) - math.log(1e-3)) + math.log(1e-3))
        dt = np.maximum(dt, 1e-4)  # float64 here; torch's float32 ops may differ in the last bit
        built["dt_proj.bias"] = (dt + np.log(-np.expm1(-dt))).astype(F32)
        P[f"{m}.A_log"] = np.log(np.tile(np.arange(1, N + 1, dtype=F32), (E, 1)))
        P[f"{m}.D"] = np.ones(E, F32)
        torch_linear(g, built, "out_proj", E, d, bias=False)
        P.update(
            {
                f"{m}.{k}": built[k]
                for k in (
                    "in_proj.weight",
                    "conv1d.weight",
                    "conv1d.bias",
                    "x_proj.weight",
                    "dt_proj.weight",
                    "dt_proj.bias",
                    "out_proj.weight",
                )
            }
        )
        P[f"mamba.layers.{i}.norm.weight"] = np.ones(d, F32)
    P["norm_f.weight"] = np.ones(d, F32)
    torch_linear(g, P, "linear", d, spec.num_outputs, bias=False)
    if o["reference_init"]:  # self.apply(_init_weights): N(0, 0.02) on Linear/Embedding weights
        for k in P:
            if (
                k == "embed.weight"
                or (k.endswith("proj.weight") and "conv1d" not in k)
                or k == "linear.weight"
            ):
                P[k] = g.normal(P[k].shape, 0.0, 0.02)
            if k.endswith("dt_proj.bias"):
                P[k] = np.zeros_like(P[k])
    P["linear.weight"] = P["linear.weight"] * F32(o["init_scale"])
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    out = {
        "embedding": {"embedding": P["embed.weight"]},
        "norm_f": {"weight": P["norm_f.weight"]},
        "lm_head": dense_of(P, "linear", bias=False),
    }
    for i in range(o["layers"]):
        m = f"mamba.layers.{i}.mixer"
        out[f"layer{i}"] = {
            "mixer": {
                "A_log": P[f"{m}.A_log"],
                "D": P[f"{m}.D"],
                "conv_weight": P[f"{m}.conv1d.weight"][:, 0].T,
                "conv_bias": P[f"{m}.conv1d.bias"],
                "dt_proj": dense_of(P, f"{m}.dt_proj"),
                "in_proj": dense_of(P, f"{m}.in_proj", False),
                "x_proj": dense_of(P, f"{m}.x_proj", False),
                "out_proj": dense_of(P, f"{m}.out_proj", False),
            },
            "norm": {"weight": P[f"mamba.layers.{i}.norm.weight"]},
        }
    return out
