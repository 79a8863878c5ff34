"""Hessian-vector products and third-derivative vectors against dense derivatives (float64)."""

import jax
import jax.numpy as jnp
import pytest

from centralflows.engine.derivatives import (
    batched_hvp,
    pair_index,
    third_derivative,
    third_derivative_pairs,
    upper_pairs,
)


def _loss(w):
    """A small two-layer tanh network's squared error: non-zero third derivatives in every direction."""
    W1, W2 = w[:12].reshape(3, 4), w[12:].reshape(4, 2)
    x = jnp.linspace(-1.0, 1.0, 15).reshape(5, 3)
    y = jnp.cos(jnp.arange(10.0)).reshape(5, 2)
    return 0.5 * jnp.mean((jnp.tanh(x @ W1) @ W2 - y) ** 2)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_third_derivative_pairs_equal_the_dense_third_derivative(x64, chunk_size):
    w = jax.random.normal(jax.random.PRNGKey(0), (20,), jnp.float64)
    U = jax.random.normal(jax.random.PRNGKey(1), (20, 4), jnp.float64)
    T = jax.jacfwd(jax.hessian(_loss))(w)  # [d, d, d], symmetric
    H = jax.hessian(_loss)(w)
    i, j = upper_pairs(4)
    dense = jnp.einsum("abc,ap,bp->pc", T, U[:, i], U[:, j])
    pairs = third_derivative_pairs(_loss, w, U, chunk_size)
    assert pairs.shape == (10, 20)
    assert jnp.allclose(pairs, dense, rtol=1e-12, atol=1e-14)
    # each row is the pair's own third derivative, and pair_index finds it from (i, j) either way round
    assert jnp.allclose(pairs[pair_index(4)[3, 1]], third_derivative(_loss, w, U[:, 1], U[:, 3]), rtol=1e-12)
    assert jnp.allclose(batched_hvp(_loss, w, U, chunk_size), H @ U, rtol=1e-12, atol=1e-14)
    assert third_derivative_pairs(_loss, w, U[:, :0]).shape == (0, 20)
