"""The process protocol: the two-phase interface every process of a run follows, and its common part.

A process advances one unit of time per call pair (REFERENCE §3.6): `measure()` evaluates the current
point and returns a Measurement (the values to log, the point it reports, and what its step continues
from); `step(measured)` advances from that measurement and returns the values of the step just taken.
What else it logs is declared here: `stopped` (why it stopped, or ""), `sdcp_unconverged` and
`run_attrs()`. Its state is a nested dict of arrays (`state_dict`), so checkpoints restore it exactly.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig, EigTracker

log = logging.getLogger("centralflows")


@dataclasses.dataclass(frozen=True)
class Measurement:
    """What `measure()` found at the current point.

    Attributes:
        logs: the values to log at this step ({} for a stopped process).
        point: the weights the process reports (distances between processes).
        carry: what `step()` continues from (the process's own type; None once stopped).
    """

    logs: dict
    point: Any
    carry: Any = None


def euler(w, s, dw_dt, ds_dt, dt):
    """One Euler step of (w, s) along (dw/dt, ds/dt)."""
    return w + dt * dw_dt, jax.tree.map(lambda a, b: a + dt * b, s, ds_dt)


class Process:
    """Common part: the point (w, s), its eigen-trackers and (de)serialisation."""

    name = ""
    is_flow = False  # a flow applies F once at construction (its `initialize` option)
    oscillates = False  # its iterates alternate sides at the edge (eig.warm_start auto: two_back)
    reads_eigenvectors = False  # its dynamics use the eigenvectors (eig.lock auto: off)

    def __init__(self, kernels: Compiled, w, s, eig: EigConfig, seed: int = 0):
        if eig.warm_start == "auto":
            eig = dataclasses.replace(eig, warm_start="two_back" if self.oscillates else "last")
        if eig.lock is None:
            eig = dataclasses.replace(eig, lock=not self.reads_eigenvectors)
        self.kern = kernels
        self.w, self.s = w, s
        d, dtype = w.shape[0], w.dtype
        self.eigs = EigTracker(kernels.loss_fn, eig, d, dtype, seed)
        # a vector P has no shortcut from effective to raw eigenvalues: a second tracker on H itself
        raw = dataclasses.replace(eig, track_threshold=None)
        scalar = kernels.opt.scalar_preconditioner
        self.raw_eigs = None if scalar else EigTracker(kernels.loss_fn, raw, d, dtype, seed + 1)
        self.stopped = ""

    sdcp_unconverged = 0  # SDCP solves that did not converge so far (the flows that solve one)

    def measure(self) -> Measurement:
        """Evaluates the current point: the values to log and what `step()` needs."""
        raise NotImplementedError

    def step(self, measured: Measurement) -> dict:
        """Advances one unit of time from `measured` (this point's measurement); returns the values of
        the step just taken to log ({} for most processes)."""
        raise NotImplementedError

    def run_attrs(self) -> dict:
        """Root attributes of the run file, recorded at its end ({} for most processes)."""
        return {}

    def _observe_point(self):
        """(observations, P, eigen logs, effective pairs or None) at the current point, for measure()."""
        logs, _ = self.kern.observe(self.w, self.s)
        P = self.kern.precond(self.s)
        return (logs, P, *self._eig_logs(self.w, P))

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
                log.warning(
                    "%s: %d = eig.max_k eigenpairs tracked and the smallest is still >= track_threshold %g; "
                    "larger eigenvalues may go untracked (raise --eig.max_k). Recorded in eig_logs/k_capped.",
                    self.name, self.eigs.k, self.eigs.config.track_threshold,
                )  # fmt: skip
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
