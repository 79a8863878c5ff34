"""The four processes advanced in lockstep: discrete, midpoint, stable flow and central flow.

Each process exposes the same two-phase interface, one unit of time per call pair (REFERENCE §3.6):
`measure()` evaluates the current point (loss, gradient, eigenpairs, and for the central flow the
SDCP of its first substep) and returns the values to log; `step()` advances one unit of time.
The state of a process is a nested dict of arrays (`state_dict`), so checkpoints restore it exactly.
"""

from __future__ import annotations

import logging
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.derivatives import pair_index, third_derivative_pairs, upper_pairs
from centralflows.engine.eigs import EigConfig, EigTracker
from centralflows.engine.optimizers import Optimizer
from centralflows.engine.sdcp import solve_sdcp_with_info

log = logging.getLogger("centralflows")

PROCESSES = (
    "discrete",
    "midpoint",
    "stable",
    "central",
    "ablated",
    "stationary",
)  # the last two: ablated.py, stationary.py


def selected_indices(d: int, n: int = 25) -> jax.Array:
    """n evenly spaced coordinates, for the per-coordinate logs (`*_selected_idx`)."""
    return jnp.asarray(np.linspace(0, d - 1, min(n, d)).round().astype(np.int32))


class Kernels:
    """Jitted building blocks shared by the processes of one run (compiled once per run)."""

    def __init__(self, problem, optimizer: Optimizer, chunk_size: int | None = None):
        self.problem = problem
        self.opt = optimizer
        self.loss_fn = problem.loss_fn
        self.chunk_size = chunk_size
        self.idx = selected_indices(problem.w0.shape[0])
        self.tx = optimizer.as_optax()
        self.grad = jax.jit(jax.grad(self.loss_fn))
        self.observe = jax.jit(self._observe)
        self.optax_update = jax.jit(self.tx.update)
        self.precond = jax.jit(lambda s: jnp.broadcast_to(optimizer.precond(s), problem.w0.shape))
        self.stable_substep = jax.jit(self._stable_substep)
        # The network's third derivatives are a program of their own: it depends on the loss only, so
        # the persistent compilation cache shares it across learning rates and optimizers, while
        # the optimizer-dependent rest of the velocity is small to compile (as eigs.run_lobpcg).
        self.third_pairs = jax.jit(lambda w, U: third_derivative_pairs(self.loss_fn, w, U, chunk_size))
        self._central = {}

    def _observe(self, w, s):
        """Loss, metrics, outputs, gradient statistics and opt.* at (w, s); also returns ∇L(w)."""
        p = self.problem
        loss, g = jax.value_and_grad(self.loss_fn)(w)
        train, test = p.train_metrics(w), p.test_metrics(w)
        out = {
            "train_loss": loss,
            "train_acc": train["acc"],
            "test_loss": test["loss"],
            "test_acc": test["acc"],
            "train_outputs": p.train_outputs(w),
            "test_outputs": p.test_outputs(w),
            "grad_norm_sq": jnp.sum(g**2),
            "grad_sq_selected_idx": g[self.idx] ** 2,
        }
        out.update(self.opt.log_values(s, self.idx))
        return out, g

    def _stable_substep(self, w, s, dt):
        """One Euler substep of the stable flow."""
        g = jax.grad(self.loss_fn)(w)
        ds = self.opt.dstate_dt(s, g)
        w = w - dt * g / self.opt.precond(s)
        return w, jax.tree.map(lambda a, b: a + dt * b, s, ds)

    def stable_substeps(self, w, s, n: int):
        """n Euler substeps of the stable flow over one unit of time (a host loop: see `eigs.run_lobpcg`)."""
        for _ in range(n):
            w, s = self.stable_substep(w, s, 1.0 / n)
        return w, s

    def central_velocity(self, k_c: int, penalty: bool = True):
        """The jitted central-flow velocity for k_c critical eigenpairs (compiled per k_c, penalty)."""
        key = k_c if penalty else (k_c, "ablated")
        if key not in self._central:
            velocity = jax.jit(
                lambda w, s, theta, U, dt, g, gradH: self._central_velocity(
                    w, s, theta, U, dt, g, gradH, penalty
                )
            )
            self._central[key] = lambda w, s, theta, U, dt: velocity(
                w, s, theta, U, dt, self.grad(w), self.third_pairs(w, U)
            )
        return self._central[key]

    def _central_velocity(self, w, s, theta, U, dt, g, gradH, penalty=True):
        """dw/dt and ds/dt of the central flow at (w, s) (REFERENCE §1.4 steps 3-7).

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
        opt = self.opt
        k = U.shape[1]
        p = jnp.broadcast_to(opt.precond(s), w.shape)
        dw_dt_stable = -g / p
        ds_dt_stable = opt.dstate_dt(s, g)
        HU = p[:, None] * U * theta  # H u_i = λ_i P u_i; the authors' state velocity uses HU, not U

        i, j = upper_pairs(k)
        pair = pair_index(k)
        # X enters every velocity through the sum over ordered pairs (k, l), so an off-diagonal
        # pair i < j carries weight 2 when written over the upper triangle (the authors' metric).
        weight = jnp.where(i == j, 1.0, 2.0).astype(w.dtype)

        dw_dt_X = -0.5 * gradH / p if penalty else jnp.zeros_like(gradH)  # [m, d]

        def d2f(a, b):  # ½ ∂²_g f(s, g)[a, b], f = dstate_dt: the oscillation term of E[f(s, g + δ)]
            inner = lambda g_: jax.jvp(lambda x: opt.dstate_dt(s, x), (g_,), (a,))[1]
            return jax.tree.map(lambda v: 0.5 * v, jax.jvp(inner, (g,), (b,))[1])

        ds_dt_X = jax.vmap(d2f)(HU[:, i].T, HU[:, j].T)  # leaves [m, ...]

        def UtPdotU(ds):  # Uᵀ (dP/dt) U for a state velocity ds
            pdot = jax.jvp(lambda s_: jnp.broadcast_to(opt.precond(s_), w.shape), (s,), (ds,))[1]
            return U.T @ (pdot[:, None] * U)

        def mat(v):  # vech [m] -> symmetric [k, k]
            return v[pair]

        dH_dt_stable = mat(gradH @ dw_dt_stable)  # [k, k]
        dP_dt_stable = UtPdotU(ds_dt_stable)  # [k, k]
        dH_dt_X = (gradH @ dw_dt_X.T)[pair][:, :, pair]  # [k, k, k, k]: (ij) row, (kl) column
        dP_dt_X = jax.vmap(UtPdotU)(ds_dt_X)[pair].transpose(2, 3, 0, 1)  # [k, k, k, k]

        # stability matrix Uᵀ(2P - H)U = diag(2 - λ), linearised one substep ahead
        alpha = jnp.diag(2 - theta) + dt * (2 * dP_dt_stable - dH_dt_stable)
        beta = dt * (2 * dP_dt_X - dH_dt_X)
        X, info = solve_sdcp_with_info(alpha, beta)

        c = X[i, j] * weight  # [m]
        dw_dt = dw_dt_stable + c @ dw_dt_X
        ds_dt = jax.tree.map(lambda a, b: a + jnp.tensordot(c, b, axes=1), ds_dt_stable, ds_dt_X)
        aux = {
            "X": X,
            "g": g,
            "HU": HU,
            "dH_dt_stable": dH_dt_stable,
            "dH_dt_X": jnp.einsum("ijkl,kl->ij", dH_dt_X, X),
            "dP_dt_stable": dP_dt_stable,
            "dP_dt_X": jnp.einsum("ijkl,kl->ij", dP_dt_X, X),
            "sdcp": {key: info[key] for key in ("iterations", "residual", "converged")},
        }
        return dw_dt, ds_dt, aux


def _euler(w, s, dw_dt, ds_dt, dt):
    return w + dt * dw_dt, jax.tree.map(lambda a, b: a + dt * b, s, ds_dt)


class Process:
    """Common part: the point (w, s), its eigen-trackers and (de)serialisation."""

    name = ""

    def __init__(self, kernels: Kernels, w, s, eig: EigConfig, seed: int = 0):
        self.kern = kernels
        self.w, self.s = w, s
        d, dtype = w.shape[0], w.dtype
        self.eigs = EigTracker(kernels.loss_fn, eig, d, dtype, seed)
        # RMSProp has no shortcut from effective to raw eigenvalues: a second tracker on H itself
        raw = EigConfig.from_dict({**eig.__dict__, "track_threshold": None})
        self.raw_eigs = (
            EigTracker(kernels.loss_fn, raw, d, dtype, seed + 1) if kernels.opt.name == "rmsprop" else None
        )
        self.stopped = ""

    @property
    def point(self):
        """The weights this process reports (used for distances)."""
        return self.w

    def _eig_logs(self, w, P, full=None):
        """Effective and raw Hessian eigenvalues at w, and the effective pairs (theta, U)."""
        res = self.eigs.update(w, P, full)
        if res is None:
            return {}, None
        theta, U = res
        logs = {"effective_hessian_eigs": theta}
        if self.raw_eigs is None:  # scalar preconditioner: raw = effective · P
            logs["hessian_eigs"] = theta * P[0]
        else:
            self.raw_eigs.ensure_k(self.eigs.k)
            logs["hessian_eigs"] = self.raw_eigs.update(w, jnp.ones_like(P), self.eigs.last_full)[0]
        logs["eig_logs/hvps"] = self.eigs.hvps + (self.raw_eigs.hvps if self.raw_eigs else 0)
        logs["eig_logs/k"] = self.eigs.k
        logs["eig_logs/k_capped"] = float(self._note_cap())
        return logs, (theta, U)

    def _note_cap(self) -> bool:
        """Counts (and warns once about) the measurements at which the max_k cap binds."""
        capped = self.eigs.capped
        if capped:
            if not self.eigs.capped_steps:
                print(
                    f"warning: {self.name}: {self.eigs.k} = eig.max_k eigenpairs tracked and the smallest is "
                    f"still >= track_threshold {self.eigs.config.track_threshold:g}; larger eigenvalues may "
                    "go untracked (raise --eig.max_k). Recorded in eig_logs/k_capped.",
                    file=sys.stderr,
                )
            self.eigs.capped_steps += 1
        return capped

    def state_dict(self) -> dict:
        out = {"w": self.w, "s": self.s, "eigs": self.eigs.state_dict(), "stopped": np.asarray(self.stopped)}
        if self.raw_eigs is not None:
            out["raw_eigs"] = self.raw_eigs.state_dict()
        return out

    def load_state_dict(self, state: dict):
        dtype = self.w.dtype
        self.w = jnp.asarray(state["w"], dtype)
        self.s = jax.tree.map(lambda a: jnp.asarray(a, dtype), state["s"])
        self.eigs.load_state_dict(state["eigs"])
        if self.raw_eigs is not None:
            self.raw_eigs.load_state_dict(state["raw_eigs"])
        self.stopped = str(state["stopped"])


class Discrete(Process):
    """The real optimizer, stepped by its optax transformation."""

    name = "discrete"

    def measure(self) -> dict:
        k = self.kern
        logs, g = k.observe(self.w, self.s)  # opt.* are replaced below by the state of this step
        update, self.s_next = k.optax_update(g, self.s)
        logs.update(k.opt.log_values(self.s_next, k.idx))
        self.update = update
        self.P = k.precond(self.s_next)
        eig_logs, self.eigpairs = self._eig_logs(self.w, self.P)
        return {**logs, **eig_logs}

    def step(self):
        self.w, self.s = self.w + self.update, self.s_next


class Midpoint(Process):
    """Measures at the second-order midpoint w*_t = ¼(w_{t-1} + 2 w_t + w_{t+1}) of its own discrete run."""

    name = "midpoint"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.w_prev = self.w  # at t = 0 there is no w_{-1}: w*_0 = w_0 (see measure)
        self.first = True

    @property
    def point(self):
        return self.w_mid

    def measure(self) -> dict:
        k = self.kern
        g = k.grad(self.w)
        update, self.s_next = k.optax_update(g, self.s)
        self.w_next = self.w + update
        self.w_mid = self.w if self.first else 0.25 * (self.w_prev + 2 * self.w + self.w_next)
        logs, _ = k.observe(self.w_mid, self.s_next)
        P = k.precond(self.s_next)
        eig_logs, _ = self._eig_logs(self.w_mid, P)
        return {**logs, **eig_logs}

    def step(self):
        self.w_prev, self.w, self.s = self.w, self.w_next, self.s_next
        self.first = False

    def state_dict(self) -> dict:
        return {**super().state_dict(), "w_prev": self.w_prev, "first": np.asarray(self.first)}

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.w_prev = jnp.asarray(state["w_prev"], self.w.dtype)
        self.first = bool(state["first"])


def _apply_initial_state_update(kernels: Kernels, w, s):
    """The flows apply F once at construction, mirroring the discrete run's first update (§1.4)."""
    return kernels.opt.update_state(s, kernels.grad(w))


class StableFlow(Process):
    """dw/dt = -P(s)^{-1}∇L, ds/dt = drift(s, ∇L): Euler with max(min_nsubsteps, ⌈2·S_eff⌉) substeps."""

    name = "stable"

    def __init__(self, kernels, w, s, eig, seed=0, min_nsubsteps=4, max_seff=100.0, initialize=True):
        if initialize:
            s = _apply_initial_state_update(kernels, w, s)
        # the stable flow tracks a fixed number of eigenpairs (REFERENCE §1.2)
        super().__init__(kernels, w, s, EigConfig.from_dict({**eig.__dict__, "track_threshold": None}), seed)
        self.min_nsubsteps = min_nsubsteps
        self.max_seff = max_seff
        self.nsubsteps = min_nsubsteps

    def measure(self) -> dict:
        if self.stopped:
            return {}
        k = self.kern
        logs, _ = k.observe(self.w, self.s)
        P = k.precond(self.s)
        eig_logs, pairs = self._eig_logs(self.w, P)
        self.nsubsteps = self.min_nsubsteps
        if pairs is not None:
            seff = float(pairs[0][0])
            self.nsubsteps = max(self.min_nsubsteps, math.ceil(2 * seff))
            if seff > self.max_seff:
                self.stopped = f"effective sharpness {seff:.4g} > max_seff {self.max_seff:g}"
        return {**logs, **eig_logs, "substeps": self.nsubsteps}

    def step(self):
        if not self.stopped:
            self.w, self.s = self.kern.stable_substeps(self.w, self.s, self.nsubsteps)


class CentralFlow(Process):
    """The central flow: Euler with `nsubsteps` substeps; the SDCP fixes the oscillation covariance."""

    name = "central"
    probe = None  # optional diagnostics logged at each measurement (stationary.StationaryProbe)
    max_seff = 10.0  # the default of central.max_seff
    # S_eff above this at the first measurement: the flow starts above the edge, where it is undefined
    start_warn_seff = 4.0

    def __init__(
        self, kernels, w, s, eig, seed=0, nsubsteps=4, sdcp_threshold=1.95, frequency_in_substeps=False,
        initialize=True, max_seff=None,
    ):  # fmt: skip
        if initialize:
            s = _apply_initial_state_update(kernels, w, s)
        if eig.frequency < 1:
            raise ValueError(
                "the central flow needs eigenpairs: set eig.frequency >= 1 (e.g. --eig.frequency 1)"
            )
        # one full solve per unit time, the cheap update (eig.between_solves) at the other substeps
        freq = eig.frequency if frequency_in_substeps else eig.frequency * nsubsteps
        super().__init__(kernels, w, s, EigConfig.from_dict({**eig.__dict__, "frequency": freq}), seed)
        self.nsubsteps = nsubsteps
        self.sdcp_threshold = sdcp_threshold
        self.third_derivatives = 0
        if max_seff is not None:
            self.max_seff = max_seff
        self.solves = []  # the SDCP diagnostics of this step's substeps (see step_logs)
        self.sdcp_solves = self.sdcp_unconverged = 0
        self.measured = False

    def _velocity(self, theta, U):
        dt = 1.0 / self.nsubsteps
        k_c = int(jnp.sum(theta > self.sdcp_threshold))  # theta is sorted: the critical set is a prefix
        self.third_derivatives += k_c * (k_c + 1) // 2
        vel = self.kern.central_velocity(k_c)
        return vel(self.w, self.s, theta[:k_c], U[:, :k_c], jnp.asarray(dt, self.w.dtype))

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

    def measure(self) -> dict:
        if self.stopped:
            return {}
        k = self.kern
        logs, _ = k.observe(self.w, self.s)
        P = k.precond(self.s)
        eig_logs, (theta, U) = self._eig_logs(self.w, P)
        if self._check_edge(theta):
            return {**logs, **eig_logs}
        dw_dt, ds_dt, aux = self._velocity(theta, U)
        self.pending = (dw_dt, ds_dt)
        self.solves = [aux["sdcp"]]
        X = aux["X"]
        k_c = X.shape[0]
        # diagonalise X = V diag(x) Vᵀ and rotate the critical basis: U ← U V (REFERENCE §1.4 logging)
        x, V = jnp.linalg.eigh(X)
        x, V = x[::-1], V[:, ::-1]
        self.sigma_basis = U[:, :k_c] @ V  # P-orthonormal eigenvectors of Σ, for deltas
        self.P = P
        HUX = aux["HU"] @ X
        logs.update(eig_logs)
        logs.update(
            {
                "predicted_loss": logs["train_loss"] + jnp.trace(X),
                "predicted_grad_norm_sq": logs["grad_norm_sq"] + jnp.sum(HUX * aux["HU"]),
                "predicted_grad_sq_selected_idx": logs["grad_sq_selected_idx"]
                + jnp.sum(HUX[k.idx] * aux["HU"][k.idx], axis=1),
                "predicted_variances": x,
                "sigma_trace": jnp.sum((U[:, :k_c] @ X) * U[:, :k_c]),
                "flow_aux/X": X,
                **{
                    f"flow_aux/{key}": aux[key]
                    for key in ("dH_dt_stable", "dH_dt_X", "dP_dt_stable", "dP_dt_X")
                },
                "eig_logs/third_derivatives": self.third_derivatives,
            }
        )
        if self.probe is not None:
            logs.update(self.probe.measure(self.w, self.s, logs["hessian_eigs"][0]))
        return logs

    def step_logs(self) -> dict:
        """Per-substep SDCP iterations, residuals and convergence of the step just taken (one host sync)."""
        if not self.solves:
            return {}
        info = {key: np.stack([np.asarray(i[key]) for i in self.solves]) for key in self.solves[0]}
        self.solves = []
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
        if self.probe is not None:
            out["probe"] = self.probe.state_dict()
        return out

    def load_state_dict(self, state: dict):
        super().load_state_dict(state)
        self.third_derivatives = int(state["third_derivatives"])
        if "sdcp_counts" in state:  # checkpoints written before the counts existed lack them
            self.sdcp_solves, self.sdcp_unconverged, measured = (int(v) for v in state["sdcp_counts"])
            self.measured = bool(measured)
        if self.probe is not None:
            self.probe.load_state_dict(state["probe"])

    def deltas(self, w_other) -> jax.Array:
        """Uᵀ P (w_other - w): displacement along the eigenvectors of Σ, in units where E[δδᵀ] = X."""
        return self.sigma_basis.T @ (self.P * (w_other - self.w))

    def step(self):
        if self.stopped:
            return
        dt = 1.0 / self.nsubsteps
        dw_dt, ds_dt = self.pending
        self.w, self.s = _euler(self.w, self.s, dw_dt, ds_dt, dt)
        for _ in range(1, self.nsubsteps):
            P = self.kern.precond(self.s)
            theta, U = self.eigs.update(self.w, P)
            dw_dt, ds_dt, aux = self._velocity(theta, U)
            self.solves.append(aux["sdcp"])
            self.w, self.s = _euler(self.w, self.s, dw_dt, ds_dt, dt)
