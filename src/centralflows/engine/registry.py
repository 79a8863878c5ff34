"""The engine's registries and constants, readable without importing JAX (the run configuration, the
plan and the analysis read them): optimizers and processes by name, and the SDCP threshold.

Adding an optimizer or a process is its class plus one line here; classes are imported on first use.
"""

from __future__ import annotations

import importlib

# Effective eigenvalues above this enter the SDCP (the authors' value): the flows' default, and the
# level at which the analysis counts a flow as at the edge of stability.
SDCP_THRESHOLD = 1.95

# The edge of stability: an effective eigenvalue (eta S for GD) at 2. The onset of a trajectory is the
# first logged step at which its top effective eigenvalue is >= a level (EOS for an optimizer's run);
# the summary, the claims, the figures and the W1.18 restart all use `onset_index`.
EOS = 2.0

# How far above EOS the central flow's effective eigenvalues may be once it holds them there: the
# central flow's step-size control keeps them within it, the summary measures it
# (central_max_seff_after_onset).
EDGE_TOL = 1e-3


def onset_index(top, level: float = EOS) -> int | None:
    """Index of the first entry of `top` (a sequence of numbers, NaN = not logged) that is >= level."""
    return next((i for i, value in enumerate(top) if value >= level), None)  # NaN >= level is False


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
