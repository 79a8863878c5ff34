"""Warm-started tracking of the top eigenpairs of P^{-1/2} H P^{-1/2} (REFERENCE §3.5)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.derivatives import batched_hvp

# `eig` options that say how the Hessian-vector products run, not what they compute: left out of a run's
# identity like problem.data.NOT_IDENTITY, so a GPU job chunks for its memory under the same run
NOT_IDENTITY = ("chunk_size", "hvp_batching")


@dataclass(frozen=True)
class EigConfig:
    """Options of one eigen-tracker (the `eig` block of a run config).

    Attributes:
        frequency: run the full solver every `frequency` calls (-1: never); in between, the cached
            vectors are updated as `between_solves` says.
        track_threshold: add an eigenvector while the smallest tracked effective eigenvalue is
            >= this value (None: fixed count).
        initial_k: number of eigenpairs tracked at the start.
        max_k: cap on the number of tracked eigenpairs.
        tol: LOBPCG tolerance, relative as in the authors' solver: a pair converges when
            ‖Av - θv‖ < tol·10·d·(‖Av‖ + |θ|).
        max_iter: LOBPCG iteration cap.
        chunk_size: how many Hessian-vector products run at once (None: all k).
        hvp_batching: how the products of a block of vectors run in one program: "vmap" (the vectors
            as a batch axis), "unroll" (one product per vector, sharing the primal pass; faster on
            XLA:CPU for convolutional networks; chunk_size does not apply) or "auto" (the run picks per
            architecture and device: `centralflows.runner.experiment`; "vmap" where nothing picks).
        between_solves: "lobpcg" (one LOBPCG iteration warm-started from the cached vectors: 2k HVPs;
            it follows a rotating or newly rising eigenvector within a step, docs/design.md),
            "quotients" (the authors': the cached vectors' Rayleigh quotients, re-sorted; k HVPs) or
            "extrapolate" (an approximation: the span of the last full solve moved along its change
            since the solve before, then Rayleigh-Ritz in it; k HVPs; a call that does not say how far
            it is from the last solve, whose k changed since, or whose trend missed the last solve's
            span by more than TREND_TOLERANCE takes the LOBPCG iteration).
        warm_start: which vectors start a full solve: "last" (the authors': the last solve's),
            "two_back" (the solve's before: an iterate oscillating with period 2 at the edge of
            stability is closer to w_{t-2} than to w_{t-1}, and its eigenvectors with it) or "auto"
            ("two_back" for the discrete optimizer's iterates, "last" for the flows and midpoints).
        lock: LOBPCG iterations apply the operator to the pairs not yet converged only (soft locking;
            the same tolerance for every pair); False: to all k, as the authors' solver; None (auto):
            on for the processes that read only eigenvalues (discrete iterates, midpoints, stable
            flow: an eigenvalue's error is the square of its pair's residual), off for the flows that
            use the eigenvectors (central, stationary), whose vectors the authors' solver refines far
            below the tolerance while its slowest pair converges (docs/design.md).
    """

    frequency: int = -1
    track_threshold: float | None = 1.5
    initial_k: int = 1
    max_k: int = 10
    tol: float = 1e-10
    max_iter: int = 100
    chunk_size: int | None = None
    hvp_batching: str = "auto"
    between_solves: str = "lobpcg"
    warm_start: str = "auto"
    lock: bool | None = None

    @classmethod
    def from_dict(cls, options: dict) -> EigConfig:
        return cls(**{key: options[key] for key in cls.__dataclass_fields__ if key in options})


def _sym(A):
    return (A + A.T) / 2


class LobpcgState(NamedTuple):
    """LOBPCG's blocks, stored as rows ([k, d]): XLA:CPU runs the k x d by d x k products of the
    Rayleigh-Ritz steps about ten times faster in this layout than as [d, k] columns (bench/README.md)."""

    X: jax.Array  # [k, d] current Ritz vectors, orthonormal rows
    AX: jax.Array  # [k, d] the operator applied to X
    P: jax.Array  # [k, d] previous search directions (zero rows where dropped)
    AP: jax.Array
    theta: jax.Array  # [k] Ritz values, descending
    converged: jax.Array  # scalar bool: every pair meets the tolerance
    pairs_converged: jax.Array  # [k] bool: which pairs meet it


def _converged(X, AX, theta, tol):
    """(every pair meets the tolerance, [k] which do)."""
    d = X.shape[1]
    resid = jnp.linalg.norm(AX - theta[:, None] * X, axis=1)
    scale = tol * 10 * d * (jnp.linalg.norm(AX, axis=1) + jnp.abs(theta))
    pairs = resid < scale
    return jnp.all(pairs), pairs


def orthonormalize(X: jax.Array) -> jax.Array:
    """Orthonormal rows spanning the rows of X ([k, d])."""
    return jnp.linalg.qr(X.T)[0].T


def lobpcg_start(X: jax.Array, AX: jax.Array, tol) -> LobpcgState:
    """The Rayleigh-Ritz start of LOBPCG from orthonormal rows X and AX = A·X."""
    theta, Z = jnp.linalg.eigh(_sym(X @ AX.T))
    Z = Z[:, ::-1].T  # rows: the Ritz vectors' coefficients, by descending value
    X, AX = Z @ X, Z @ AX
    zeros = jnp.zeros_like(X)
    return LobpcgState(X, AX, zeros, zeros, theta[::-1], *_converged(X, AX, theta[::-1], tol))


def lobpcg_residual(state: LobpcgState) -> jax.Array:
    """The normalised residual block R of an iteration, orthogonalised against X and P."""
    X, AX, P, _, theta, _, _ = state
    R = AX - theta[:, None] * X
    for _ in range(2):  # twice: one Gram-Schmidt pass loses orthogonality in float32
        R = R - (R @ X.T) @ X - (R @ P.T) @ P
    norm = jnp.linalg.norm(R, axis=1, keepdims=True)
    return R / jnp.maximum(norm, jnp.finfo(X.dtype).tiny)


def lobpcg_update(state: LobpcgState, R: jax.Array, AR: jax.Array, tol) -> LobpcgState:
    """The Rayleigh-Ritz step of an iteration on the Gram matrix of [X, P, R], given AR = A·R (R may
    hold fewer rows than X: the residuals of the pairs not yet converged). It drops near-dependent
    directions (an SVQB-style truncation), which keeps shapes static under jit."""
    X, AX, P, AP, theta, _, _ = state
    k = X.shape[0]
    dtype = X.dtype
    S = jnp.concatenate([X, P, R], axis=0)  # [3k, d]
    AS = jnp.concatenate([AX, AP, AR], axis=0)  # [3k, d]
    mu, W = jnp.linalg.eigh(_sym(S @ S.T))
    keep = mu > jnp.sqrt(jnp.finfo(dtype).eps) * mu[-1]
    T = W * jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, mu, 1)), 0)
    G = _sym(T.T @ (S @ AS.T) @ T)
    penalty = 10 * (jnp.sum(jnp.abs(G)) + 1)  # sends dropped directions to the bottom
    th, Zr = jnp.linalg.eigh(G - jnp.diag(jnp.where(keep, 0, penalty)))
    C = (T @ Zr[:, ::-1][:, :k]).T  # [k, 3k]
    theta = th[::-1][:k]
    X, AX = C @ S, C @ AS
    norm = jnp.linalg.norm(X, axis=1, keepdims=True)
    X, AX = X / norm, AX / norm
    P, AP = C[:, k:] @ S[k:], C[:, k:] @ AS[k:]
    PtX = P @ X.T
    P, AP = P - PtX @ X, AP - PtX @ AX
    # AP is carried as a linear combination, not recomputed: normalising a tiny P (a converged
    # pair) would blow up its round-off, so such directions are zeroed (and dropped above).
    norm = jnp.linalg.norm(P, axis=1, keepdims=True)
    big = norm > jnp.sqrt(jnp.finfo(dtype).eps)
    scale = jnp.where(big, 1 / jnp.where(big, norm, 1), 0)
    return LobpcgState(X, AX, P * scale, AP * scale, theta, *_converged(X, AX, theta, tol))


_jit_orthonormalize = jax.jit(orthonormalize)
_jit_lobpcg_start = jax.jit(lobpcg_start)
_jit_residual = jax.jit(lobpcg_residual)
_jit_update = jax.jit(lobpcg_update)


def run_lobpcg(matvec_rows, X0: jax.Array, tol, max_iter: int, lock: bool = False):
    """LOBPCG driven from the host, warm-started from the rows of X0 ([k, d]); `matvec_rows` is a
    jitted operator applied to each row of a [k, d] block.

    The loop is in Python, not a `lax.while_loop`, because XLA:CPU runs convolutions inside a loop
    body about ten times slower than outside one (jax-ml/jax#12868; measured 7-10x on the CNN and
    ResNet here). The operator is its own jitted program, separate from LOBPCG's small dense algebra,
    so a network's Hessian-vector product is traced and compiled once per block size, not once per
    LOBPCG stage (a ci Transformer run: 63 s -> 36 s, most of it compilation). The convergence test
    costs one device-to-host sync per iteration.

    With `lock`, an iteration applies the operator to the residuals of the pairs not yet converged
    only (soft locking: a converged pair stays in the Rayleigh-Ritz basis and is still tested); without
    it, to all k, as the authors' solver.

    Returns:
        (theta [k] descending, X [k, d] orthonormal rows, iterations, operator applications (vectors))
    """
    X = _jit_orthonormalize(X0)
    state = _jit_lobpcg_start(X, matvec_rows(X), tol)
    iters, products = 0, X.shape[0]
    while iters < max_iter and not bool(state.converged):
        R = _jit_residual(state)
        if lock:
            R = R[np.flatnonzero(~np.asarray(state.pairs_converged))]
        state = _jit_update(state, R, matvec_rows(R), tol)
        iters, products = iters + 1, products + R.shape[0]
    return state.theta, state.X, iters, products


def lobpcg(matvec, X0: jax.Array, max_iter: int, tol: float):
    """Top-k eigenpairs of a symmetric operator by LOBPCG, warm-started from the columns of X0.

    Args:
        matvec: [d, k] -> [d, k], the operator applied to each column.
        X0: [d, k] initial vectors.

    Returns:
        (theta [k] descending, X [d, k] orthonormal, iterations)
    """
    theta, X, iters, _ = run_lobpcg(jax.jit(lambda Xr: matvec(Xr.T).T), X0.T, tol, max_iter)
    return theta, X.T, iters


def dense_top_eigs(matvec, d: int, k: int, dtype):
    """Top-k eigenpairs from the dense operator (for problems too small for LOBPCG)."""
    A = _sym(matvec(jnp.eye(d, dtype=dtype)))
    theta, V = jnp.linalg.eigh(A)
    return theta[::-1][:k], V[:, ::-1][:, :k]


def _operator(loss_fn, w, P, chunk_size, unroll=False):
    """V -> P^{-1/2} H(w) P^{-1/2} V."""
    p = jnp.broadcast_to(P, w.shape)[:, None] ** -0.5
    return lambda V: p * batched_hvp(loss_fn, w, p * V, chunk_size, unroll)


@partial(jax.jit, static_argnames=("loss_fn", "chunk_size", "unroll"))
def apply_operator_rows(loss_fn, w, P, V, *, chunk_size, unroll=False):
    """P^{-1/2} H(w) P^{-1/2} applied to each row of V ([k, d]): the program of one LOBPCG block, the
    largest a run compiles besides the third derivatives (plan.device sizes both for a GPU's memory)."""
    return _operator(loss_fn, w, P, chunk_size, unroll)(V.T).T


@partial(jax.jit, static_argnames=("loss_fn", "chunk_size", "k"))
def _dense_solve(loss_fn, w, P, *, chunk_size, k):
    return dense_top_eigs(_operator(loss_fn, w, P, chunk_size), w.shape[0], k, w.dtype)


@jax.jit
def _align_signs(V, V0):
    """Flips eigenvectors to agree with the previous ones, so tracked directions keep their orientation."""
    signs = jnp.sign(jnp.sum(V * V0, axis=0))
    return V * jnp.where(signs == 0, 1, signs)


@jax.jit
def _extrapolate_span(V1, V0, since):
    """Rows ([k, d]) spanning V1 + since·(V1 − V0·Q): the span of V1 moved `since` times its change
    from V0's, Q being the orthogonal k x k matrix that brings V0 closest to V1 (orthogonal Procrustes:
    Q = A Bᵀ for V0ᵀV1 = A S Bᵀ), so a rotation within the span is no change."""
    A, _, Bt = jnp.linalg.svd(V0.T @ V1)
    return (V1 + since * (V1 - V0 @ (A @ Bt))).T


# The largest principal angle's sine between the span a trend predicted for a full solve and the span
# solved, below which the trend moves the span between solves (between_solves extrapolate). Measured
# on the ci GD cell: 0.5-1 in the first steps at the edge (a second eigenvalue rising from outside the
# span: extrapolating there overshot the edge by 7 %), 3e-4-5e-3 once the flow settles.
TREND_TOLERANCE = 1e-2


@jax.jit
def _span_distance(rows, V):
    """Sine of the largest principal angle between the span of `rows` ([k, d]) and of V ([d, k],
    orthonormal columns): the 2-norm of the part of rows' orthonormal basis outside V's span."""
    Q, _ = jnp.linalg.qr(rows.T)
    outside = Q - V @ (V.T @ Q)
    return jnp.sqrt(jnp.max(jnp.linalg.eigvalsh(outside.T @ outside)))


@jax.jit
def _rayleigh_quotients(V, AV):
    theta = jnp.sum(V * AV, axis=0)
    order = jnp.argsort(-theta)
    return theta[order], V[:, order]


class EigTracker:
    """Tracks the top eigenpairs of P^{-1/2} H P^{-1/2} along a trajectory.

    Call `update(w, P)` once per measurement; it runs the full warm-started solver every
    `frequency` calls (or when `full=True`) and a cheap update of the cached vectors otherwise
    (one warm-started LOBPCG iteration, or Rayleigh quotients: `between_solves`). Eigenvectors
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
        self.capped_steps = 0  # measurements at which `capped` held (counted by the processes)
        self.last_full = False
        self.V_before = self.V  # the vectors of the full solve before the last (warm_start two_back)
        # the results of the last two full solves (between_solves extrapolate): the span's trend, and
        # how far the trend before them missed the last one (extrapolate only when it predicted well)
        self.solved = self.solved_before = self.V
        self.trend_error = float("inf")

    @property
    def k(self) -> int:
        return int(self.V.shape[1])

    @property
    def capped(self) -> bool:
        """The cap binds: k = max_k and the smallest tracked θ is still ≥ the growth threshold, so an
        untracked eigenvalue may be above it too (the authors' code has no cap)."""
        threshold = self.config.track_threshold
        return (
            threshold is not None and 0 < self.config.max_k <= self.k and float(self.theta[-1]) >= threshold
        )

    @property
    def enabled(self) -> bool:
        return self.config.frequency >= 1

    def _add_vectors(self, n: int):
        self.key, sub = jax.random.split(self.key)
        new = jax.random.normal(sub, (self.dim, n), self.dtype)
        new = new - self.V @ (self.V.T @ new)
        self.V = jnp.concatenate([self.V, new / jnp.linalg.norm(new, axis=0)], axis=1)

    def _operator_rows(self, w, P):
        """The jitted operator on the rows of a [k, d] block: one program per block size."""
        unroll = self.config.hvp_batching == "unroll"
        return partial(
            apply_operator_rows, self.loss_fn, w, P, chunk_size=self.config.chunk_size, unroll=unroll
        )

    def _solve(self, w, P):
        k, chunk = self.k, self.config.chunk_size
        if self.dim <= 4 * k:  # too small for LOBPCG: dense eigendecomposition
            theta, V = _dense_solve(self.loss_fn, w, P, chunk_size=chunk, k=k)
            self.hvps += self.dim
        else:
            start = self.V
            if self.config.warm_start == "two_back" and self.V_before.shape == start.shape:
                start = self.V_before
            theta, V, _, products = run_lobpcg(
                self._operator_rows(w, P), start.T, self.config.tol, self.config.max_iter, self.config.lock
            )
            V = V.T
            self.hvps += products
        self.theta, self.V = theta, _align_signs(V, self.V)

    def full_solve(self, w, P):
        """Full solve; then, if tracking, add vectors while the smallest is above the threshold."""
        before = self.V
        predicted = self._trend(1.0) if self.config.between_solves == "extrapolate" else None
        if self.k == 0:
            self._add_vectors(self.config.initial_k)
        self._solve(w, P)
        threshold = self.config.track_threshold
        while threshold is not None and self.k < self.config.max_k and float(self.theta[-1]) >= threshold:
            self._add_vectors(1)
            self._solve(w, P)
        self.V_before = before
        self.trend_error = float("inf")
        if predicted is not None and predicted.shape[::-1] == self.V.shape:
            self.trend_error = float(_span_distance(predicted, self.V))
        self.solved_before, self.solved = self.solved, self.V

    def _trend(self, since: float):
        """Rows spanning the last full solve's span moved `since` along its change from the solve
        before; None where the two solves and the tracked set differ in k (no trend)."""
        if not 0 < self.k == self.solved.shape[1] == self.solved_before.shape[1]:
            return None
        return _extrapolate_span(self.solved, self.solved_before, since)

    def ensure_k(self, k: int):
        """Grows the tracked set to at least k vectors (used to match another tracker's count)."""
        if self.k < k:
            self._add_vectors(k - self.k)

    def update(self, w, P, full: bool | None = None, count: bool = True, since_solve: float | None = None):
        """Returns (theta [k] descending, U [d, k] P-orthonormal), or None when disabled.

        Args:
            w: point at which the Hessian is taken.
            P: preconditioner (scalar or [d]); 1 for raw Hessian eigenpairs.
            full: force (True) or forbid (False) a full solve; None follows `frequency`.
            count: count the call in the `frequency` schedule (False: an extra call in between).
            since_solve: how far w is from the last full solve's point, as a fraction of the interval
                between the last two (between_solves extrapolate; None: not known).
        """
        if not self.enabled:
            return None
        if full is None:
            full = self.calls % self.config.frequency == 0 or self.k == 0
        self.calls += count
        self.last_full = full
        if full:
            self.full_solve(w, P)
        elif self.config.between_solves in ("lobpcg", "extrapolate") and self.dim > 4 * self.k:
            start, iterations = self.V.T, 1  # one LOBPCG iteration from the cached vectors
            if self._extrapolates(since_solve):  # or Rayleigh-Ritz in the moved span
                start, iterations = self._trend(since_solve), 0
            theta, V, _, products = run_lobpcg(
                self._operator_rows(w, P), start, self.config.tol, iterations, self.config.lock
            )
            self.theta, self.V = theta, _align_signs(V.T, self.V)
            self.hvps += products
        else:  # quotients (or a block too large for LOBPCG, whose full solve is dense anyway)
            self.theta, self.V = _rayleigh_quotients(self.V, self._operator_rows(w, P)(self.V.T).T)
            self.hvps += self.k
        return self.theta, self.eigenvectors(P)

    def _extrapolates(self, since_solve) -> bool:
        """Whether this update moves the last solve's span along its trend (between_solves extrapolate):
        only where the caller says how far it is from that solve, the last three solves had this k and
        the trend of the two before the last predicted its span within TREND_TOLERANCE."""
        return (
            self.config.between_solves == "extrapolate"
            and since_solve is not None
            and self.solved.shape == self.solved_before.shape == self.V.shape
            and self.trend_error <= TREND_TOLERANCE
        )

    def eigenvectors(self, P):
        return self.V * jnp.broadcast_to(P, (self.dim,))[:, None] ** -0.5

    def state_dict(self) -> dict:
        """The tracker's state; arrays by reference (immutable: a snapshot), copied to the host only when
        a checkpoint is written, so the per-step snapshot of the run loop costs no device transfer."""
        return {
            "V": self.V,
            "V_before": self.V_before,
            "solved": self.solved,
            "solved_before": self.solved_before,
            "trend_error": np.asarray(self.trend_error),
            "theta": self.theta,
            "key": self.key,
            "calls": np.asarray(self.calls),
            "hvps": np.asarray(self.hvps),
            "capped_steps": np.asarray(self.capped_steps),
        }

    def load_state_dict(self, state: dict):
        self.V = jnp.asarray(state["V"], self.dtype)
        self.theta = jnp.asarray(state["theta"], self.dtype)
        self.V_before = jnp.asarray(state.get("V_before", state["V"]), self.dtype)  # older checkpoints: V
        # older checkpoints lack the last two solves: the span's trend starts again from the next two
        none = np.zeros((self.dim, 0))
        self.solved = jnp.asarray(state.get("solved", none), self.dtype)
        self.solved_before = jnp.asarray(state.get("solved_before", none), self.dtype)
        self.trend_error = float(state.get("trend_error", np.inf))  # older checkpoints: check anew
        self.key = jnp.asarray(state["key"])
        self.calls = int(state["calls"])
        self.hvps = int(state["hvps"])
        self.capped_steps = int(state.get("capped_steps", 0))  # absent in older checkpoints
