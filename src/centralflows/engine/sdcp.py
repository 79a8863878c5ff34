"""JAX-native solver of the semidefinite complementarity problem of the central flow (REFERENCE §1.3, §1.4).

The problem: given α ∈ 𝕊^k and a linear map β on 𝕊^k, find X ⪰ 0 with α + β[X] ⪰ 0 and
⟨X, α + β[X]⟩ = 0. As in the authors' code it is solved as the convex QP

    min_{X ⪰ 0} ½⟨X, β[X]⟩ + ⟨α, X⟩,

whose KKT conditions are exactly the SDCP once β is self-adjoint and PSD. β is preprocessed like the
authors' (REFERENCE §1.4 step 7): self-adjoint part, negative eigenvalues clipped to 0, RMS rescaling
(undone on X). α is also divided by its norm so that every tolerance below is relative.

Algorithm: a regularised semismooth Newton method on the forward-backward envelope (FBE) of the QP,
in the √2-isometric svec coordinates (m = k(k+1)/2 unknowns), warm-started by a few accelerated
projected-gradient (FISTA) steps. Writing f(x) = ½xᵀBx + aᵀx, τ < 1/λ_max(B), M = I - τB and
z(x) = Π₊(x - τ∇f(x)) (Π₊: projection on the PSD cone, one k×k eigendecomposition), the natural
residual is F(x) = x - z(x) and the FBE φ(x) = f(x) - ⟨∇f(x), F(x)⟩ + ‖F(x)‖²/(2τ) is a C¹ function
with ∇φ = M F / τ whose minimisers are the solutions (z(x*) = x* = X*). Its generalised Hessian
M(I - VM)/τ, with V the generalised Jacobian of Π₊ (eigenvectors and first divided differences of
max(·, 0)), is symmetric PSD, so a Levenberg-Marquardt regularised Newton step (Cholesky of a dense
m×m matrix) is always a descent direction: an Armijo line search on φ globalises it, and its
direction is the semismooth Newton direction on F, which converges quadratically near a
nondegenerate solution. Why this and not an interior-point method: the answer is an exact
projection (exactly PSD, exactly rank-deficient where the true X is), the final accuracy reaches
round-off instead of the barrier parameter, and only a handful of k×k eigendecompositions and m×m
Cholesky factorisations are needed, all inside one `lax.while_loop` (no host round trip on GPU).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

# Iteration caps: typical solves take 3-10 Newton iterations after the warm start, ill-conditioned
# ones (cond(B) ~ 1e4, β a low-rank Gram matrix plus a small ridge) 20-50; the cap only bounds the
# rare worst case, the loop stops at convergence.
_WARM_STEPS = 8
_MAX_NEWTON = 200
_MAX_BACKTRACK = 30
_ARMIJO = 1e-4


def _triu(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Static upper-triangle indices (i ≤ j), row-major: the order of svec."""
    return np.triu_indices(k)


def _svec_weights(k: int) -> np.ndarray:
    """1 on the diagonal, √2 off it: svec scaled this way is an isometry (⟨X, Y⟩ = svec(X)·svec(Y))."""
    i, j = _triu(k)
    return np.where(i == j, 1.0, math.sqrt(2.0))


def svec(X: jax.Array) -> jax.Array:
    """[..., k, k] symmetric -> [..., k(k+1)/2]: upper triangle, off-diagonals times √2 (isometric)."""
    k = X.shape[-1]
    i, j = _triu(k)
    return X[..., i, j] * jnp.asarray(_svec_weights(k), X.dtype)


def smat(x: jax.Array) -> jax.Array:
    """Inverse of `svec`: [..., k(k+1)/2] -> [..., k, k] symmetric."""
    m = x.shape[-1]
    k = (math.isqrt(8 * m + 1) - 1) // 2
    i, j = _triu(k)
    v = x / jnp.asarray(_svec_weights(k), x.dtype)
    X = jnp.zeros(x.shape[:-1] + (k, k), x.dtype)
    return X.at[..., i, j].set(v).at[..., j, i].set(v)


def beta_matrix(beta: jax.Array) -> jax.Array:
    """The matrix B of X ↦ sym(β[X]) in svec coordinates: svec(sym β[X]) = B svec(X).

    β[X]_ij = Σ_kl β_ijkl X_kl sums over *ordered* pairs (k, l), so with X symmetric each
    off-diagonal pair is counted twice: this is the authors' raw-vech contraction with weight 2 on
    off-diagonals (`get_upper_to_mat_metric`). After symmetrising β in (i, j) and in (k, l), the
    entry of B is c_p c_q β_pq with c = 1 on the diagonal and √2 off it (one √2 from the isometric
    svec of the output, one from the weight 2 / √2 of the input), and ⟨X, β[X]⟩ = xᵀBx.
    """
    k = beta.shape[0]
    b = (beta + beta.transpose(1, 0, 2, 3)) / 2
    b = (b + b.transpose(0, 1, 3, 2)) / 2
    i, j = _triu(k)
    c = jnp.asarray(_svec_weights(k), beta.dtype)
    return c[:, None] * b[i, j][:, i, j] * c[None, :]  # [m, m]


def beta_tensor(B: jax.Array) -> jax.Array:
    """Inverse of `beta_matrix` for a matrix B in svec coordinates: [m, m] -> [k, k, k, k]."""
    m = B.shape[0]
    k = (math.isqrt(8 * m + 1) - 1) // 2
    i, j = _triu(k)
    c = jnp.asarray(_svec_weights(k), B.dtype)
    pair = np.zeros((k, k), np.int32)
    pair[i, j] = pair[j, i] = np.arange(m)
    b = B / (c[:, None] * c[None, :])
    return b[pair][:, :, pair]


def project_beta(beta: jax.Array) -> jax.Array:
    """The preprocessed β: self-adjoint part on (𝕊^k, Frobenius), negative eigenvalues clipped to 0.

    β is PSD in exact arithmetic for GD; round-off (or a preconditioned flow such as RMSProp, where
    β need not even be self-adjoint) can make it indefinite, and the QP then is nonconvex.
    """
    return beta_tensor(_psd_part(beta_matrix(beta)))


def _psd_part(B):
    """Symmetric part (= self-adjoint part on 𝕊^k, svec being isometric) with eigenvalues clipped at 0."""
    lam, Q = jnp.linalg.eigh((B + B.T) / 2)
    return (Q * jnp.maximum(lam, 0)) @ Q.T


def _project_psd(x):
    """Π₊ in svec coordinates, with the eigenpairs it used."""
    lam, Q = jnp.linalg.eigh(smat(x))
    return svec((Q * jnp.maximum(lam, 0)) @ Q.T), lam, Q


def _projection_jacobian(lam, Q):
    """Generalised Jacobian V of Π₊ at Z = Q diag(lam) Qᵀ, as an [m, m] matrix in svec coordinates.

    V[H] = Q (Ω ∘ QᵀHQ) Qᵀ with Ω_ij the first divided difference of max(·, 0) at (λ_i, λ_j).
    The congruence H ↦ QᵀHQ is orthogonal in svec coordinates, with matrix P below, so V = Pᵀ diag(ω) P.
    """
    k = lam.shape[0]
    i, j = _triu(k)
    c = jnp.asarray(_svec_weights(k), lam.dtype)
    # (QᵀHQ)_ij = Σ_ab Q_ai H_ab Q_bj; sym over (a, b) because H is symmetric; c on both sides
    QQ = Q[:, i][:, None, :] * Q[:, j][None, :, :]  # [k, k, m]: Q_ai Q_bj for output pair (i, j)
    QQ = (QQ + QQ.transpose(1, 0, 2)) / 2
    P = c[:, None] * QQ[i, j].T * c[None, :]  # [m (output), m (input)]
    pos = jnp.maximum(lam, 0)
    # (λ_i⁺ - λ_j⁺)/(λ_i - λ_j) written so that it is 1, 0 or pos/(pos - neg) without a 0/0
    omega = (pos[i] + pos[j]) / jnp.maximum(jnp.abs(lam[i]) + jnp.abs(lam[j]), jnp.finfo(lam.dtype).tiny)
    return P, omega


def _solve_normalised(B, a, tol, warm_steps, max_newton):
    """Newton on the FBE for min_{x ⪰ 0} ½xᵀBx + aᵀx, B PSD (svec coordinates). Returns (x, info)."""
    m = a.shape[0]
    dtype = a.dtype
    eps = jnp.finfo(dtype).eps
    eye = jnp.eye(m, dtype=dtype)
    # an upper bound on λ_max(B) (an m×m eigendecomposition costs more than the whole solve on CPU)
    L = jnp.maximum(jnp.minimum(jnp.linalg.norm(B), jnp.abs(B).sum(axis=1).max()), eps)
    tau = 0.5 / L  # τ < 1/λ_max makes M = I - τB positive definite: FBE stationary points are solutions
    M = eye - tau * B

    # warm start: FISTA from 0 with step 1/L
    def fista(_, carry):
        y, y_prev, t = carry
        t_next = (1 + jnp.sqrt(1 + 4 * t * t)) / 2
        v = y + ((t - 1) / t_next) * (y - y_prev)
        y_next = _project_psd(v - (B @ v + a) / L)[0]
        return y_next, y, t_next

    x0 = lax.fori_loop(0, warm_steps, fista, (jnp.zeros_like(a), jnp.zeros_like(a), jnp.ones((), dtype)))[0]

    def evaluate(x):
        grad = B @ x + a
        z, lam, Q = _project_psd(x - tau * grad)
        F = x - z
        phi = 0.5 * x @ (B @ x) + a @ x - grad @ F + F @ F / (2 * tau)
        return dict(x=x, z=z, F=F, phi=phi, res=jnp.linalg.norm(F), lam=lam, Q=Q)

    def newton_step(state):
        it, cur, n_ls = state
        P, omega = _projection_jacobian(cur["lam"], cur["Q"])
        G = P @ M
        # τ·(generalised Hessian of φ) = M - M V M, PSD; a Levenberg-Marquardt term ∝ ‖F‖ keeps it
        # invertible on degenerate (non-strictly complementary or B-singular) problems and still
        # gives a quadratic rate where the Hessian is nonsingular. Its smallest curvature is about
        # τλ_min(B) ~ 1/cond(B), so μ must stay below that or Newton degrades to a slow gradient
        # method: μ = ‖F‖ capped at 1e-2 needed 125-250 iterations at cond(B) ~ 5e3 (issue 15);
        # 1e-2‖F‖ capped at 1e-4 converges within 50 up to cond(B) ~ 5e4 and is no slower on
        # well-conditioned problems.
        mu = jnp.clip(1e-2 * cur["res"], 100 * eps, 1e-4)
        H = M - G.T @ (omega[:, None] * G) + mu * eye
        grad_phi = M @ cur["F"]  # τ∇φ
        d = jax.scipy.linalg.cho_solve(jax.scipy.linalg.cho_factor(H), -grad_phi)
        slope = grad_phi @ d / tau  # < 0: d is a descent direction of φ

        def try_step(ls):
            j, _, _ = ls
            t = jnp.asarray(0.5, dtype) ** j
            # the last resort is the projected-gradient point z, which always decreases φ
            x_new = jnp.where(j >= _MAX_BACKTRACK, cur["z"], cur["x"] + t * d)
            new = evaluate(x_new)
            # accept on sufficient decrease of φ, or (immune to round-off in φ near the solution)
            # on a clear decrease of the residual
            ok = (new["phi"] <= cur["phi"] + _ARMIJO * t * slope) | (new["res"] <= 0.9 * cur["res"])
            return j + 1, ok | (j >= _MAX_BACKTRACK), new

        j, _, new = lax.while_loop(lambda ls: ~ls[1], try_step, (jnp.int32(0), jnp.array(False), cur))
        return it + 1, new, n_ls + j - 1

    def not_done(state):
        it, cur, _ = state
        scale = 1 + jnp.linalg.norm(cur["x"])
        return (it < max_newton) & (cur["res"] > tol * scale) & jnp.isfinite(cur["res"])

    it, cur, n_ls = lax.while_loop(not_done, newton_step, (jnp.int32(0), evaluate(x0), jnp.int32(0)))
    residual = cur["res"] / (1 + jnp.linalg.norm(cur["x"]))
    # z is exactly PSD (a projection); at the solution z = x
    return cur["z"], {
        "iterations": it,
        "backtracks": n_ls,
        "residual": residual,
        "converged": residual <= tol,
    }


def solve_sdcp_with_info(
    alpha: jax.Array,
    beta: jax.Array,
    tol: float | None = None,
    max_newton: int = _MAX_NEWTON,
    warm_steps: int = _WARM_STEPS,
) -> tuple[jax.Array, dict]:
    """`solve_sdcp` that also returns solver diagnostics.

    Args:
        alpha: [k, k] symmetric.
        beta: [k, k, k, k], acting as β[X]_ij = Σ_kl β_ijkl X_kl.
        tol: stopping tolerance on the natural residual of the normalised problem, relative to
            1 + ‖x‖ (default: 30 machine epsilons of the working dtype, i.e. ~7e-15 in float64
            and ~4e-6 in float32).
        max_newton: cap on the Newton iterations.
        warm_steps: number of FISTA steps before Newton.

    Returns:
        (X, info) with info = {"iterations", "backtracks", "residual", "converged", "trivial"}
        (trivial: α ⪰ 0, X = 0; converged: residual <= tol, False also for a non-finite residual).
        A float32 solve is as accurate as its arithmetic allows: X carries a relative error of
        about eps·cond(B) (1e-3 at cond(B) ~ 1e4), from round-off in B·x.
    """
    k = alpha.shape[0]
    dtype = jnp.result_type(alpha, beta, jnp.float32)
    alpha, beta = alpha.astype(dtype), beta.astype(dtype)
    zero_info = {
        "iterations": jnp.zeros((), jnp.int32),
        "backtracks": jnp.zeros((), jnp.int32),
        "residual": jnp.zeros((), dtype),
        "converged": jnp.array(True),
        "trivial": jnp.array(True),
    }
    if k == 0:
        return jnp.zeros((0, 0), dtype), zero_info
    if tol is None:
        tol = 30 * float(jnp.finfo(dtype).eps)
    alpha = (alpha + alpha.T) / 2
    trivial = jnp.linalg.eigvalsh(alpha)[0] >= 0

    def solve(_):
        B = beta_matrix(beta)
        B = (B + B.T) / 2
        # Clipping needs an m×m eigendecomposition, which is skipped when B is numerically positive
        # definite (its Cholesky factorisation succeeds): clipping would then change nothing
        # beyond round-off.
        is_pd = jnp.all(jnp.isfinite(jnp.linalg.cholesky(B)))
        B = lax.cond(is_pd, lambda B: B, _psd_part, B)
        a = svec(alpha)
        tiny = jnp.finfo(dtype).tiny
        # normalise B to RMS 1 (as the authors) and a to norm 1; X = (s_a / s_B) · (solution)
        s_B = jnp.maximum(jnp.sqrt(jnp.mean(B * B)), tiny)
        s_a = jnp.maximum(jnp.linalg.norm(a), tiny)
        x, info = _solve_normalised(B / s_B, a / s_a, tol, warm_steps, max_newton)
        X = smat(x * (s_a / s_B))
        return X, {**info, "trivial": jnp.array(False)}

    def skip(_):
        return jnp.zeros((k, k), dtype), zero_info

    return lax.cond(trivial, skip, solve, None)


def solve_sdcp(alpha: jax.Array, beta: jax.Array) -> jax.Array:
    """Solves the SDCP X ⪰ 0, α + β[X] ⪰ 0, ⟨X, α + β[X]⟩ = 0 (REFERENCE §1.4 step 7).

    Convention: β[X]_ij = Σ_kl β_ijkl X_kl over all ordered pairs (k, l), the authors' weight-2
    off-diagonal metric. β is replaced by its self-adjoint PSD part (`project_beta`) before the
    solve, so for an indefinite or non-self-adjoint β the conditions hold for that part. If α ⪰ 0
    the answer is exactly 0. jit- and vmap-compatible; k is static (from the shapes).

    Args:
        alpha: [k, k] symmetric.
        beta: [k, k, k, k].

    Returns:
        X: [k, k] symmetric PSD, in the dtype of the inputs (at least float32).
    """
    return solve_sdcp_with_info(alpha, beta)[0]


def sdcp_residuals(alpha: jax.Array, beta: jax.Array, X: jax.Array) -> dict:
    """Relative KKT residuals of X for SDCP(α, β) (β as given, not preprocessed).

    Returns:
        {"primal": max(0, -λ_min(X)) / ‖X‖, "dual": max(0, -λ_min(S)) / (‖α‖ + ‖β[X]‖),
         "complementarity": |⟨X, S⟩| / (‖X‖ (‖α‖ + ‖β[X]‖))} with S = α + β[X] (symmetrised),
        Frobenius norms, each 0 when its denominator is 0.
    """
    if alpha.shape[0] == 0:
        z = jnp.zeros((), alpha.dtype)
        return {"primal": z, "dual": z, "complementarity": z}
    bX = jnp.einsum("ijkl,kl->ij", beta, X)
    bX = (bX + bX.T) / 2
    S = (alpha + alpha.T) / 2 + bX
    nX = jnp.linalg.norm(X)
    nS = jnp.linalg.norm(alpha) + jnp.linalg.norm(bX)

    def ratio(num, den):
        return jnp.where(den > 0, num / jnp.where(den > 0, den, 1), 0)

    return {
        "primal": ratio(jnp.maximum(0, -jnp.linalg.eigvalsh((X + X.T) / 2)[0]), nX),
        "dual": ratio(jnp.maximum(0, -jnp.linalg.eigvalsh(S)[0]), nS),
        "complementarity": ratio(jnp.abs(jnp.sum(X * S)), nX * nS),
    }
