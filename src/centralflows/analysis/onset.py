"""The edge-of-stability onset: one definition for the summary, the claims and the figures."""

from __future__ import annotations

import pandas as pd

from centralflows.engine.registry import EDGE_TOL, EOS, SDCP_THRESHOLD, onset_index

# EOS (2): at the edge the top effective eigenvalue (eta S for GD, the preconditioned one for RMSProp)
# reaches 2 (engine.registry, shared with the W1.18 restart).
__all__ = ["CENTRAL_AT_EOS", "CENTRAL_EDGE_TOL", "CENTRAL_HELD", "EOS", "central_edge_entry", "eos_onset"]

# The central flow counts as at EOS once its top effective eigenvalue reaches this (it locks at 2 up
# to the SDCP's tolerance, so 2 itself would be missed; the engine's `sdcp_threshold` default).
CENTRAL_AT_EOS = SDCP_THRESHOLD

# The central flow *holds* its top effective eigenvalue at 2 from this level on (the smoothness metrics
# start there: between CENTRAL_AT_EOS and 2 the flow is still entering the edge).
CENTRAL_HELD = 1.999

# How far above 2 the central flow may be once held there (engine.registry.EDGE_TOL).
CENTRAL_EDGE_TOL = EDGE_TOL


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
