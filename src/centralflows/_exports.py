"""Lazy re-exports: a package names its public API without importing it (so `import centralflows` and the
light layers stay free of JAX and Flax until a name is used)."""

from __future__ import annotations

import importlib


def lazy_exports(package: str, exports: dict[str, str]):
    """(`__getattr__`, `__dir__`) for a package whose public `name` lives in module `exports[name]`."""

    def __getattr__(name: str):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name]), name)

    def __dir__():
        return sorted(exports)

    return __getattr__, __dir__
