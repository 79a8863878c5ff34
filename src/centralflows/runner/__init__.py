"""Running one trajectory: its configuration, command line, lockstep loop, HDF5 logging and checkpoints."""

from centralflows._exports import lazy_exports

_EXPORTS = {
    "RunConfig": "centralflows.runner.sections",
    "ConfigError": "centralflows.runner.config",
    "resolve_config": "centralflows.runner.config",
    "run": "centralflows.runner.experiment",
    "RunStopped": "centralflows.runner.experiment",
    "H5Logger": "centralflows.runner.io",
    "open_for_reading": "centralflows.runner.io",
    "save_checkpoint": "centralflows.runner.checkpoint",
    "load_checkpoint": "centralflows.runner.checkpoint",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
