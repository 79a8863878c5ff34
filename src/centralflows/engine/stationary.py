"""Stationary EMA ν̄(w), preconditioners P̄(w) and P̂(w), and the stationary flow (REFERENCE §1.6).

Derivation and algorithm: docs/stationary.md. In short, at frozen w the central flow's ν-dynamics

    dν/dt = κ [g^{⊙2} + diag(HΣH) - ν],   κ = (1-β₂)/β₂,   Σ = U X Uᵀ from the SDCP,

have a unique fixed point ν̄(w); its preconditioner P̄ = P(ν̄) (= √ν̄/η for ε = 0 and no bias
correction) solves the convex program

    min_{P diagonal} tr P + η⁻² ‖g‖²_{P⁻¹}   subject to   H ⪯ 2P,

and the oscillation covariance Σ̄ at the fixed point is η²/2 times its dual variable. P̂ is the
same program without the gradient term (η → ∞). Both are computed by a damped fixed-point
iteration of exactly those ν-dynamics in pseudo-time, with the SDCP re-solved on the top
eigenpairs of P^{-1/2}HP^{-1/2} from the warm-started eigen-tracker at every iteration: Hessian-
vector products only, O(k·d) memory, no third derivatives. Every fixed point satisfies the KKT
conditions of the convex program, so it is its (unique) solution.

The stationary flow is dw/dt = -P̄(w)⁻¹[∇L + ½∇⟨Σ̄(w), H⟩], with Σ̄(w) the SDCP solution at the
fixed point: the quasi-static limit of the central flow, where ν has relaxed to ν̄(w(t)).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.central import (
    combine,
    critical_count,
    n_pairs,
    pair_coefficients,
    sdcp_data,
    state_channel,
)
from centralflows.engine.compiled import Compiled
from centralflows.engine.derivatives import third_derivative_pairs
from centralflows.engine.eigs import EigConfig, EigTracker
from centralflows.engine.optimizers import Optimizer
from centralflows.engine.predictions import predictions
from centralflows.engine.protocol import Measurement, Process, euler
from centralflows.engine.registry import SDCP_THRESHOLD
from centralflows.engine.sdcp import solve_sdcp


@dataclass(frozen=True)
class StationaryConfig:
    """Options of the fixed-point solver for ν̄ and P̂.

    Attributes:
        step: pseudo-time step h of the ν-dynamics, as a fraction of ν's relaxation (h = 1: the
            off-critical coordinates reach g² in one iteration; the critical ones take a Newton-
            like step of the linearised stability condition). 0 < h ≤ 1 keeps ν > 0.
        max_iter: iteration cap.
        tol: stop when max|ν_{n+1} - ν_n| / max ν_n < tol and the top effective eigenvalue is
            ≤ 2 + tol_eig.
        tol_eig: tolerance on the stability condition λ_max(P⁻¹H) ≤ 2.
        sdcp_threshold: effective eigenvalues above this enter the SDCP.
        floor: for P̂ (no gradient floor), ν is kept ≥ floor · max ν so that P stays invertible;
            coordinates of P̂ below that level are reported at the floor.
    """

    step: float = 0.5
    max_iter: int = 200
    tol: float = 1e-5
    tol_eig: float = 1e-4
    sdcp_threshold: float = SDCP_THRESHOLD
    floor: float = 1e-12


@dataclass
class StationaryResult:
    """ν̄ (or ν̂), its preconditioner and the stationary oscillation covariance Σ̄ = U X Uᵀ."""

    nu: jax.Array  # [d] (RMSProp) or [] (Scalar RMSProp)
    P: jax.Array  # [d], P(ν)
    X: jax.Array  # [k, k]
    theta: jax.Array  # [k] effective eigenvalues at P (critical ones first)
    U: jax.Array  # [d, k] P-orthonormal eigenvectors
    iterations: int
    residual: float  # max|Δν| / (h · max ν) at the last iteration: the relative size of dν/dt/κ
    converged: bool


def _nu_rate(opt: Optimizer) -> float:
    """κ in dν/dt = κ(g² + diag(HΣH) - ν), from F and the state rate (REFERENCE §1.2)."""
    return (1 - opt.beta2) * opt.state_rates()["nu"]


def frozen_nu_velocity(opt: Optimizer, s: dict, g, theta, U, dt):
    """The central flow's dν/dt at frozen w (dw/dt = 0), with X from its SDCP one step dt ahead.

    At frozen w only P moves, so the linearised stability matrix is
    Uᵀ(2P - H)U|_{t+dt} ≈ diag(2 - θ) + 2dt·Uᵀ(dP/dt)U, affine in X through the oscillation term
    ½∂²_g f(s, g)[HΣH] of the state drift f (REFERENCE §1.4 steps 5-7 with dH/dt = 0).

    Args:
        opt: the optimizer (its `dstate_dt` and `precond` define the dynamics).
        s: state {"t", "nu"}; t is frozen.
        g: [d] the gradient used in the drift (∇L(w), or 0 for P̂).
        theta: [k] critical effective eigenvalues; U: [d, k] their P-orthonormal eigenvectors.
        dt: pseudo-time step entering the linearisation.
    Returns:
        (dnu_dt, X)
    """
    d = U.shape[0]
    channel = state_channel(opt, s, (d,), leaf="nu")
    # H u_i = λ_i P u_i, taken at λ_i = 2 (the authors' "HU ≈ 2PU"): this makes β exactly
    # self-adjoint and PSD, so the SDCP is the QP the solver assumes even far from the edge; the
    # fixed point is unchanged because there X lives on the eigenvalue-2 eigenspace.
    HU = 2 * channel[2](channel[0])[:, None] * U
    alpha, beta, parts = sdcp_data(channel, g, theta, U, HU, dt)  # dH/dt = 0: w is frozen
    X = solve_sdcp(alpha, beta)
    return combine(pair_coefficients(X), parts["ds_dt_stable"], parts["ds_dt_X"]), X


def solver_eig_config(eig: EigConfig, d: int) -> EigConfig:
    """The eigen-tracker options of a fixed-point solve: it solves at every iteration (frequency 1) and
    must see a few eigenvalues past the edge (track_threshold 1.5 unless set); max_k is capped at d."""
    threshold = 1.5 if eig.track_threshold is None else eig.track_threshold
    return dataclasses.replace(eig, frequency=1, max_k=min(eig.max_k, d), track_threshold=threshold)


class StationarySolver:
    """Fixed-point solver for ν̄(w) (gradient term on) and ν̂(w) (off: P̂), warm-started across calls.

    Args:
        kernels: the run's `Compiled` (loss, optimizer; RMSProp or Scalar RMSProp).
        tracker: the eigen-tracker of P^{-1/2}HP^{-1/2} used (and warm-started) by the iteration;
            its config should track a few eigenvalues beyond the edge (track_threshold ~1.5).
        config: `StationaryConfig`.
    """

    def __init__(self, kernels: Compiled, tracker: EigTracker, config: StationaryConfig = StationaryConfig()):
        opt = kernels.opt
        if not opt.has_ema:
            raise ValueError(f"the stationary EMA needs an EMA of squared gradients, not opt '{opt.name}'")
        if not 0 < config.step <= 1:
            raise ValueError(f"StationaryConfig.step must lie in (0, 1], got {config.step}")
        self.kern = kernels
        self.tracker = tracker
        self.config = config
        self.scalar = opt.scalar_preconditioner
        self._steps = {}

    def _step_fn(self, k_c: int, with_gradient: bool):
        """The jitted pseudo-time step ν_n -> (ν_{n+1}, X) for k_c critical pairs."""
        key = (k_c, with_gradient)
        if key not in self._steps:
            opt, floor = self.kern.opt, self.config.floor

            def step(s, g, theta, U, dt):
                dnu, X = frozen_nu_velocity(opt, s, g, theta, U, dt)
                # the step is taken linearly in P, not in ν: the SDCP linearised P(ν) = (√ν̂ + ε)/η,
                # and stepping P itself makes Uᵀ(2P - H)U at the new point exactly α + β[X] (for
                # fixed U); stepping ν overshoots through the concavity of √ν and the iteration
                # 2-cycles. The fixed points are the same (dP/dt = 0 ⟺ dν/dt = 0).
                P, Pdot = jax.jvp(lambda nu: opt.precond({**s, "nu": nu}), (s["nu"],), (dnu,))
                new = nu_from_precond(opt, s, P + dt * Pdot)
                if not with_gradient:
                    new = jnp.maximum(new, floor * jnp.max(new))
                return new, X

            self._steps[key] = jax.jit(step)
        return self._steps[key]

    def solve(
        self, w, s: dict, nu0=None, with_gradient: bool = True, max_iter: int | None = None
    ) -> StationaryResult:
        """Iterates ν ← ν + dt·dν/dt at frozen (w, t) from ν0 (default s["nu"]) to the fixed point.

        Args:
            w: [d] weights (frozen).
            s: optimizer state; t is kept, ν is the starting point unless nu0 is given.
            with_gradient: True for ν̄ (P̄); False drops g from the drift (P̂, the η → ∞ limit).
            max_iter: iteration cap of this solve (default: the config's `max_iter`).
        """
        cfg, opt = self.config, self.kern.opt
        g = self.kern.grad(w) if with_gradient else jnp.zeros_like(w)
        nu = jnp.asarray(s["nu"] if nu0 is None else nu0, w.dtype)
        if not with_gradient or not jnp.all(nu > 0):
            nu = jnp.maximum(nu, jnp.max(nu) * 1e-3 if float(jnp.max(nu)) > 0 else 1.0)
        h = cfg.step
        residual, converged, it = math.inf, False, 0
        for it in range(1, (max_iter or cfg.max_iter) + 1):  # noqa: B007 (the count is returned)
            dt = h / _nu_rate(opt)
            s_n = {**s, "nu": nu}
            P = jnp.broadcast_to(opt.precond(s_n), w.shape)
            theta, U = self.tracker.update(w, P, full=True)
            k_c = critical_count(theta, cfg.sdcp_threshold, top_only=self.scalar)
            step = self._step_fn(k_c, with_gradient)
            new, X = step(s_n, g, theta[:k_c], U[:, :k_c], jnp.asarray(dt, w.dtype))
            scale = float(jnp.max(nu))
            change = float(jnp.max(jnp.abs(new - nu))) / scale
            if change / h > 0.9 * residual:
                # no contraction: the linearised stability condition overshoots (the eigenvectors
                # rotate over a long step), so damp, down to 1/64 of the configured step
                h = max(h / 2, cfg.step / 64)
            residual = change / h
            nu = new
            if change < cfg.tol and float(theta[0]) <= 2 + cfg.tol_eig:
                converged = True
                break
        s_n = {**s, "nu": nu}
        P = jnp.broadcast_to(opt.precond(s_n), w.shape)
        return StationaryResult(nu, P, X, theta, U[:, : X.shape[0]], it, residual, converged)


def precond_speed(g, P) -> jax.Array:
    """‖g‖²_{P⁻¹} = gᵀP⁻¹g, the instantaneous loss decrease of dw/dt = -P⁻¹g (REFERENCE §1.6)."""
    return jnp.sum(g**2 / P)


def baseline_speed(g, sharpness) -> jax.Array:
    """The speed of GD at its largest stable step, P = (S/2)·I: 2‖g‖²/S."""
    return 2 * jnp.sum(g**2) / sharpness


class StationaryProbe:
    """Diagnostics along the central flow (W3.10-W3.13): ν̄(w(t)), P̂(w(t)), P̄(w(t)) and their speeds.

    Every `every`-th measurement solves ν̄ and ν̂ at the flow's current (w, t), each warm-started
    from its previous solution with its own eigen-tracker, and logs under `stationary/`:
    `nu_cosine` = cos(ν(t), ν̄(w(t))), `nu_bar_selected_idx` (ν̄ at the `*_selected_idx`
    coordinates), the speeds ‖∇L‖²_{P⁻¹} of `p_bar`, `p_hat`, `current` (P(ν(t))) and `baseline`
    (GD at its largest stable step, P = (S/2)·I), the sharpness S used, and the solvers'
    convergence. Other measurements log NaN, so every step has the same shapes.

    In float32 on networks, P̂'s iteration does not meet `tol`: it settles into a small cycle (a
    relative ν change of ~1e-2) while ‖∇L‖²_{P̂⁻¹} is stable to < 1 % (measured on the test MLP
    over 100-400 more iterations). So after its first solve, warm-started P̂ solves are capped at
    `hat_warm_iter` iterations, and `p_hat_converged` records whether tol was met.
    """

    def __init__(self, kernels: Compiled, eig: EigConfig, every: int, seed: int = 0,
                 config: StationaryConfig = StationaryConfig(), hat_warm_iter: int = 20):  # fmt: skip
        if every < 1:
            raise ValueError(f"StationaryProbe needs every >= 1, got {every}")
        d, dtype = kernels.problem.w0.shape[0], kernels.problem.w0.dtype
        options = solver_eig_config(eig, d)
        tracker = lambda offset: EigTracker(kernels.loss_fn, options, d, dtype, seed + offset)
        self.kern = kernels
        self.every = every
        self.bar = StationarySolver(kernels, tracker(0), config)
        self.hat = StationarySolver(kernels, tracker(1), config)
        self.hat_warm_iter = min(config.max_iter, hat_warm_iter)
        self.calls = 0
        self.nu_bar = self.nu_hat = None  # previous solutions (warm starts)

    def _missing(self) -> dict:
        nan = jnp.asarray(jnp.nan, self.kern.problem.w0.dtype)
        out = {f"stationary/{key}": nan for key in self._SCALARS}
        out["stationary/nu_bar_selected_idx"] = jnp.full(self.kern.idx.shape, nan)
        return out

    _SCALARS = (
        "nu_cosine", "sharpness", "speed_baseline", "speed_p_hat", "speed_p_bar", "speed_current",
        "nu_bar_converged", "p_hat_converged",
    )  # fmt: skip

    def measure(self, w, s: dict, sharpness) -> dict:
        """The `stationary/*` logs at the flow's point (w, s); S = `sharpness` (top raw eigenvalue)."""
        due = self.calls % self.every == 0
        self.calls += 1
        if not due:
            return self._missing()
        bar = self.bar.solve(w, s, nu0=self.nu_bar)
        warm = self.nu_hat is not None  # the first solve is cold: it gets the full `max_iter`
        hat = self.hat.solve(
            w, s, nu0=self.nu_hat, with_gradient=False, max_iter=self.hat_warm_iter if warm else None
        )
        self.nu_bar, self.nu_hat = bar.nu, hat.nu
        g = self.kern.grad(w)
        d = w.shape[0]
        nu, nu_bar = jnp.broadcast_to(s["nu"], (d,)), jnp.broadcast_to(bar.nu, (d,))
        cosine = jnp.dot(nu, nu_bar) / (jnp.linalg.norm(nu) * jnp.linalg.norm(nu_bar))
        return {
            "stationary/nu_cosine": cosine,
            "stationary/nu_bar_selected_idx": nu_bar[self.kern.idx],
            "stationary/sharpness": sharpness,
            "stationary/speed_baseline": baseline_speed(g, sharpness),
            "stationary/speed_p_hat": precond_speed(g, hat.P),
            "stationary/speed_p_bar": precond_speed(g, bar.P),
            "stationary/speed_current": precond_speed(g, jnp.broadcast_to(self.kern.opt.precond(s), (d,))),
            "stationary/nu_bar_converged": float(bar.converged),
            "stationary/p_hat_converged": float(hat.converged),
        }

    def state_dict(self) -> dict:
        empty = np.zeros((0,))
        return {
            "calls": np.asarray(self.calls),
            "nu_bar": empty if self.nu_bar is None else self.nu_bar,  # by reference, as EigTracker's
            "nu_hat": empty if self.nu_hat is None else self.nu_hat,
            "bar_eigs": self.bar.tracker.state_dict(),
            "hat_eigs": self.hat.tracker.state_dict(),
        }

    def load_state_dict(self, state: dict):
        dtype = self.kern.problem.w0.dtype
        self.calls = int(state["calls"])
        warm = lambda a: None if np.size(a) == 0 else jnp.asarray(a, dtype)
        self.nu_bar, self.nu_hat = warm(state["nu_bar"]), warm(state["nu_hat"])
        self.bar.tracker.load_state_dict(state["bar_eigs"])
        self.hat.tracker.load_state_dict(state["hat_eigs"])


class StationaryFlow(Process):
    """dw/dt = -P̄(w)⁻¹[∇L + ½∇⟨Σ̄(w), H⟩]: the central flow with ν replaced by ν̄(w) at every substep.

    The state is (t, ν̄): ν̄ is re-solved (warm-started from the previous one, so a few iterations)
    at every substep and logged as `opt.*`; the flow logs the central flow's schema plus
    `flow_aux/stationary_iterations` and `flow_aux/stationary_residual`.
    """

    name = "stationary"
    is_flow = True
    reads_eigenvectors = True

    def __init__(
        self, kernels, w, s, eig, seed=0, nsubsteps=4, solver: StationaryConfig = StationaryConfig(),
        initialize=True,
    ):  # fmt: skip
        if initialize:
            s = kernels.initial_state(w, s)
        super().__init__(kernels, w, s, solver_eig_config(eig, w.shape[0]), seed)
        self.nsubsteps = nsubsteps
        self.solver = StationarySolver(kernels, self.eigs, solver)
        self.third_derivatives = 0
        self._velocity_fns = {}

    def _dw_dt(self, X, U, P):
        k_c = X.shape[0]
        if k_c not in self._velocity_fns:
            loss_fn, chunk, unroll = self.kern.loss_fn, self.kern.chunk_size, self.kern.unroll

            def velocity(w, X, U, P):
                g = jax.grad(loss_fn)(w)
                c = pair_coefficients(X)
                gradH = third_derivative_pairs(loss_fn, w, U, chunk, unroll)  # [m, d]
                return -(g + 0.5 * c @ gradH) / P

            self._velocity_fns[k_c] = jax.jit(velocity)
        self.third_derivatives += n_pairs(k_c)
        return self._velocity_fns[k_c](self.w, X, U, P)

    def _solve(self):
        sol = self.solver.solve(self.w, self.s)
        self.s = {**self.s, "nu": sol.nu}
        return sol

    def measure(self) -> Measurement:
        """The carry is dw/dt of the first substep."""
        sol = self._solve()
        k = self.kern
        logs, _ = k.observe(self.w, self.s)
        eig_logs, _ = self._eig_logs(self.w, sol.P, full=False)  # cheap update (eig.between_solves)
        dw_dt = self._dw_dt(sol.X, sol.U, sol.P)
        HU = sol.P[:, None] * sol.U * sol.theta[: sol.X.shape[0]]
        logs.update(eig_logs)
        logs.update(
            {
                **predictions(logs, sol.X, HU, sol.U, jnp.linalg.eigvalsh(sol.X)[::-1]),
                "flow_aux/X": sol.X,
                "flow_aux/stationary_iterations": sol.iterations,
                "flow_aux/stationary_residual": sol.residual,
                "eig_logs/third_derivatives": self.third_derivatives,
            }
        )
        return Measurement(logs, self.w, dw_dt)

    def step(self, measured: Measurement) -> dict:
        dt = 1.0 / self.nsubsteps
        dw_dt = measured.carry
        zero = jax.tree.map(jnp.zeros_like, self.s)
        for n in range(self.nsubsteps):
            if n > 0:
                sol = self._solve()
                dw_dt = self._dw_dt(sol.X, sol.U, sol.P)
            self.w, _ = euler(self.w, self.s, dw_dt, zero, dt)
        self.s = {**self.s, "t": self.s["t"] + 1}  # flow time = step count; ν is a function of w
        return {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "third_derivatives": np.asarray(self.third_derivatives)}

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.third_derivatives = int(state["third_derivatives"])


def nu_from_precond(opt: Optimizer, s: dict, P) -> jax.Array:
    """Inverse of ν ↦ P(s) = (√ν̂ + ε)/η at the state's t: ν = c_t (ηP - ε)², c_t = 1 - β₂^t or 1."""
    root = jnp.maximum(P * opt.learning_rate(s) - opt.eps, 0.0)
    return root**2 * ((1 - opt.beta2 ** s["t"]) if opt.bias_correction else 1.0)
