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


def one_hot_rows(table, tokens):
    """table[tokens] ([vocab, f] rows by integer ids [...]) as one_hot(tokens) @ table: see OneHotEmbed."""
    one_hot = jax.nn.one_hot(tokens, table.shape[0], dtype=table.dtype)  # [..., vocab]
    return jnp.matmul(one_hot, table, precision=jax.lax.Precision.HIGHEST)


class OneHotEmbed(nn.Embed):
    """nn.Embed (the same `embedding` parameter [vocab, features]) computed as one_hot(tokens) @ table.

    A gather's derivative is a scatter-add, which a GPU sums in a varying order (atomics of thousands of
    tokens into a few rows), so a resumed run would not repeat its trajectory; the product's derivative
    is a matrix product, deterministic, and as cheap for the sequence models' vocabulary of 4. The
    forward product is exact (one nonzero term per entry), at HIGHEST precision so TF32 cannot round it.
    """

    def __call__(self, inputs):
        if not jnp.issubdtype(inputs.dtype, jnp.integer):
            raise ValueError("Input type must be an integer or unsigned integer.")
        (embedding,) = self.promote_dtype(self.embedding, dtype=self.dtype, inexact=False)
        return one_hot_rows(embedding, inputs)


def require_images(spec: DataSpec, arch: str) -> None:
    """Raises ValueError unless `spec` describes image inputs (vision architectures only)."""
    if spec.kind != "image":
        raise ValueError(f"architecture '{arch}' needs image inputs, got a {spec.kind} dataset")
