"""Fully connected network on flattened inputs (REFERENCE §3.3 `mlp`: 853,508 parameters for 4 classes)."""

import math

import flax.linen as nn

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import activation, dense, require_images
from centralflows.problem.models.torch_init import chw_rows, dense_of, torch_linear

DEFAULTS = {"width": 256, "depth": 2, "activation": "gelu"}

CPU_HVP_BATCHING = "unroll"  # measured faster on XLA:CPU (see the registry, models/__init__.py)


class MLP(nn.Module):
    """Flatten → depth × (Linear(width) → activation) → Linear(out); PyTorch default init, no zero-init.

    Flattening is in NHWC order where the reference flattens NCHW: a fixed permutation of the first
    layer's inputs, which its i.i.d. init does not see.
    """

    width: int
    depth: int
    activation: str
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        act = activation(self.activation)
        x = x.reshape(x.shape[0], -1)
        for _ in range(self.depth):
            x = act(dense(self.width, x.shape[-1])(x))
        return dense(self.num_outputs, x.shape[-1])(x)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the MLP for image inputs; `options` are DEFAULTS with overrides."""
    require_images(spec, "mlp")
    return MLP(options["width"], options["depth"], options["activation"], spec.num_outputs)


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    sizes = [math.prod(spec.input_shape)] + [o["width"]] * o["depth"] + [spec.num_outputs]
    P = {}
    for i in range(len(sizes) - 1):  # Sequential(Flatten, Linear, act, ..., Linear): Linears at 1, 3, ...
        torch_linear(g, P, str(2 * i + 1), sizes[i], sizes[i + 1])
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    h, w, c = spec.input_shape
    layers = [dense_of(P, str(2 * i + 1)) for i in range(o["depth"] + 1)]
    layers[0]["kernel"] = chw_rows(layers[0]["kernel"], c, h, w)
    return {f"Dense_{i}": layer for i, layer in enumerate(layers)}
