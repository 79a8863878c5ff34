"""Problems with known structure for the engine tests (no data or architecture needed)."""

from types import SimpleNamespace

import jax.numpy as jnp
import numpy as np


def as_problem(loss_fn, w0, name="test"):
    """Wraps a loss into the Problem interface the engine expects (metrics/outputs are trivial)."""
    zero = lambda w: jnp.zeros((), w.dtype)
    return SimpleNamespace(
        dataset=name,
        arch=name,
        w0=w0,
        loss_fn=loss_fn,
        n_params=w0.shape[0],
        train_metrics=lambda w: {"loss": loss_fn(w), "acc": zero(w)},
        test_metrics=lambda w: {"loss": loss_fn(w), "acc": zero(w)},
        train_outputs=lambda w: w[:3],
        test_outputs=lambda w: w[:3],
    )


def cubic_loss(spectrum, d=12, seed=0, t_scale=0.3, g_scale=0.3):
    """L(w) = g·w + ½wᵀHw + ⅙T[w,w,w] with H = Q diag(spectrum) Qᵀ (padded with small eigenvalues).

    For it, H(w) = H + T[w] is affine in w, so Uᵀ(2P - H(w))U is exactly linear along a substep.
    """
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    eig = np.concatenate([spectrum, np.linspace(1.0, 0.1, d - len(spectrum))])
    H = Q @ np.diag(eig) @ Q.T
    T = rng.standard_normal((d, d, d))
    T = sum(T.transpose(p) for p in [(0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)]) / 6
    T, H, g = jnp.asarray(t_scale * T), jnp.asarray(H), jnp.asarray(g_scale * rng.standard_normal(d))

    def loss_fn(w):
        return g @ w + 0.5 * w @ H @ w + jnp.einsum("ijk,i,j,k->", T, w, w, w) / 6

    return loss_fn, jnp.zeros(d), (g, H, T)
