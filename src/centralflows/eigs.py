"""Warm-started tracking of the top eigenpairs of P^{-1/2} H P^{-1/2} (REFERENCE §3.5)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.derivatives import batched_hvp


@dataclass(frozen=True)
class EigConfig:
    """Options of one eigen-tracker (the `eig` block of a run config).

    Attributes:
        frequency: run the full solver every `frequency` calls (-1: never); in between, Rayleigh
            quotients of the cached vectors are used.
        track_threshold: add an eigenvector while the smallest tracked effective eigenvalue is
            >= this value (None: fixed count).
        initial_k: number of eigenpairs tracked at the start.
        max_k: cap on the number of tracked eigenpairs.
        tol: LOBPCG tolerance, relative as in the authors' solver: a pair converges when
            ‖Av - θv‖ < tol·10·d·(‖Av‖ + |θ|).
        max_iter: LOBPCG iteration cap.
        chunk_size: how many Hessian-vector products run at once (None: all k).
    """

    frequency: int = -1
    track_threshold: float | None = 1.5
    initial_k: int = 1
    max_k: int = 10
    tol: float = 1e-10
    max_iter: int = 100
    chunk_size: int | None = None

    @classmethod
    def from_dict(cls, options: dict) -> EigConfig:
        return cls(**{key: options[key] for key in cls.__dataclass_fields__ if key in options})


def _sym(A):
    return (A + A.T) / 2


def lobpcg(matvec, X0: jax.Array, max_iter: int, tol: float):
    """Top-k eigenpairs of a symmetric operator by LOBPCG, warm-started from the columns of X0.

    One block of k operator applications per iteration: A·X and A·P are carried along as linear
    combinations, so only the new residual block is multiplied. The Rayleigh-Ritz step works on the
    Gram matrix of [X, P, R] and drops near-dependent directions (an SVQB-style truncation), which
    keeps shapes static under jit.

    Returns:
        (theta [k] descending, X [d, k] orthonormal, iterations)
    """
    d, k = X0.shape
    dtype = X0.dtype
    drop_below = jnp.sqrt(jnp.finfo(dtype).eps)

    X, _ = jnp.linalg.qr(X0)
    AX = matvec(X)
    theta, Z = jnp.linalg.eigh(_sym(X.T @ AX))
    theta, Z = theta[::-1], Z[:, ::-1]
    X, AX = X @ Z, AX @ Z

    def converged(X, AX, theta):
        resid = jnp.linalg.norm(AX - X * theta, axis=0)
        scale = tol * 10 * d * (jnp.linalg.norm(AX, axis=0) + jnp.abs(theta))
        return jnp.all(resid < scale)

    def body(state):
        i, X, AX, P, AP, theta, _ = state
        R = AX - X * theta
        for _ in range(2):  # twice: one Gram-Schmidt pass loses orthogonality in float32
            R = R - X @ (X.T @ R) - P @ (P.T @ R)
        R = R / jnp.maximum(jnp.linalg.norm(R, axis=0), jnp.finfo(dtype).tiny)
        AR = matvec(R)
        S = jnp.concatenate([X, P, R], axis=1)  # [d, 3k]
        AS = jnp.concatenate([AX, AP, AR], axis=1)  # [d, 3k]
        mu, W = jnp.linalg.eigh(_sym(S.T @ S))
        keep = mu > drop_below * mu[-1]
        T = W * jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, mu, 1)), 0)
        G = _sym(T.T @ (S.T @ AS) @ T)
        penalty = 10 * (jnp.sum(jnp.abs(G)) + 1)  # sends dropped directions to the bottom
        th, Zr = jnp.linalg.eigh(G - jnp.diag(jnp.where(keep, 0, penalty)))
        C = T @ Zr[:, ::-1][:, :k]  # [3k, k]
        theta = th[::-1][:k]
        X, AX = S @ C, AS @ C
        norm = jnp.linalg.norm(X, axis=0)
        X, AX = X / norm, AX / norm
        P, AP = S[:, k:] @ C[k:], AS[:, k:] @ C[k:]
        XtP = X.T @ P
        P, AP = P - X @ XtP, AP - AX @ XtP
        # AP is carried as a linear combination, not recomputed: normalising a tiny P (a converged
        # pair) would blow up its round-off, so such directions are zeroed (and dropped above).
        norm = jnp.linalg.norm(P, axis=0)
        big = norm > jnp.sqrt(jnp.finfo(dtype).eps)
        scale = jnp.where(big, 1 / jnp.where(big, norm, 1), 0)
        P, AP = P * scale, AP * scale
        return i + 1, X, AX, P, AP, theta, converged(X, AX, theta)

    zeros = jnp.zeros_like(X)
    state = (0, X, AX, zeros, zeros, theta, converged(X, AX, theta))
    state = jax.lax.while_loop(lambda s: (s[0] < max_iter) & ~s[6], body, state)
    i, X, _, _, _, theta, _ = state
    return theta, X, i


def dense_top_eigs(matvec, d: int, k: int, dtype):
    """Top-k eigenpairs from the dense operator (for problems too small for LOBPCG)."""
    A = _sym(matvec(jnp.eye(d, dtype=dtype)))
    theta, V = jnp.linalg.eigh(A)
    return theta[::-1][:k], V[:, ::-1][:, :k]


def _operator(loss_fn, w, P, chunk_size):
    """V -> P^{-1/2} H(w) P^{-1/2} V."""
    p = jnp.broadcast_to(P, w.shape)[:, None] ** -0.5
    return lambda V: p * batched_hvp(loss_fn, w, p * V, chunk_size)


@partial(jax.jit, static_argnames=("loss_fn", "max_iter", "chunk_size", "dense"))
def _full_solve(loss_fn, w, P, V0, *, max_iter, tol, chunk_size, dense):
    matvec = _operator(loss_fn, w, P, chunk_size)
    if dense:
        theta, V = dense_top_eigs(matvec, w.shape[0], V0.shape[1], w.dtype)
        iters = 0
    else:
        theta, V, iters = lobpcg(matvec, V0, max_iter, tol)
    # align signs with the previous vectors so that tracked directions keep their orientation
    signs = jnp.sign(jnp.sum(V * V0, axis=0))
    return theta, V * jnp.where(signs == 0, 1, signs), iters


@partial(jax.jit, static_argnames=("loss_fn", "chunk_size"))
def _rayleigh_quotients(loss_fn, w, P, V, *, chunk_size):
    theta = jnp.sum(V * _operator(loss_fn, w, P, chunk_size)(V), axis=0)
    order = jnp.argsort(-theta)
    return theta[order], V[:, order]


class EigTracker:
    """Tracks the top eigenpairs of P^{-1/2} H P^{-1/2} along a trajectory.

    Call `update(w, P)` once per measurement; it runs the full warm-started solver every
    `frequency` calls (or when `full=True`) and cheap Rayleigh quotients otherwise. Eigenvectors
    are returned P-orthonormal (U = P^{-1/2} V, UᵀPU = I), eigenvalues in effective units.
    The tracker's state (vectors, call counter, random key, counters) is a dict of arrays so that
    checkpoints can restore it exactly.
    """

    def __init__(self, loss_fn, config: EigConfig, dim: int, dtype, seed: int = 0):
        self.loss_fn = loss_fn
        self.config = config
        self.dim = dim
        self.dtype = dtype
        self.key = jax.random.PRNGKey(seed)
        self.V = jnp.zeros((dim, 0), dtype)
        self.theta = jnp.zeros((0,), dtype)
        self.calls = 0
        self.hvps = 0
        self.last_full = False

    @property
    def k(self) -> int:
        return int(self.V.shape[1])

    @property
    def enabled(self) -> bool:
        return self.config.frequency >= 1

    def _add_vectors(self, n: int):
        self.key, sub = jax.random.split(self.key)
        new = jax.random.normal(sub, (self.dim, n), self.dtype)
        new = new - self.V @ (self.V.T @ new)
        self.V = jnp.concatenate([self.V, new / jnp.linalg.norm(new, axis=0)], axis=1)

    def _solve(self, w, P):
        k = self.k
        dense = self.dim <= 4 * k
        theta, V, iters = _full_solve(
            self.loss_fn, w, P, self.V, max_iter=self.config.max_iter, tol=self.config.tol,
            chunk_size=self.config.chunk_size, dense=dense,
        )  # fmt: skip
        self.hvps += self.dim if dense else k * (1 + int(iters))
        self.theta, self.V = theta, V

    def full_solve(self, w, P):
        """Full solve; then, if tracking, add vectors while the smallest is above the threshold."""
        if self.k == 0:
            self._add_vectors(self.config.initial_k)
        self._solve(w, P)
        threshold = self.config.track_threshold
        while threshold is not None and self.k < self.config.max_k and float(self.theta[-1]) >= threshold:
            self._add_vectors(1)
            self._solve(w, P)

    def ensure_k(self, k: int):
        """Grows the tracked set to at least k vectors (used to match another tracker's count)."""
        if self.k < k:
            self._add_vectors(k - self.k)

    def update(self, w, P, full: bool | None = None):
        """Returns (theta [k] descending, U [d, k] P-orthonormal), or None when disabled.

        Args:
            w: point at which the Hessian is taken.
            P: preconditioner (scalar or [d]); 1 for raw Hessian eigenpairs.
            full: force (True) or forbid (False) a full solve; None follows `frequency`.
        """
        if not self.enabled:
            return None
        if full is None:
            full = self.calls % self.config.frequency == 0 or self.k == 0
        self.calls += 1
        self.last_full = full
        if full:
            self.full_solve(w, P)
        else:
            self.theta, self.V = _rayleigh_quotients(
                self.loss_fn, w, P, self.V, chunk_size=self.config.chunk_size
            )
            self.hvps += self.k
        return self.theta, self.eigenvectors(P)

    def eigenvectors(self, P):
        return self.V * jnp.broadcast_to(P, (self.dim,))[:, None] ** -0.5

    def state_dict(self) -> dict:
        return {
            "V": np.asarray(self.V),
            "theta": np.asarray(self.theta),
            "key": np.asarray(self.key),
            "calls": np.asarray(self.calls),
            "hvps": np.asarray(self.hvps),
        }

    def load_state_dict(self, state: dict):
        self.V = jnp.asarray(state["V"], self.dtype)
        self.theta = jnp.asarray(state["theta"], self.dtype)
        self.key = jnp.asarray(state["key"])
        self.calls = int(state["calls"])
        self.hvps = int(state["hvps"])
