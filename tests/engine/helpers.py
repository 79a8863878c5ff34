"""Problems for the engine tests: losses with known structure (no data needed), and the ci MLP stand-in."""

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

# The ci scale's MLP stand-in on the synthetic CIFAR-10 subset (the cells gd_example, mlp_rmsprop_central)
CI_MLP_CONFIG = {
    "data": {"name": "synthetic-cifar10", "criterion": "mse", "n": 64, "root": None, "classes": 4,
             "n_test": 64, "noise": 1.0},
    "arch": {"name": "mlp", "width": 32, "depth": 2, "activation": "gelu"},
    "seed": 0,
    "init": "torch",
}  # fmt: skip


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


def small_synth(n=200, d_in=64, rank=8, width=16, seed=0, dtype=jnp.float64):
    """A scaled-down `synth` problem (BENCHMARK.md): low-rank inputs, 4 classes, GELU MLP, ½-MSE.

    GD at η = 0.5 sharpens progressively and enters the edge of stability after ~50 steps.
    """
    rng = np.random.default_rng(seed)
    Z = rng.standard_normal((n, rank))
    X = Z @ rng.standard_normal((rank, d_in)) / np.sqrt(rank) + 0.1 * rng.standard_normal((n, d_in))
    Y = np.eye(4)[np.argmax(Z @ rng.standard_normal((rank, 4)), axis=1)]
    sizes = [(d_in, width), (width, width), (width, 4)]
    parts = []
    for a, b in sizes:
        bound = 1 / np.sqrt(a)
        parts += [rng.uniform(-bound, bound, (a, b)).ravel(), rng.uniform(-bound, bound, b)]
    w0 = jnp.asarray(np.concatenate(parts), dtype)
    X, Y = jnp.asarray(X, dtype), jnp.asarray(Y, dtype)

    def loss_fn(w):
        z, offset = X, 0
        for layer, (a, b) in enumerate(sizes):
            z = z @ w[offset : offset + a * b].reshape(a, b) + w[offset + a * b : offset + a * b + b]
            offset += a * b + b
            if layer < len(sizes) - 1:
                z = jax.nn.gelu(z, approximate=False)
        return 0.5 * jnp.mean(jnp.sum((z - Y) ** 2, axis=1))

    return loss_fn, w0
