"""Normalisation layers of the sequence models, written out so their third derivatives are exact.

Parameters are created in float32 (Flax's param_dtype) explicitly: the bare initializers default to
float64 when x64 is enabled, which would break nn.scan's carry types at init.
"""

import flax.linen as nn
import jax
import jax.numpy as jnp


class TrainableLayerNorm(nn.Module):
    """The reference's LayerNorm: γ·(x − mean)/(std_unbiased + 1e-6) + β over the last axis.

    ε sits outside the square root and the std has Bessel's correction (REFERENCE §1.10 item 5); the
    authors wrote it because PyTorch's fused LayerNorm gave wrong third derivatives.
    """

    eps: float = 1e-6

    @nn.compact
    def __call__(self, x):
        gamma = self.param("gamma", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        beta = self.param("beta", nn.initializers.zeros, (x.shape[-1],), jnp.float32)
        centred = x - jnp.mean(x, axis=-1, keepdims=True)
        std = jnp.sqrt(jnp.sum(centred**2, axis=-1, keepdims=True) / (x.shape[-1] - 1))
        return gamma * centred / (std + self.eps) + beta


class RMSNorm(nn.Module):
    """Mamba's RMSNorm: x · rsqrt(mean(x²) + ε) · weight over the last axis (ε inside the root)."""

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x):
        weight = self.param("weight", nn.initializers.ones, (x.shape[-1],), jnp.float32)
        return x * jax.lax.rsqrt(jnp.mean(x**2, axis=-1, keepdims=True) + self.eps) * weight
