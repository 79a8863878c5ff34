"""Small pre-scaled ResNet with a custom GroupNorm (REFERENCE §3.3 `resnet`: 293,300 parameters)."""

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import activation, require_images
from centralflows.problem.models.torch_init import F32, chw_rows, conv_of, dense_of, in_order, torch_linear

DEFAULTS = {"width": 16, "stage_sizes": (3, 3, 3), "activation": "gelu"}

CPU_HVP_BATCHING = "unroll"  # measured faster on XLA:CPU (see the registry, models/__init__.py)

# Kaiming-normal, fan_out mode, ReLU gain: N(0, 2 / (out_channels · 9)), as the reference's convs.
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def conv3x3(features: int, stride: int = 1, name: str | None = None) -> nn.Conv:
    """Bias-free 3×3 conv with PyTorch's symmetric padding 1 (Flax 'SAME' pads stride-2 asymmetrically)."""
    return nn.Conv(
        features, (3, 3), strides=stride, padding=1, use_bias=False, kernel_init=_conv_init, name=name
    )


class GroupNorm(nn.Module):
    """The reference's per-sample GroupNorm: (x − mean)/√(var_unbiased + 1e-6) per group, then w·x + b.

    Channels are split into `groups` contiguous groups and statistics run over each group's channels and
    all spatial positions; the variance is unbiased (torch `.var` default).
    """

    groups: int
    zero_weight: bool = False

    @nn.compact
    def __call__(self, x):
        channels = x.shape[-1]
        weight = self.param(
            "weight", nn.initializers.zeros if self.zero_weight else nn.initializers.ones, (channels,)
        )
        bias = self.param("bias", nn.initializers.zeros, (channels,))
        g = x.reshape(x.shape[0], -1, self.groups, channels // self.groups)  # [n, h·w, G, C/G]
        mean = jnp.mean(g, axis=(1, 3), keepdims=True)
        var = jnp.var(g, axis=(1, 3), ddof=1, keepdims=True)
        x = ((g - mean) / jnp.sqrt(var + 1e-6)).reshape(x.shape)
        return x * weight + bias


class Block(nn.Module):
    """conv–GN–act–conv–GN(zero weight), returning shortcut + x/√(number of blocks).

    The second GN's zero weight makes every block the identity (or its shortcut) at init. When
    stride ≠ 1 the shortcut is conv + GN, with a 3×3 conv: the reference names it `conv1x1` but builds it
    with kernel 3.
    """

    features: int
    stride: int
    groups: int
    scale: float
    activation: str

    @nn.compact
    def __call__(self, x):
        shortcut = x
        if self.stride != 1:
            shortcut = conv3x3(self.features, self.stride, name="shortcut_conv")(x)
            shortcut = GroupNorm(self.groups, name="shortcut_gn")(shortcut)
        x = GroupNorm(self.groups, name="gn1")(conv3x3(self.features, self.stride, name="conv1")(x))
        x = activation(self.activation)(x)
        x = GroupNorm(self.groups, zero_weight=True, name="gn2")(conv3x3(self.features, name="conv2")(x))
        return shortcut + x * self.scale


class ResNet(nn.Module):
    """in_proj conv3×3(width) + act → stages (widths w, 2w, 4w, ...; strides 1, 2, 2, ...) → avg_pool(4)
    → Linear(out) with zero weight and bias. GroupNorm uses `width` groups at every stage.
    """

    width: int
    stage_sizes: tuple
    activation: str
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        scale = sum(self.stage_sizes) ** -0.5
        x = activation(self.activation)(conv3x3(self.width, name="in_proj")(x))
        features = self.width
        for i, size in enumerate(self.stage_sizes):
            stride = 1 if i == 0 else 2
            features *= stride
            for j in range(size):
                x = Block(features, stride if j == 0 else 1, self.width, scale, self.activation)(x)
        x = nn.avg_pool(x, (4, 4), strides=(4, 4))
        x = x.reshape(x.shape[0], -1)
        return nn.Dense(self.num_outputs, kernel_init=nn.initializers.zeros, name="out_proj")(x)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the ResNet for image inputs; `options` are DEFAULTS with overrides."""
    require_images(spec, "resnet")
    return ResNet(options["width"], tuple(options["stage_sizes"]), options["activation"], spec.num_outputs)


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def _blocks(o):
    """(torch prefix, in channels, out channels, stride) of every Block, in construction order."""
    width, blocks = o["width"], []
    for i, size in enumerate(o["stage_sizes"]):
        stride = 1 if i == 0 else 2
        for j in range(size):
            blocks.append(
                (
                    f"stages.{i}.{j}",
                    width if j == 0 else stride * width,
                    stride * width,
                    stride if j == 0 else 1,
                )
            )
        width *= stride
    return blocks, width


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    h, _, c = spec.input_shape
    blocks, width = _blocks(o)
    convs = {"in_proj.0.weight": (o["width"], c, 3, 3)}  # construction order = modules() order
    names = ["in_proj.0.weight"]
    for prefix, cin, cout, stride in blocks:
        convs[f"{prefix}.conv1.weight"] = (cout, cin, 3, 3)
        convs[f"{prefix}.conv2.weight"] = (cout, cout, 3, 3)
        names += [
            f"{prefix}.{k}"
            for k in ("conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight", "bn2.bias")
        ]
        if stride != 1:
            convs[f"{prefix}.shortcut.0.weight"] = (cout, cin, 3, 3)
            names += [f"{prefix}.shortcut.{k}" for k in ("0.weight", "1.weight", "1.bias")]
    for shape in convs.values():  # Conv2d's own init, overwritten below but drawn
        g.kaiming_uniform(shape)
    pooled = h // 2 ** (len(o["stage_sizes"]) + 1)
    torch_linear(g, {}, "out_proj", width * pooled**2, spec.num_outputs)  # drawn, then zeroed
    P = {k: g.kaiming_normal_fan_out_relu(shape) for k, shape in convs.items()}
    for prefix, _, cout, stride in blocks:
        for norm in ("bn1", "bn2") + (("shortcut.1",) if stride != 1 else ()):
            P[f"{prefix}.{norm}.weight"] = np.full(cout, 0.0 if norm == "bn2" else 1.0, F32)
            P[f"{prefix}.{norm}.bias"] = np.zeros(cout, F32)
    P["out_proj.weight"] = np.zeros((spec.num_outputs, width * pooled**2), F32)
    P["out_proj.bias"] = np.zeros(spec.num_outputs, F32)
    return in_order(P, names + ["out_proj.weight", "out_proj.bias"])


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    blocks, width = _blocks(o)
    out = {"in_proj": conv_of(P["in_proj.0.weight"])}
    for i, (prefix, _, _, stride) in enumerate(blocks):
        gn = lambda k: {"weight": P[f"{prefix}.{k}.weight"], "bias": P[f"{prefix}.{k}.bias"]}  # noqa: B023
        block = {
            "conv1": conv_of(P[f"{prefix}.conv1.weight"]),
            "gn1": gn("bn1"),
            "conv2": conv_of(P[f"{prefix}.conv2.weight"]),
            "gn2": gn("bn2"),
        }
        if stride != 1:
            block["shortcut_conv"] = conv_of(P[f"{prefix}.shortcut.0.weight"])
            block["shortcut_gn"] = gn("shortcut.1")
        out[f"Block_{i}"] = block
    pooled = spec.input_shape[0] // 2 ** (len(o["stage_sizes"]) + 1)
    head = dense_of(P, "out_proj")
    head["kernel"] = chw_rows(head["kernel"], width, pooled, pooled)
    out["out_proj"] = head
    return out
