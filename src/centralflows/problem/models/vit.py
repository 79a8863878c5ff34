"""SimpleViT as in vit_pytorch (REFERENCE §3.3 `vit`): 661,412 parameters for 4-class CIFAR.

Structure (defaults): patches of 4×4 → LN(48) → Linear(48, 64) → LN(64) → + 2-D sin-cos position
embedding → 4 × [x + Attn(LN(x)); x + FF(LN(x))] → LN → mean over patches → Linear(64, out).
Attention: 8 heads of dim 64, bias-free qkv and output projections; FF: Linear(256) → GELU → Linear(64).
The final LN sits before the mean pool, as in the vit_pytorch releases whose `linear_head` is a bare
Linear, which is what the reference's `model.linear_head.weight.mul_(init_scale)` needs; option
`final_norm: "after_pool"` gives the older `Sequential(LayerNorm, Linear)` head (same count).
"""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import dense, require_images, torch_uniform
from centralflows.problem.models.norms import TrainableLayerNorm
from centralflows.problem.models.torch_init import F32, dense_of, torch_linear, torch_norm

DEFAULTS = {
    "patch_size": 4,
    "dim": 64,
    "depth": 4,
    "heads": 8,
    "dim_head": 64,
    "mlp_dim": 256,
    "layernorm": "reference",  # the authors' TrainableLayerNorm; "standard" = torch.nn.LayerNorm
    "init_scale": 0.0,  # head weight and bias × init_scale; 0 = zero-init head (lower initial sharpness)
    "final_norm": "before_pool",  # or "after_pool"
}

CPU_HVP_BATCHING = "unroll"  # measured faster on XLA:CPU (see the registry, models/__init__.py)
_FINAL_NORMS = ("before_pool", "after_pool")
_LAYERNORMS = ("reference", "standard")


def LayerNorm(kind: str) -> nn.Module:
    """kind "reference": the authors' TrainableLayerNorm, γ·(x − mean)/(std_unbiased + 1e-6) + β, used
    because PyTorch's fused LayerNorm gave wrong third derivatives (REFERENCE §1.10 item 5); kind
    "standard": torch.nn.LayerNorm, γ·(x − mean)/√(var_biased + 1e-5) + β.
    """
    if kind == "reference":
        return TrainableLayerNorm()
    if kind == "standard":
        return nn.LayerNorm(epsilon=1e-5, use_fast_variance=False)
    raise ValueError(f"unknown layernorm '{kind}'; valid names: {', '.join(_LAYERNORMS)}")


def posemb_sincos_2d(h: int, w: int, dim: int, temperature: float = 10000.0) -> np.ndarray:
    """[h·w, dim] embedding (sin x, cos x, sin y, cos y) at dim/4 geometric frequencies; row-major."""
    y, x = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    omega = 1.0 / temperature ** (np.arange(dim // 4) / (dim // 4 - 1))
    x = x.reshape(-1, 1) * omega
    y = y.reshape(-1, 1) * omega
    return np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], axis=1).astype(np.float32)


class Attention(nn.Module):
    heads: int
    dim_head: int
    layernorm: str

    @nn.compact
    def __call__(self, x):
        n, t, dim = x.shape
        inner = self.heads * self.dim_head
        x = LayerNorm(self.layernorm)(x)
        qkv = dense(3 * inner, dim, use_bias=False)(x).reshape(n, t, 3, self.heads, self.dim_head)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]  # [n, t, heads, dim_head]
        attn = jax.nn.softmax(jnp.einsum("nqhd,nkhd->nhqk", q, k) * self.dim_head**-0.5, axis=-1)
        out = jnp.einsum("nhqk,nkhd->nqhd", attn, v).reshape(n, t, inner)
        return dense(dim, inner, use_bias=False)(out)


class FeedForward(nn.Module):
    mlp_dim: int
    layernorm: str

    @nn.compact
    def __call__(self, x):
        dim = x.shape[-1]
        x = LayerNorm(self.layernorm)(x)
        x = jax.nn.gelu(dense(self.mlp_dim, dim)(x), approximate=False)
        return dense(dim, self.mlp_dim)(x)


class SimpleViT(nn.Module):
    """See the module docstring. Inputs NHWC; patches flatten in (p1, p2, c) order like the reference."""

    patch_size: int
    dim: int
    depth: int
    heads: int
    dim_head: int
    mlp_dim: int
    layernorm: str
    init_scale: float
    final_norm: str
    num_outputs: int

    @nn.compact
    def __call__(self, img):
        if self.final_norm not in _FINAL_NORMS:
            raise ValueError(
                f"unknown final_norm '{self.final_norm}'; valid names: {', '.join(_FINAL_NORMS)}"
            )
        n, height, width, c = img.shape
        p = self.patch_size
        h, w = height // p, width // p
        x = img.reshape(n, h, p, w, p, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * w, p * p * c)
        x = LayerNorm(self.layernorm)(x)
        x = dense(self.dim, p * p * c)(x)
        x = LayerNorm(self.layernorm)(x)
        x = x + posemb_sincos_2d(h, w, self.dim).astype(x.dtype)
        for _ in range(self.depth):
            x = x + Attention(self.heads, self.dim_head, self.layernorm)(x)
            x = x + FeedForward(self.mlp_dim, self.layernorm)(x)
        if self.final_norm == "before_pool":
            x = LayerNorm(self.layernorm)(x).mean(axis=1)
        else:
            x = LayerNorm(self.layernorm)(x.mean(axis=1))
        # PyTorch init scaled by init_scale, so 0.0 gives the reference's zero head.
        init = torch_uniform(self.dim)
        scaled = lambda key, shape, dtype=jnp.float32: self.init_scale * init(key, shape, dtype)
        return nn.Dense(self.num_outputs, kernel_init=scaled, bias_init=scaled, name="linear_head")(x)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the SimpleViT for image inputs; `options` are DEFAULTS with overrides."""
    require_images(spec, "vit")
    keys = (
        "patch_size",
        "dim",
        "depth",
        "heads",
        "dim_head",
        "mlp_dim",
        "layernorm",
        "init_scale",
        "final_norm",
    )
    return SimpleViT(*(options[k] for k in keys), num_outputs=spec.num_outputs)


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    p, c, dim, ln = o["patch_size"], spec.input_shape[2], o["dim"], o["layernorm"]
    inner = o["heads"] * o["dim_head"]
    P = {}
    torch_norm(P, "to_patch_embedding.1", p * p * c, ln)
    torch_linear(g, P, "to_patch_embedding.2", p * p * c, dim)
    torch_norm(P, "to_patch_embedding.3", dim, ln)
    torch_norm(P, "transformer.norm", dim, ln)  # registered before the layers
    for i in range(o["depth"]):
        a, f = f"transformer.layers.{i}.0", f"transformer.layers.{i}.1.net"
        torch_norm(P, f"{a}.norm", dim, ln)
        torch_linear(g, P, f"{a}.to_qkv", dim, 3 * inner, bias=False)
        torch_linear(g, P, f"{a}.to_out", inner, dim, bias=False)
        torch_norm(P, f"{f}.0", dim, ln)
        torch_linear(g, P, f"{f}.1", dim, o["mlp_dim"])
        torch_linear(g, P, f"{f}.3", o["mlp_dim"], dim)
    torch_linear(g, P, "linear_head", dim, spec.num_outputs)
    for k in ("linear_head.weight", "linear_head.bias"):  # .mul_(init_scale) in float32
        P[k] = P[k] * F32(o["init_scale"])
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    if o["layernorm"] == "reference":
        ln_name, keys = "TrainableLayerNorm", (("gamma", "gamma"), ("beta", "beta"))
    else:
        ln_name, keys = "LayerNorm", (("scale", "weight"), ("bias", "bias"))
    ln = lambda name: {f: P[f"{name}.{t}"] for f, t in keys}
    out = {
        f"{ln_name}_0": ln("to_patch_embedding.1"),
        "Dense_0": dense_of(P, "to_patch_embedding.2"),
        f"{ln_name}_1": ln("to_patch_embedding.3"),
        f"{ln_name}_2": ln("transformer.norm"),
        "linear_head": dense_of(P, "linear_head"),
    }
    for i in range(o["depth"]):
        a, f = f"transformer.layers.{i}.0", f"transformer.layers.{i}.1.net"
        out[f"Attention_{i}"] = {
            f"{ln_name}_0": ln(f"{a}.norm"),
            "Dense_0": dense_of(P, f"{a}.to_qkv", False),
            "Dense_1": dense_of(P, f"{a}.to_out", False),
        }
        out[f"FeedForward_{i}"] = {
            f"{ln_name}_0": ln(f"{f}.0"),
            "Dense_0": dense_of(P, f"{f}.1"),
            "Dense_1": dense_of(P, f"{f}.3"),
        }
    return out
