"""A dataset or architecture module by its registered name, with a close-match hint for a typo."""

import difflib
import importlib


def module_named(kind: str, name: str, names, package: str, modules: dict | None = None):
    """The module `package.<module of name>`; ValueError naming the valid names if `name` is not one."""
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ValueError(f"unknown {kind} '{name}'; valid names: {', '.join(names)}.{hint}")
    return importlib.import_module(f"{package}.{(modules or {}).get(name, name)}")
