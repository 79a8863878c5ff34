"""The four processes advanced in lockstep: discrete, midpoint, stable flow and central flow.

Each follows the two-phase protocol of `centralflows.engine.protocol`: `measure()` evaluates the current
point (loss, gradient, eigenpairs, and for the central flow the SDCP of its first substep) and returns
a Measurement; `step(measured)` advances one unit of time from it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.central import critical_count, n_pairs, rotate_pairs
from centralflows.engine.predictions import predictions
from centralflows.engine.protocol import Measurement, Process, euler
from centralflows.engine.registry import EDGE_TOL, SDCP_THRESHOLD

# central.third_every extrapolate: how far the last step's trend may miss a step's first third
# derivatives (relative) for the step to carry them along the new trend. Measured: 2e-5-7e-3 on synth
# (never above); on the ci GD cell 0.11-0.01 in its first steps at the edge (then 2e-5-4e-3), on the
# scalar RMSProp cell that starts far above the edge 1.6-0.02 in its first 14 steps: there the
# unguarded extrapolation moved the final loss by 9 % (bench/README.md).
THIRD_TREND_TOLERANCE = 1e-2

log = logging.getLogger("centralflows")


class Discrete(Process):
    """The real optimizer, stepped by its optax transformation."""

    name = "discrete"
    oscillates = True

    def measure(self) -> Measurement:
        k = self.kern
        logs, g = k.observe(self.w, self.s)  # opt.* are replaced below by the state of this step
        update, s_next = k.optax_update(g, self.s)
        logs.update(k.opt.log_values(s_next, k.idx))
        eig_logs, _ = self._eig_logs(self.w, k.precond(s_next))
        return Measurement({**logs, **eig_logs}, self.w, (self.w + update, s_next))

    def step(self, measured: Measurement) -> dict:
        self.w, self.s = measured.carry
        return {}


class MidpointStep(NamedTuple):
    """The midpoint run's measurement: its iterate w_t, its next iterate and state."""

    w: jax.Array
    w_next: jax.Array
    s_next: dict


class Midpoint(Process):
    """Measures at the second-order midpoint w*_t = ¼(w_{t-1} + 2 w_t + w_{t+1}) of its own discrete run."""

    name = "midpoint"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_prev = self.w  # at t = 0 there is no w_{-1}: w*_0 = w_0 (see measure)
        self.first = True

    def measure(self) -> Measurement:
        """Measures at the midpoint w*_t, which is also the point it reports."""
        k = self.kern
        g = k.grad(self.w)
        update, s_next = k.optax_update(g, self.s)
        w_next = self.w + update
        w_mid = self.w if self.first else 0.25 * (self.w_prev + 2 * self.w + w_next)
        logs, _ = k.observe(w_mid, s_next)
        eig_logs, _ = self._eig_logs(w_mid, k.precond(s_next))
        return Measurement({**logs, **eig_logs}, w_mid, MidpointStep(self.w, w_next, s_next))

    def step(self, measured: Measurement) -> dict:
        self.w_prev, self.w, self.s = self.w, measured.carry.w_next, measured.carry.s_next
        self.first = False
        return {}

    def state_dict(self) -> dict:
        return {**super().state_dict(), "w_prev": self.w_prev, "first": np.asarray(self.first)}

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.w_prev = jnp.asarray(state["w_prev"], self.w.dtype)
        self.first = bool(state["first"])


class StableFlow(Process):
    """dw/dt = -P(s)^{-1}∇L, ds/dt = drift(s, ∇L): Euler with max(min_nsubsteps, ⌈2·S_eff⌉) substeps."""

    name = "stable"
    is_flow = True

    def __init__(self, kernels, w, s, eig, seed=0, min_nsubsteps=4, max_seff=100.0, initialize=True):
        if initialize:
            s = kernels.initial_state(w, s)
        # the stable flow tracks a fixed number of eigenpairs (REFERENCE §1.2)
        super().__init__(kernels, w, s, dataclasses.replace(eig, track_threshold=None), seed)
        self.min_nsubsteps = min_nsubsteps
        self.max_seff = max_seff

    def measure(self) -> Measurement:
        """The carry is the number of Euler substeps of this step."""
        if self.stopped:
            return Measurement({}, self.w)
        logs, P, eig_logs, pairs = self._observe_point()
        nsubsteps = self.min_nsubsteps
        if pairs is not None:
            seff = float(pairs[0][0])
            nsubsteps = max(self.min_nsubsteps, math.ceil(2 * seff))
            if seff > self.max_seff:
                self.stopped = f"effective sharpness {seff:.4g} > max_seff {self.max_seff:g}"
        return Measurement({**logs, **eig_logs, "substeps": nsubsteps}, self.w, nsubsteps)

    def step(self, measured: Measurement) -> dict:
        if not self.stopped:
            self.w, self.s = self.kern.stable_substeps(self.w, self.s, measured.carry)
        return {}


class CentralStep(NamedTuple):
    """The central flow's measurement: the velocity of its first substep and that substep's SDCP
    diagnostics, and Σ's P-orthonormal eigenvectors with P at the point (for `deltas`)."""

    dw_dt: jax.Array
    ds_dt: dict
    sdcp: dict
    sigma_basis: jax.Array  # [d, k_c]
    P: jax.Array


class CentralFlow(Process):
    """The central flow: Euler with `nsubsteps` substeps; the SDCP fixes the oscillation covariance."""

    name = "central"
    is_flow = True
    reads_eigenvectors = True  # the SDCP projects onto the critical eigenvectors
    max_seff = 10.0  # the default of central.max_seff
    # S_eff above this at the first measurement: the flow starts above the edge, where it is undefined
    start_warn_seff = 4.0
    penalty = True  # the implicit curvature penalty in dw/dt (False: the ablated flow)
    top_only = False  # only the top eigenvalue may enter the SDCP (the ablated flow with a scalar P)

    def __init__(
        self, kernels, w, s, eig, seed=0, nsubsteps=4, sdcp_threshold=SDCP_THRESHOLD,
        frequency_in_substeps=False, initialize=True, max_seff=None, edge_tol=EDGE_TOL, max_refine=3,
        secant_precond=True, lookahead=True, third_every="extrapolate", probe=None,
    ):  # fmt: skip
        if initialize:
            s = kernels.initial_state(w, s)
        if eig.frequency < 1:
            raise ValueError(
                "the central flow needs eigenpairs: set eig.frequency >= 1 (e.g. --eig.frequency 1)"
            )
        # one full solve per unit time, the cheap update (eig.between_solves) at the other substeps
        freq = eig.frequency if frequency_in_substeps else eig.frequency * nsubsteps
        super().__init__(kernels, w, s, dataclasses.replace(eig, frequency=freq), seed)
        self.nsubsteps = nsubsteps
        self.sdcp_threshold = sdcp_threshold
        self.third_derivatives = 0
        if max_seff is not None:
            self.max_seff = max_seff
        self.probe = probe  # optional diagnostics logged at each measurement (stationary.StationaryProbe)
        self.sdcp_solves = self.sdcp_unconverged = 0
        self.measured = False
        # step-size control (`_control`): each of the nsubsteps substeps is split into 2**refine
        self.edge_tol, self.max_refine = edge_tol, max_refine
        self.secant_precond = secant_precond  # P's change over a substep as a secant (central.py)
        self.lookahead = lookahead  # `_critical_count`
        # "step": the third derivatives of a step's first velocity, rotated to later substeps;
        # "extrapolate": also moved along their change since the last step's first velocity
        self.third_every = third_every
        self.third = None  # (U, gradH) of the last third derivatives computed
        self.third_start = None  # (U, gradH, trend) of this step's first velocity ("extrapolate")
        self.third_miss = math.inf  # how far the last trend missed this step's first pairs (relative)
        self.elapsed = 0.0  # flow time since this step's first velocity
        self.theta_prev = None  # θ and dt of the last Euler step, for the look-ahead (`_velocity`)
        self.refine = 0
        self.active = False  # the SDCP was active in the last substep

    def _control(self, theta):
        """Sets `refine` from the top effective eigenvalue at the start of a substep.

        While the SDCP is active it makes the linearised critical eigenvalues exactly 2 one substep
        ahead, so θ₀ - 2 at the next substep is the local error of that Euler substep, O(dt²): ½dt²
        times the curvature of the stability matrix along the path (for RMSProp mostly P's change
        with ν̂, fast early in a run). Past edge_tol/2 the substep is halved as often as that error
        asks (a factor 4 per halving), at most max_refine times; below edge_tol/8 it is doubled back.
        Neither a flow far above the edge (θ₀ - 2 > 0.1, a start above it) nor one whose eig.max_k cap
        binds (an untracked eigenvalue may be rising) is an integration error: no split there.
        """
        excess = float(theta[0]) - 2
        if self.active and not self.eigs.capped and self.edge_tol / 2 < excess < 0.1:
            halvings = math.ceil(math.log(excess / (self.edge_tol / 2), 4))
            self.refine = min(self.max_refine, self.refine + max(halvings, 1))
        elif self.refine and excess < self.edge_tol / 8:
            self.refine -= 1

    @property
    def dt(self) -> float:
        return 1.0 / (self.nsubsteps * 2**self.refine)

    def _critical_count(self, theta, dt, previous) -> int:
        """k_c: the prefix of eigenvalues above sdcp_threshold and, with `lookahead`, up to the last
        one that its rise over the last Euler step (`previous`: its θ and dt, or None), continued over
        this one, carries above it.

        An eigenvalue left out of the SDCP is not held: one rising fast from just below the threshold
        (1.948 -> 1.999 in one substep, measured where a second eigenvalue enters on the ci GD cell)
        reaches 2 unconstrained and pushes the top one past it (2.00145); the SDCP of a set that
        includes it early holds both (2.0005; an eigenvalue that stays below 2 gets X = 0 there).
        """
        k_c = critical_count(theta, self.sdcp_threshold, self.top_only)
        theta = np.asarray(theta, float)
        if not self.lookahead or previous is None or previous[0].shape != theta.shape:
            return k_c
        ahead = theta + np.maximum(theta - previous[0], 0) * dt / previous[1]
        rising = np.flatnonzero(ahead > self.sdcp_threshold)
        k_ahead = int(rising[-1]) + 1 if len(rising) else 0
        return max(k_c, min(k_ahead, 1) if self.top_only else k_ahead)

    def _velocity(self, theta, U, first: bool = False):
        dt = self.dt
        k_c = self._critical_count(theta, dt, self.theta_prev)
        self.theta_prev = (np.asarray(theta, float), dt)
        self.active = k_c > 0
        # the third derivatives enter α through dH/dt along the stable velocity even without the penalty
        vel = self.kern.central_velocity(k_c, self.penalty, self.secant_precond)
        U = U[:, :k_c]
        if first:
            self.elapsed = 0.0
        if self._carry_third(U, first):  # the step's first third derivatives, rotated to this substep's U
            gradH = self.third[1]
            if self.third_every == "extrapolate":
                gradH = gradH + self.elapsed * self.third_start[2]  # first order in time
            gradH = rotate_pairs(gradH, self.third[0], U, self.kern.precond(self.s))
        else:
            gradH = self.kern.third_pairs(self.w, U)
            self.third = (U, gradH)
            self.third_derivatives += n_pairs(k_c)
            if first and self.third_every == "extrapolate":
                self._start_third_trend(U, gradH, self.kern.precond(self.s))
        return vel(self.w, self.s, theta[:k_c], U, jnp.asarray(dt, self.w.dtype), gradH)

    def _carry_third(self, U, first: bool) -> bool:
        """Whether this velocity reuses the step's first third derivatives (`third_every` step or
        extrapolate) instead of computing them: never at a step's first velocity or after the critical
        set changed size; with "extrapolate" only while their trend since the last step is known (the
        same critical set then and at every velocity since) and the trend before it predicted this
        step's first pairs within THIRD_TREND_TOLERANCE, so a step where an eigenvalue joins or leaves
        the set, or where the pairs turn, computes them at every substep, as the authors."""
        if self.third_every == "substep" or first or self.third[0].shape != U.shape:
            return False
        if self.third_every == "step":
            return True
        start = self.third_start
        return start[0] is self.third[0] and start[2] is not None and self.third_miss <= THIRD_TREND_TOLERANCE

    def _start_third_trend(self, U, gradH, P):
        """Records this step's first pairs, their change per unit time since the last step's first
        velocity, in U's basis (None when the critical set changed size or there is no last step), and
        how far the trend before that change missed it (`third_miss`: relative to the pairs' norm)."""
        last, trend, self.third_miss = self.third_start, None, math.inf
        if last is not None and last[0].shape == U.shape and U.shape[1] > 0:
            trend = gradH - rotate_pairs(last[1], last[0], U, P)  # one unit of time apart
            if last[2] is not None:  # the trend before predicted this change as its own, rotated
                miss = jnp.linalg.norm(trend - rotate_pairs(last[2], last[0], U, P)) / jnp.linalg.norm(gradH)
                self.third_miss = float(miss)
        self.third_start = (U, gradH, trend)

    def _since_solve(self) -> float | None:
        """The flow time since the tracker's last full solve, in units of the interval between its
        solves (eig.between_solves extrapolate), where that is known: one full solve per step, at its
        measurement (eig.frequency 1, not counted in substeps)."""
        return self.elapsed if self.eigs.config.frequency == self.nsubsteps else None

    def _check_edge(self, theta) -> bool:
        """Warns when the flow starts above the edge; stops it once S_eff > max_seff. True if stopped."""
        seff = float(theta[0])
        hint = (
            "the central flow is defined from a point below the edge (REFERENCE §3.7): "
            "start it there with --warm-start N (N discrete steps first, as the authors do for RMSProp)"
        )
        if not self.measured and seff > self.start_warn_seff:
            log.warning("%s starts at effective sharpness %.4g, far above 2: %s", self.name, seff, hint)
        self.measured = True
        if not math.isfinite(seff) or seff > self.max_seff:
            self.stopped = f"effective sharpness {seff:.4g} > max_seff {self.max_seff:g}: it left the edge"
            log.warning("%s stopped: %s; %s", self.name, self.stopped, hint)
        return bool(self.stopped)

    def measure(self) -> Measurement:
        """The carry is a CentralStep (None when the flow stops here)."""
        if self.stopped:
            return Measurement({}, self.w)
        k = self.kern
        logs, P, eig_logs, (theta, U) = self._observe_point()
        if self._check_edge(theta):
            return Measurement({**logs, **eig_logs}, self.w)
        self._control(theta)
        dw_dt, ds_dt, aux = self._velocity(theta, U, first=True)
        X = aux["X"]
        k_c = X.shape[0]
        # diagonalise X = V diag(x) Vᵀ and rotate the critical basis: U ← U V (REFERENCE §1.4 logging)
        x, V = jnp.linalg.eigh(X)
        x, V = x[::-1], V[:, ::-1]
        carry = CentralStep(dw_dt, ds_dt, aux["sdcp"], U[:, :k_c] @ V, P)
        logs.update(eig_logs)
        logs.update(
            {
                **predictions(logs, X, aux["HU"], U[:, :k_c], x, selected=k.idx),
                "flow_aux/X": X,
                **{
                    f"flow_aux/{key}": aux[key]
                    for key in ("dH_dt_stable", "dH_dt_X", "dP_dt_stable", "dP_dt_X")
                },
                "eig_logs/third_derivatives": self.third_derivatives,
                "substeps": self.nsubsteps * 2**self.refine,  # of this step's first substep
            }
        )
        if self.probe is not None:
            logs.update(self.probe.measure(self.w, self.s, logs["hessian_eigs"][0]))
        return Measurement(logs, self.w, carry)

    def _sdcp_logs(self, solves: list) -> dict:
        """Per-substep SDCP iterations, residuals and convergence of the step just taken (one host sync)."""
        info = {key: np.stack([np.asarray(i[key]) for i in solves]) for key in solves[0]}
        bad = int(np.sum(~info["converged"]))
        self.sdcp_solves += len(info["converged"])
        self.sdcp_unconverged += bad
        if bad:
            log.warning(
                "%s: %d SDCP solve(s) of this step did not converge (iterations %s, residual %s); "
                "%d unconverged so far", self.name, bad, info["iterations"].tolist(),
                np.array2string(info["residual"], precision=2), self.sdcp_unconverged,
            )  # fmt: skip
        return {f"flow_aux/sdcp_{key}": value.astype(np.float64) for key, value in info.items()}

    def run_attrs(self) -> dict:
        """Root attributes recorded at the end of the run: the SDCP solve counts."""
        return {
            f"{self.name}_sdcp_solves": self.sdcp_solves,
            f"{self.name}_sdcp_unconverged": self.sdcp_unconverged,
        }

    def state_dict(self) -> dict:
        out = {**super().state_dict(), "third_derivatives": np.asarray(self.third_derivatives)}
        out["sdcp_counts"] = np.asarray([self.sdcp_solves, self.sdcp_unconverged, self.measured])
        out["control"] = np.asarray([self.refine, self.active])
        if self.theta_prev is not None:
            out["theta_prev"], out["dt_prev"] = self.theta_prev[0], np.asarray(self.theta_prev[1])
        if self.third_start is not None:  # the last step's pairs and trend, for the next step's
            out["third_start_U"], out["third_start_gradH"] = self.third_start[:2]
            if self.third_start[2] is not None:
                out["third_start_trend"] = self.third_start[2]
        if self.probe is not None:
            out["probe"] = self.probe.state_dict()
        return out

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.third_derivatives = int(state["third_derivatives"])
        if "sdcp_counts" in state:  # checkpoints written before the counts existed lack them
            self.sdcp_solves, self.sdcp_unconverged, measured = (int(v) for v in state["sdcp_counts"])
            self.measured = bool(measured)
        if "control" in state:  # absent in checkpoints written before the step-size control
            self.refine, active = (int(v) for v in state["control"])
            self.active = bool(active)
        if "theta_prev" in state:  # absent in checkpoints written before the look-ahead
            self.theta_prev = (np.asarray(state["theta_prev"], float), float(state["dt_prev"]))
        if "third_start_U" in state:
            U, gradH = (jnp.asarray(state[f"third_start_{key}"], self.w.dtype) for key in ("U", "gradH"))
            trend = None  # absent before the guard: the step after this one computes at every substep
            if "third_start_trend" in state:
                trend = jnp.asarray(state["third_start_trend"], self.w.dtype)
            self.third_start = (U, gradH, trend)
        if self.probe is not None:
            self.probe.load_state_dict(state["probe"])

    def step(self, measured: Measurement) -> dict:
        """One unit of time: nsubsteps substeps, each split into 2**refine Euler steps (`_control`);
        the eigen-tracker's schedule counts the nsubsteps substeps only. Returns the SDCP diagnostics
        of its substeps."""
        if self.stopped:
            return {}
        dw_dt, ds_dt, first, _, _ = measured.carry
        solves = [first]
        done, fine = 0, 0  # substeps completed; fine steps taken within the current one
        while True:
            self.w, self.s = euler(self.w, self.s, dw_dt, ds_dt, self.dt)
            self.elapsed += self.dt
            fine += 1
            if fine == 2**self.refine:
                done, fine = done + 1, 0
                if done == self.nsubsteps:
                    return self._sdcp_logs(solves)
            P = self.kern.precond(self.s)
            since = self._since_solve()
            if fine == 0:  # a substep's start: the tracker's schedule, and the step-size control
                theta, U = self.eigs.update(self.w, P, since_solve=since)
                self._control(theta)
            else:
                theta, U = self.eigs.update(self.w, P, full=False, count=False, since_solve=since)
            dw_dt, ds_dt, aux = self._velocity(theta, U)
            solves.append(aux["sdcp"])
