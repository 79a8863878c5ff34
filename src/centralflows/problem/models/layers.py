"""Building blocks shared by the architectures: PyTorch-default init and activations."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from centralflows.problem.data.spec import DataSpec

ACTIVATIONS = {
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),  # exact erf GELU, PyTorch's nn.GELU default
    "silu": jax.nn.silu,
    "relu": jax.nn.relu,
}


def activation(name: str):
    """Returns the activation `name` (one of ACTIVATIONS)."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation '{name}'; valid names: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def torch_uniform(fan_in: int):
    """PyTorch's default Linear/Conv init for weight and bias alike: U(±1/√fan_in)."""
    bound = 1 / math.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


def dense(features: int, fan_in: int, use_bias: bool = True, name: str | None = None) -> nn.Dense:
    """nn.Dense initialised like torch.nn.Linear(fan_in, features)."""
    init = torch_uniform(fan_in)
    return nn.Dense(features, use_bias=use_bias, kernel_init=init, bias_init=init, name=name)


def require_images(spec: DataSpec, arch: str) -> None:
    """Raises ValueError unless `spec` describes image inputs (vision architectures only)."""
    if spec.kind != "image":
        raise ValueError(f"architecture '{arch}' needs image inputs, got a {spec.kind} dataset")
