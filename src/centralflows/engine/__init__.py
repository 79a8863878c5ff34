"""The engine: optimizers, derivatives, eigen-tracking, the SDCP solver, and the processes
(discrete, midpoint, stable, central, ablated, stationary)."""

from centralflows._exports import lazy_exports

_EXPORTS = {
    "OPTIMIZERS": "centralflows.engine.registry",
    "PROCESSES": "centralflows.engine.registry",
    "SDCP_THRESHOLD": "centralflows.engine.registry",
    "optimizer_class": "centralflows.engine.registry",
    "process_class": "centralflows.engine.registry",
    "Optimizer": "centralflows.engine.optimizers",
    "GD": "centralflows.engine.optimizers",
    "ScalarRMSProp": "centralflows.engine.optimizers",
    "RMSProp": "centralflows.engine.optimizers",
    "make_optimizer": "centralflows.engine.optimizers",
    "hvp": "centralflows.engine.derivatives",
    "batched_hvp": "centralflows.engine.derivatives",
    "third_derivative": "centralflows.engine.derivatives",
    "third_derivative_pairs": "centralflows.engine.derivatives",
    "EigConfig": "centralflows.engine.eigs",
    "EigTracker": "centralflows.engine.eigs",
    "solve_sdcp": "centralflows.engine.sdcp",
    "solve_sdcp_with_info": "centralflows.engine.sdcp",
    "sdcp_residuals": "centralflows.engine.sdcp",
    "central_velocity": "centralflows.engine.central",
    "sdcp_data": "centralflows.engine.central",
    "pair_coefficients": "centralflows.engine.central",
    "predictions": "centralflows.engine.predictions",
    "deltas": "centralflows.engine.predictions",
    "Compiled": "centralflows.engine.compiled",
    "Process": "centralflows.engine.protocol",
    "Measurement": "centralflows.engine.protocol",
    "Discrete": "centralflows.engine.processes",
    "Midpoint": "centralflows.engine.processes",
    "StableFlow": "centralflows.engine.processes",
    "CentralFlow": "centralflows.engine.processes",
    "AblatedFlow": "centralflows.engine.ablated",
    "StationaryConfig": "centralflows.engine.stationary",
    "StationarySolver": "centralflows.engine.stationary",
    "StationaryProbe": "centralflows.engine.stationary",
    "StationaryFlow": "centralflows.engine.stationary",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
