"""The engine's registries and constants, readable without importing JAX (the run configuration, the
plan and the analysis read them): optimizers and processes by name, the SDCP threshold and the
central flow's edge tolerance.

Adding an optimizer or a process is its class plus one line here; classes are imported on first use.
"""

from __future__ import annotations

import importlib

# Effective eigenvalues above this enter the SDCP (the authors' value): the flows' default, and the
# level at which the analysis counts a flow as at the edge of stability.
SDCP_THRESHOLD = 1.95

# How far above the edge of stability (an effective eigenvalue at 2) the central flow's effective
# eigenvalues may be once it holds them there: the central flow's step-size control keeps them within
# it, the summary measures it (central_max_seff_after_onset; the onset itself is
# centralflows.analysis.onset).
EDGE_TOL = 1e-3


# name -> "module:class"
OPTIMIZERS = {
    "gd": "centralflows.engine.optimizers:GD",
    "scalar_rmsprop": "centralflows.engine.optimizers:ScalarRMSProp",
    "rmsprop": "centralflows.engine.optimizers:RMSProp",
}

# name -> "module:class", in the canonical order in which a run advances and logs them; each process's
# options are the config section of its name.
PROCESSES = {
    "discrete": "centralflows.engine.processes:Discrete",
    "midpoint": "centralflows.engine.processes:Midpoint",
    "stable": "centralflows.engine.processes:StableFlow",
    "central": "centralflows.engine.processes:CentralFlow",
    "ablated": "centralflows.engine.ablated:AblatedFlow",
    "stationary": "centralflows.engine.stationary:StationaryFlow",
}


def _load(path: str):
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


def optimizer_class(name: str) -> type:
    """The optimizer class registered as `name` (a key of OPTIMIZERS)."""
    return _load(OPTIMIZERS[name])


def process_class(name: str) -> type:
    """The process class registered as `name` (a key of PROCESSES)."""
    return _load(PROCESSES[name])
