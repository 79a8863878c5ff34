"""Two eigenvalues at the edge: the central flow's Σ is smooth in time and both stay at 2 (issue 15).

The problem is the ci cell `mlp-gd-lr0.08` (synthetic CIFAR-10, float32): its top eigenvalue enters the
edge at step 2, a second one at step 5, and the second leaves it slowly from step ~17 while still in the
SDCP. With the authors' diagonal Rayleigh quotients between full solves (`eig.between_solves:
quotients`) the cached vectors lag the eigenvectors within a step: the first one enters at 2.135 (it rose
outside the cached span), the SDCP holds the quotients at 2 while the eigenvalues sit at 2.001-2.04, and
tr Σ alternates from step to step (roughness 0.15 over steps 10-30). With one warm-started LOBPCG
iteration per substep (`lobpcg`, the default) the entry is at 1.998 and the roughness 0.05. Where the
second one enters it rises from 1.948 to 1.999 within one substep while still below the SDCP threshold,
so the SDCP does not hold it and the top one reaches 2.00145; the look-ahead critical set
(`central.lookahead`, the default) takes it in one substep early and the top stays within 1e-3 of 2.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.processes import CentralFlow
from centralflows.engine.registry import EDGE_TOL
from centralflows.problem.build import build_problem
from tests.engine.helpers import CI_MLP_CONFIG


def edge_run(between_solves: str, lookahead: bool = True):
    """(tr Σ, the top two effective eigenvalues) of the central flow's first 30 steps."""
    problem = build_problem(**CI_MLP_CONFIG, dtype=jnp.float32)
    opt = make_optimizer("gd", 0.08)
    kern = Compiled(problem, opt)
    eig = EigConfig(frequency=1, track_threshold=1.5, initial_k=1, max_k=3, tol=1e-9,
                    between_solves=between_solves)  # fmt: skip
    central = CentralFlow(kern, problem.w0, opt.init_state(problem.w0), eig, lookahead=lookahead)
    trace, top = [], []
    for _ in range(30):
        measured = central.measure()
        logs = measured.logs
        trace.append(float(logs["sigma_trace"]))
        top.append(np.asarray(logs["effective_hessian_eigs"][:2], np.float64))
        central.step(measured)
    return np.array(trace), np.array(top)


def roughness_and_drift(trace, top):
    """The summary's central_sigma_trace_roughness over steps 10-29 (a smooth exponential decay of
    ~15 %/step gives ~0.02) and max |S_eff - 2| over steps 15-29."""
    window = trace[10:]
    return np.abs(np.diff(window, 2)).mean() / np.abs(window).mean(), np.abs(top[15:, 0] - 2).max()


@pytest.mark.slow
def test_sigma_smooth_where_two_eigenvalues_are_at_the_edge():
    trace, top = edge_run("lobpcg")
    assert top[:5, 1].max() < 1.9 and top[5:8, 1].min() > 1.998  # the second eigenvalue enters at step 5
    roughness, drift = roughness_and_drift(trace, top)
    assert roughness < 0.08
    assert drift < 5e-4
    assert top[2:, 0].max() <= 2 + EDGE_TOL and top[3:, 0].min() > 1.999  # no overshoot where each enters
    # the authors' critical set (the threshold alone): the second enters unheld, the top overshoots
    _, top_threshold = edge_run("lobpcg", lookahead=False)
    assert top_threshold[5, 0] > 2 + EDGE_TOL
    # the authors' Rayleigh quotients overshoot and chatter on the same run (what the default fixes)
    trace_q, top_q = edge_run("quotients")
    rough_quotients, drift_quotients = roughness_and_drift(trace_q, top_q)
    assert rough_quotients > 0.1 and drift_quotients > 5e-4 and top_q[2, 0] > 2.1
