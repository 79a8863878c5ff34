"""Shared fixtures: float64 on demand and small problems with known structure."""

import gc

import jax
import jax.numpy as jnp
import numpy as np
import pytest


@pytest.fixture(autouse=True, scope="module")
def release_compiled_programs():
    """Releases each test module's compiled programs after it. XLA:CPU maps memory for every
    executable; the whole suite in one process kept them all and passed the kernel's limit of 65,530
    mappings per process (vm.max_map_count), where the next compile crashed (seen in test_device)."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture
def x64():
    """Enables float64 for one test and restores the previous setting."""
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    yield
    jax.config.update("jax_enable_x64", previous)


def tiny_mlp_loss(n=64, d_in=10, width=20, d_out=3, seed=0, dtype=jnp.float64):
    """A tanh MLP with MSE loss on random data: (loss_fn, w0). Small enough for a dense Hessian."""
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.standard_normal((n, d_in)), dtype)
    Y = jnp.asarray(rng.standard_normal((n, d_out)), dtype)
    sizes = [(d_in, width), (width, width), (width, d_out)]
    d = sum(a * b + b for a, b in sizes)

    def loss_fn(w):
        z, offset = X, 0
        for layer, (a, b) in enumerate(sizes):
            W = w[offset : offset + a * b].reshape(a, b)
            bias = w[offset + a * b : offset + a * b + b]
            offset += a * b + b
            z = z @ W + bias
            if layer < len(sizes) - 1:
                z = jnp.tanh(z)
        return 0.5 * jnp.mean(jnp.sum((z - Y) ** 2, axis=1))

    w0 = jnp.asarray(rng.standard_normal(d) / np.sqrt(width), dtype)
    return loss_fn, w0
