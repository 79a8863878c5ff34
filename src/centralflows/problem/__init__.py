"""The problem: datasets, architectures and losses, and the Problem that hands them to the engine."""

from centralflows._exports import lazy_exports

_EXPORTS = {
    "DATASETS": "centralflows.problem.data",
    "get_dataset": "centralflows.problem.data",
    "ARCHITECTURES": "centralflows.problem.models",
    "get_architecture": "centralflows.problem.models",
    "CRITERIA": "centralflows.problem.losses",
    "get_criterion": "centralflows.problem.losses",
    "Problem": "centralflows.problem.build",
    "build_problem": "centralflows.problem.build",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
