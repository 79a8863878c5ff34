"""The plan: cells, grids and scales expanded into run configs and run ids, and their job resources."""

from centralflows._exports import lazy_exports

_EXPORTS = {
    "Plan": "centralflows.plan.grid",
    "plan": "centralflows.plan.grid",
    "run_id": "centralflows.plan.grid",
    "deep_merge": "centralflows.plan.grid",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
