"""The edge-of-stability onset: one definition for the summary, the claims, the figures and the W1.18
restart (`edge_step`: the workflow passes the step it finds to `centralflows.runner.restart`)."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd

from centralflows.engine.registry import EDGE_TOL, SDCP_THRESHOLD

__all__ = [
    "CENTRAL_AT_EOS",
    "CENTRAL_EDGE_TOL",
    "CENTRAL_HELD",
    "EDGE_CRITERION",
    "EOS",
    "NoOnset",
    "central_edge_entry",
    "edge_step",
    "eos_onset",
    "first_crossing",
    "onset_index",
]

# The edge of stability: an effective eigenvalue (eta S for GD, the preconditioned one for RMSProp) at
# 2. The onset of a trajectory is the first logged step at which its top effective eigenvalue is >= a
# level (EOS for an optimizer's run).
EOS = 2.0

# The restart point of W1.18: where a run's discrete process first reaches EOS (S_eff = eta S for GD:
# >= 2 where S >= 2/eta), column 0 being the top eigenvalue.
EDGE_KEY = "discrete/effective_hessian_eigs"
EDGE_CRITERION = f"{EDGE_KEY}[0] >= {EOS:g}"

# The central flow counts as at EOS once its top effective eigenvalue reaches this (it locks at 2 up
# to the SDCP's tolerance, so 2 itself would be missed; the engine's `sdcp_threshold` default).
CENTRAL_AT_EOS = SDCP_THRESHOLD

# The central flow *holds* its top effective eigenvalue at 2 from this level on (the smoothness metrics
# start there: between CENTRAL_AT_EOS and 2 the flow is still entering the edge).
CENTRAL_HELD = 1.999

# How far above 2 the central flow may be once held there (engine.registry.EDGE_TOL).
CENTRAL_EDGE_TOL = EDGE_TOL


class NoOnset(ValueError):
    """The trajectory never reaches the level (no onset, so no restart point at the edge)."""


def onset_index(top, level: float = EOS) -> int | None:
    """Index of the first entry of `top` (a sequence of numbers, NaN = not logged) that is >= level."""
    return next((i for i, value in enumerate(top) if value >= level), None)  # NaN >= level is False


def eos_onset(top: pd.Series, level: float = EOS) -> int | None:
    """The EOS onset: the first logged step at which `top` (a step-indexed top effective eigenvalue, or
    any one effective eigenvalue) is >= `level`; None if it never is.

    Args:
        top: effective eigenvalue per step; for GD from raw eigenvalues S that is eta * S, so the onset
            is the first step with S >= 2/eta.
        level: EOS (2) for the discrete process; CENTRAL_AT_EOS or CENTRAL_HELD for the central flow.
    """
    i = onset_index(top.to_numpy(), level)
    return None if i is None else int(top.index[i])


def central_edge_entry(top: pd.Series) -> tuple[int | None, bool]:
    """(the step from which the central flow is at the edge, whether it started above it).

    A flow that enters from below is at the edge from `eos_onset(top, CENTRAL_HELD)` on. One that starts
    above EOS + CENTRAL_EDGE_TOL (a restart from a checkpoint at the edge, Scalar RMSProp without a warm
    start) is undefined until it comes back (REFERENCE §3.7): its entry is the first step with
    top <= EOS + CENTRAL_EDGE_TOL, so the descent from the start does not count as an overshoot.
    """
    if not len(top):
        return None, False
    if float(top.iloc[0]) <= EOS + CENTRAL_EDGE_TOL:
        return eos_onset(top, CENTRAL_HELD), False
    back = top.index[top.to_numpy() <= EOS + CENTRAL_EDGE_TOL]
    return (int(back[0]) if len(back) else None), True


def first_crossing(steps, values, threshold: float = EOS) -> int:
    """The first step whose value is >= threshold (NaN, i.e. not logged, never crosses).

    Args:
        steps: the logged steps [rows].
        values: [rows] or [rows, k] (the top eigenvalue is column 0).

    Raises:
        NoOnset: no value reaches the threshold.
    """
    values = np.asarray(values, float)
    top = values[:, 0] if values.ndim == 2 else values
    first = onset_index(top, threshold)
    if first is None:
        largest = np.nanmax(top, initial=-np.inf)
        raise NoOnset(f"the value never reaches {threshold:g} (largest: {largest:g})")
    return int(np.asarray(steps)[first])


def edge_step(hdf5) -> int:
    """The first step of a run (its data.hdf5) where its discrete process's top effective eigenvalue
    reaches EOS (EDGE_CRITERION).

    Raises:
        NoOnset: the run does not log those eigenvalues, or they never reach EOS.
    """
    with h5py.File(hdf5, "r") as f:
        if EDGE_KEY not in f:
            raise NoOnset(f"{hdf5} has no {EDGE_KEY}: the source run must log eigenvalues")
        try:
            return first_crossing(f["step"][:], f[EDGE_KEY][:])
        except NoOnset as error:
            raise NoOnset(f"{hdf5}: the discrete sharpness never reaches 2/eta ({error})") from None
