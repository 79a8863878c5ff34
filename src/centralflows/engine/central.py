"""The central-flow velocity assembly (REFERENCE §1.4 steps 3-7), shared by the central, ablated and
stationary flows.

The central flow, the ablated flow (no X-part in dw/dt) and the stationary solve at frozen w (dH/dt = 0)
differ only in which terms enter the linearised stability condition; the oscillation term of the state
drift, Uᵀ(dP/dt)U and the pair weights are the same maths, written here once.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from centralflows.engine.derivatives import pair_index, upper_pairs
from centralflows.engine.optimizers import Optimizer
from centralflows.engine.sdcp import solve_sdcp_with_info


def critical_count(theta: jax.Array, threshold: float, top_only: bool = False) -> int:
    """The size k_c of the critical set: theta is sorted, so the set is the prefix above `threshold`.

    With `top_only` (a scalar preconditioner, where ν moves all effective eigenvalues together) only the
    top eigenvalue can bind, so k_c ≤ 1 (see `centralflows.engine.ablated`).
    """
    k_c = int(jnp.sum(theta > threshold))
    return min(k_c, 1) if top_only else k_c


def n_pairs(k: int) -> int:
    """k(k+1)/2: the unordered pairs i <= j of k eigenpairs (third-derivative vectors, vech length)."""
    return k * (k + 1) // 2


@jax.jit
def rotate_pairs(gradH: jax.Array, U0: jax.Array, U: jax.Array, P: jax.Array) -> jax.Array:
    """The third-derivative vectors of U's pairs from those of U0's, to first order in the change.

    With R = U0ᵀ P U (U ≈ U0 R for P-orthonormal bases of nearby critical subspaces),
    ∇(u_iᵀ H u_j) = Σ_ab R_ai R_bj ∇(u0_aᵀ H u0_b): exact within the span of U0 at the point where gradH
    was taken; what is left is the change of w since then and of U outside that span.

    Args:
        gradH: [m, d] ∇(u0_aᵀ H u0_b) for the pairs a <= b (`upper_pairs` order).
        U0, U: [d, k] the old and new P-orthonormal critical eigenvectors.
        P: [d] the preconditioner of U.
    """
    k = U.shape[1]
    R = U0.T @ (P[:, None] * U)  # [k, k]
    full = gradH[pair_index(k)]  # [k, k, d]
    i, j = upper_pairs(k)
    return jnp.einsum("ai,bj,abd->ijd", R, R, full)[i, j]  # [m, d]


def pair_coefficients(X: jax.Array) -> jax.Array:
    """[m] the weights of the X-driven velocities over the upper triangle i <= j.

    X enters every velocity through the sum over ordered pairs (k, l), so an off-diagonal pair i < j
    carries weight 2 when written over the upper triangle (the authors' metric).
    """
    i, j = upper_pairs(X.shape[0])
    return X[i, j] * jnp.where(i == j, 1.0, 2.0).astype(X.dtype)


def state_channel(opt: Optimizer, s: dict, shape: tuple, leaf: str | None = None) -> tuple:
    """(state, drift, precond) of the optimizer for `sdcp_data`.

    Args:
        s: the optimizer state.
        shape: the shape of w, to which P is broadcast.
        leaf: None: the whole state moves; a key ("nu"): only that leaf moves, the rest of s is frozen
            (the stationary solve at frozen t).
    Returns:
        the moving state, drift(state, g) = ds/dt and precond(state) = P broadcast to `shape`.
    """
    if leaf is None:
        return s, opt.dstate_dt, lambda s_: jnp.broadcast_to(opt.precond(s_), shape)
    drift = lambda x, g_: opt.dstate_dt({**s, leaf: x}, g_)[leaf]
    return s[leaf], drift, lambda x: jnp.broadcast_to(opt.precond({**s, leaf: x}), shape)


def sdcp_data(
    channel: tuple, g, theta, U, HU, dt, dH_dt_stable=None, dH_dt_X=None, secant: bool = False
) -> tuple[jax.Array, jax.Array, dict]:
    """α, β of the SDCP and the state velocities it combines (REFERENCE §1.4 steps 5-7).

    The stability matrix Uᵀ(2P - H)U = diag(2 - θ) is linearised one substep dt ahead:
    α = diag(2 - θ) + dt(2Uᵀ(dP/dt)_stable U - (dH/dt)_stable), β[X] = dt(2Uᵀ(dP/dt)_X U - (dH/dt)_X),
    where the X-part of ds/dt is the oscillation term ½∂²_g f(s, g)[HΣH] of the state drift f.

    Args:
        channel: (state, drift, precond) from `state_channel`.
        g: [d] the gradient used in the drift.
        theta: [k] critical effective eigenvalues; U: [d, k] their P-orthonormal eigenvectors.
        HU: [d, k] H u_i.
        dt: the Euler (or pseudo-time) step of the linearisation.
        dH_dt_stable: [k, k] Uᵀ(dH/dt)U along the stable velocity, or None (frozen w).
        dH_dt_X: [k, k, k, k] the same along the X-driven velocities, or None (frozen w, or no X-part).
        secant: take P's change over the Euler substep itself, not its tangent: the stable part is
            (P(s + dt·ds_stable) - P(s))/dt and the X-part the tangent at s + dt·ds_stable, which is
            P(s_next) up to O(dt²) in the X-part alone. P is nonlinear in the state (√ν̂, and the bias
            correction in t), and early in an RMSProp run ν̂ moves fast, so the tangent misses
            P at the next substep by ½dt²P'' and the flow overshoots 2 by as much (docs/design.md).
    Returns:
        (alpha [k, k], beta [k, k, k, k], parts) with parts "ds_dt_stable", "ds_dt_X" (leaves [m, ...]),
        "dP_dt_stable" [k, k] and "dP_dt_X" [k, k, k, k].
    """
    s, drift, precond = channel
    i, j = upper_pairs(U.shape[1])
    pair = pair_index(U.shape[1])
    ds_dt_stable = drift(s, g)

    def d2f(a, b):  # ½ ∂²_g f(s, g)[a, b], f = drift: the oscillation term of E[f(s, g + δ)]
        inner = lambda g_: jax.jvp(lambda x: drift(s, x), (g_,), (a,))[1]
        return jax.tree.map(lambda v: 0.5 * v, jax.jvp(inner, (g,), (b,))[1])

    ds_dt_X = jax.vmap(d2f)(HU[:, i].T, HU[:, j].T)  # leaves [m, ...]

    # the point at which the X-part of dP/dt is taken: the substep's stable end with `secant`
    s_lin = jax.tree.map(lambda a, b: a + dt * b, s, ds_dt_stable) if secant else s

    def UtPdotU(ds):  # Uᵀ (dP/dt) U for a state velocity ds
        pdot = jax.jvp(precond, (s_lin,), (ds,))[1]
        return U.T @ (pdot[:, None] * U)

    if secant:
        p_step = (precond(s_lin) - precond(s)) / dt
        dP_dt_stable = U.T @ (p_step[:, None] * U)  # [k, k]
    else:
        dP_dt_stable = UtPdotU(ds_dt_stable)  # [k, k]
    dP_dt_X = jax.vmap(UtPdotU)(ds_dt_X)[pair].transpose(2, 3, 0, 1)  # [k, k, k, k]
    # stability matrix Uᵀ(2P - H)U = diag(2 - λ), linearised one substep ahead
    if dH_dt_stable is None:
        alpha = jnp.diag(2 - theta) + 2 * dt * dP_dt_stable
    else:
        alpha = jnp.diag(2 - theta) + dt * (2 * dP_dt_stable - dH_dt_stable)
    beta = 2 * dt * dP_dt_X if dH_dt_X is None else dt * (2 * dP_dt_X - dH_dt_X)
    parts = {"ds_dt_stable": ds_dt_stable, "ds_dt_X": ds_dt_X}
    return alpha, beta, {**parts, "dP_dt_stable": dP_dt_stable, "dP_dt_X": dP_dt_X}


def combine(c: jax.Array, stable, X_parts):
    """stable + Σ_m c_m X_parts[m], leaf by leaf: a velocity from its stable and X-driven parts."""
    return jax.tree.map(lambda a, b: a + jnp.tensordot(c, b, axes=1), stable, X_parts)


def central_velocity(opt: Optimizer, w, s, theta, U, dt, g, gradH, penalty: bool = True, secant: bool = True):
    """dw/dt and ds/dt of the central flow at (w, s) (REFERENCE §1.4 steps 3-7).

    `secant`: P's change over the substep as a secant (`sdcp_data`); False: its tangent, as the
    authors' code.

    With `penalty=False` the implicit curvature penalty -½P⁻¹∇⟨Σ,H⟩ is dropped from dw/dt
    (the ablated flow, `centralflows.engine.ablated`): Σ then reaches the stability condition through
    the state (ν) channel only.

    Args:
        theta: [k] critical effective eigenvalues (> sdcp_threshold), descending.
        U: [d, k] their P-orthonormal eigenvectors.
        dt: the Euler substep, which enters the linearised stability condition.
        g: ∇L(w).
        gradH: [k(k+1)/2, d] the third-derivative vectors ∇(u_iᵀ H u_j), i <= j.
    Returns:
        (dw_dt, ds_dt, aux) with aux holding X and the pieces needed for predictions and logs.
    """
    channel = state_channel(opt, s, w.shape)
    p = channel[2](s)
    dw_dt_stable = -g / p
    HU = p[:, None] * U * theta  # H u_i = λ_i P u_i; the authors' state velocity uses HU, not U
    pair = pair_index(U.shape[1])
    dw_dt_X = -0.5 * gradH / p if penalty else jnp.zeros_like(gradH)  # [m, d]
    dH_dt_stable = (gradH @ dw_dt_stable)[pair]  # [k, k]
    dH_dt_X = (gradH @ dw_dt_X.T)[pair][:, :, pair]  # [k, k, k, k]: (ij) row, (kl) column
    alpha, beta, parts = sdcp_data(channel, g, theta, U, HU, dt, dH_dt_stable, dH_dt_X, secant=secant)
    X, info = solve_sdcp_with_info(alpha, beta)

    c = pair_coefficients(X)  # [m]
    dw_dt = dw_dt_stable + c @ dw_dt_X
    ds_dt = combine(c, parts["ds_dt_stable"], parts["ds_dt_X"])
    aux = {
        "X": X,
        "g": g,
        "HU": HU,
        "dH_dt_stable": dH_dt_stable,
        "dH_dt_X": jnp.einsum("ijkl,kl->ij", dH_dt_X, X),
        "dP_dt_stable": parts["dP_dt_stable"],
        "dP_dt_X": jnp.einsum("ijkl,kl->ij", parts["dP_dt_X"], X),
        "sdcp": {key: info[key] for key in ("iterations", "residual", "converged")},
    }
    return dw_dt, ds_dt, aux
