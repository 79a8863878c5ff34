"""Fully connected network on flattened inputs (REFERENCE §3.3 `mlp`: 853,508 parameters for 4 classes)."""

import flax.linen as nn

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import activation, dense, require_images

DEFAULTS = {"width": 256, "depth": 2, "activation": "gelu"}


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
