"""Two-conv CNN (REFERENCE §3.3 `cnn`: 544,100 parameters for 4 classes)."""

import flax.linen as nn

from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models.layers import activation, dense, require_images, torch_uniform

DEFAULTS = {"width": 32, "activation": "gelu"}


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
