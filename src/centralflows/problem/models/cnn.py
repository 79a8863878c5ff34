"""Two-conv CNN (REFERENCE §3.3 `cnn`: 544,100 parameters for 4 classes)."""

import flax.linen as nn

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import activation, dense, require_images, torch_uniform
from centralflows.problem.models.torch_init import chw_rows, conv_of, dense_of, torch_linear

DEFAULTS = {"width": 32, "activation": "gelu"}

CPU_HVP_BATCHING = "unroll"  # measured faster on XLA:CPU (see the registry, models/__init__.py)


class CNN(nn.Module):
    """Conv3×3(w) → act → AvgPool2 → Conv3×3(2w) → act → AvgPool2 → Linear(4w) → act → Linear(out).

    Convolutions and the hidden Linear have no bias; 'same' padding; PyTorch default init. Inputs are
    NHWC, so the flatten before the first Linear orders features (h, w, c) instead of (c, h, w).
    """

    width: int
    activation: str
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        act = activation(self.activation)
        for features in (self.width, 2 * self.width):
            init = torch_uniform(9 * x.shape[-1])
            x = nn.Conv(features, (3, 3), padding="SAME", use_bias=False, kernel_init=init)(x)
            x = nn.avg_pool(act(x), (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        x = act(dense(4 * self.width, x.shape[-1], use_bias=False)(x))
        return dense(self.num_outputs, x.shape[-1])(x)


def build(options: dict, spec: DataSpec) -> nn.Module:
    """Builds the CNN for image inputs; `options` are DEFAULTS with overrides."""
    require_images(spec, "cnn")
    return CNN(options["width"], options["activation"], spec.num_outputs)


# ---------------------------------------------------------------------------------------------------
# The authors' initialisation (init: torch): their constructor replayed, and the map of its torch
# parameter names onto this module's Flax tree (centralflows.problem.models.torch_init).


def torch_parameters(g, o, spec) -> dict:
    """The authors' constructor replayed on torch's generator `g`: {torch name: float32 array in torch's
    layout} in `named_parameters()` order (see centralflows.problem.models.torch_init)."""
    h, w, c = spec.input_shape
    width = o["width"]
    P = {
        "0.weight": g.kaiming_uniform((width, c, 3, 3)),
        "3.weight": g.kaiming_uniform((2 * width, width, 3, 3)),
    }
    torch_linear(g, P, "7", (h // 4) * (w // 4) * 2 * width, 4 * width, bias=False)
    torch_linear(g, P, "9", 4 * width, spec.num_outputs)
    return P


def to_flax(P, o, spec) -> dict:
    """The torch-layout parameters `P` (see torch_parameters) as this module's Flax params tree."""
    h, w, _ = spec.input_shape
    hidden = dense_of(P, "7", bias=False)
    hidden["kernel"] = chw_rows(hidden["kernel"], 2 * o["width"], h // 4, w // 4)
    return {
        "Conv_0": conv_of(P["0.weight"]),
        "Conv_1": conv_of(P["3.weight"]),
        "Dense_0": hidden,
        "Dense_1": dense_of(P, "9"),
    }
