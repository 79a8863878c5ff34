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


@pytest.mark.parametrize("chunk_size, unroll", [(None, False), (2, False), (None, True)])
def test_third_derivative_pairs_equal_the_dense_third_derivative(x64, chunk_size, unroll):
    w = jax.random.normal(jax.random.PRNGKey(0), (20,), jnp.float64)
    U = jax.random.normal(jax.random.PRNGKey(1), (20, 4), jnp.float64)
    T = jax.jacfwd(jax.hessian(_loss))(w)  # [d, d, d], symmetric
    H = jax.hessian(_loss)(w)
    i, j = upper_pairs(4)
    dense = jnp.einsum("abc,ap,bp->pc", T, U[:, i], U[:, j])
    pairs = third_derivative_pairs(_loss, w, U, chunk_size, unroll)
    assert pairs.shape == (10, 20)
    assert jnp.allclose(pairs, dense, rtol=1e-12, atol=1e-14)
    # each row is the pair's own third derivative, and pair_index finds it from (i, j) either way round
    assert jnp.allclose(pairs[pair_index(4)[3, 1]], third_derivative(_loss, w, U[:, 1], U[:, 3]), rtol=1e-12)
    assert jnp.allclose(batched_hvp(_loss, w, U, chunk_size, unroll), H @ U, rtol=1e-12, atol=1e-14)
    assert third_derivative_pairs(_loss, w, U[:, :0], unroll=unroll).shape == (0, 20)


@pytest.mark.slow  # a minute to compile the ResNet's programs both ways
def test_unrolled_products_of_a_convolutional_network_equal_the_vmapped_ones(x64):
    """eig.hvp_batching "unroll" (the CPU default of the MLP, CNN, ResNet and ViT) computes what "vmap"
    does, through the real convolutions, GroupNorms and residual blocks of a small ResNet (float64)."""
    from centralflows.problem.build import build_problem
    from centralflows.runner.config import resolve_config

    config = resolve_config(
        {
            "data": {"name": "synthetic-cifar10", "n": 4, "n_test": 4},
            "arch": {"name": "resnet", "width": 4, "stage_sizes": [1, 1]},
            "opt": {"name": "gd", "lr": 0.1},
            "steps": 1,
        }
    )
    problem = build_problem(config.data.component(), config.arch.component(), 0, config.init, jnp.float64)
    w = problem.w0 + 0.1 * jax.random.normal(jax.random.PRNGKey(0), problem.w0.shape, jnp.float64)
    U = jax.random.normal(jax.random.PRNGKey(1), (w.shape[0], 3), jnp.float64)
    loss = problem.loss_fn
    hvps = [jax.jit(lambda w, U, u=u: batched_hvp(loss, w, U, unroll=u))(w, U) for u in (False, True)]
    assert jnp.allclose(hvps[1], hvps[0], rtol=1e-12, atol=1e-12 * float(jnp.abs(hvps[0]).max()))
    thirds = [
        jax.jit(lambda w, U, u=u: third_derivative_pairs(loss, w, U, unroll=u))(w, U) for u in (False, True)
    ]
    assert jnp.allclose(thirds[1], thirds[0], rtol=1e-12, atol=1e-12 * float(jnp.abs(thirds[0]).max()))
    assert float(jnp.abs(thirds[0]).max()) > 0
