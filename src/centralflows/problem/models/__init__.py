"""Registry of the seven architectures; each module has DEFAULTS and build(options, spec)."""

import difflib
import importlib

ARCHITECTURES = ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba")


def get_architecture(name: str):
    """Returns the module of architecture `name` (it defines `DEFAULTS` and `build(options, spec)`).

    Raises:
        ValueError: `name` is not one of ARCHITECTURES (the message lists them).
    """
    if name not in ARCHITECTURES:
        close = difflib.get_close_matches(name, ARCHITECTURES, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown architecture '{name}'; valid names: {', '.join(ARCHITECTURES)}.{hint}")
    return importlib.import_module(f"centralflows.problem.models.{name}")
