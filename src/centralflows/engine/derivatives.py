"""Hessian-vector products and third-derivative vectors of a loss on a flat parameter vector."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Loss = Callable[[jax.Array], jax.Array]


def _map(f, xs: jax.Array, chunk_size: int | None, unroll: bool = False) -> jax.Array:
    """f over the leading axis of xs: one vmap, `lax.map` in chunks of `chunk_size` to cap memory, or
    with `unroll` one call of f per row in the same program (XLA merges the work they share).

    A plain vmap when everything fits, because XLA:CPU runs convolutions inside a loop body (which
    `lax.map` is, even with a single chunk) about ten times slower (jax-ml/jax#12868). `unroll` is for
    XLA:CPU too: the vmapped tangents of a convolution's kernel come out with the vectors beside the
    channels and are transposed to the batch side after every convolution, a copy of each activation
    that separate products do not make (bench/README.md, "Vectors one by one").
    """
    if unroll:
        return jnp.stack([f(xs[i]) for i in range(xs.shape[0])])
    if chunk_size is None or chunk_size >= xs.shape[0]:
        return jax.vmap(f)(xs)
    return jax.lax.map(f, xs, batch_size=chunk_size)


def hvp(loss_fn: Loss, w: jax.Array, v: jax.Array) -> jax.Array:
    """H(w) v by forward-over-reverse differentiation."""
    return jax.jvp(jax.grad(loss_fn), (w,), (v,))[1]


def batched_hvp(
    loss_fn: Loss, w: jax.Array, V: jax.Array, chunk_size: int | None = None, unroll: bool = False
) -> jax.Array:
    """H(w) V for the columns of V ([d, k] -> [d, k]); `chunk_size` caps how many run at once, `unroll`
    computes them one by one in one program (`_map`)."""
    if V.shape[1] == 0:
        return V
    return _map(lambda v: hvp(loss_fn, w, v), V.T, chunk_size, unroll).T


def third_derivative(loss_fn: Loss, w: jax.Array, u: jax.Array, v: jax.Array) -> jax.Array:
    """∇_w(uᵀ H(w) v) = D³L(w)[u, v, ·], the directional derivative of H(w)u along v."""
    return jax.jvp(lambda x: hvp(loss_fn, x, u), (w,), (v,))[1]


def upper_pairs(k: int) -> tuple[jax.Array, jax.Array]:
    """Index arrays (i, j) of the k(k+1)/2 pairs i <= j, in row-major (vech) order."""
    i, j = jnp.triu_indices(k)
    return i, j


def pair_index(k: int) -> jax.Array:
    """[k, k] map from (i, j) to the position of the pair min(i,j) <= max(i,j) in `upper_pairs` order."""
    i, j = upper_pairs(k)
    m = jnp.arange(i.shape[0], dtype=jnp.int32)
    return jnp.zeros((k, k), jnp.int32).at[i, j].set(m).at[j, i].set(m)


def third_derivative_pairs(
    loss_fn: Loss, w: jax.Array, U: jax.Array, chunk_size: int | None = None, unroll: bool = False
) -> jax.Array:
    """∇_w(u_iᵀ H u_j) for all pairs i <= j of the columns of U: [k(k+1)/2, d], in `upper_pairs` order.

    The pairs of one u_i share the product H(w)u_i: only its tangents along the u_j (j >= i) are
    batched, where one program per pair also batches the product itself (k HVPs instead of k(k+1)/2;
    bench/README.md, "Third-derivative pairs"). With `chunk_size` (a device short of memory) the pairs
    run one program each, `chunk_size` at a time: the rows of pairs together hold more memory than that.
    With `unroll` each pair is its own product in one program, where XLA merges the work they share
    (the primal pass, H(w)u_i), as `_map`.
    """
    k = U.shape[1]
    if k == 0:
        return jnp.zeros((0, w.shape[0]), w.dtype)
    if unroll:
        pairs = zip(*np.triu_indices(k), strict=True)  # upper_pairs' order, as Python ints
        return jnp.stack([third_derivative(loss_fn, w, U[:, a], U[:, b]) for a, b in pairs])
    if chunk_size is not None:
        i, j = upper_pairs(k)
        f = lambda ij: third_derivative(loss_fn, w, U[:, ij[0]], U[:, ij[1]])  # noqa: E731
        return _map(f, jnp.stack([i, j], axis=1), chunk_size)
    # k is static: one program per row; u_i is not batched, so vmap leaves its product unbatched
    rows = [jax.vmap(lambda v, u=U[:, i]: third_derivative(loss_fn, w, u, v))(U[:, i:].T) for i in range(k)]
    return jnp.concatenate(rows)
