"""Nested config dicts addressed by dotted paths ("opt.lr"), merged without changing their inputs."""

from __future__ import annotations

import copy


def deep_merge(base: dict, over: dict | None) -> dict:
    """A new dict: `over` merged into `base` recursively (mappings merge, everything else replaces)."""
    merged = copy.deepcopy(base)
    for key, value in (over or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def set_path(tree: dict, dotted: str, value) -> dict:
    """A new dict with `tree[a][b][c] = value` for `dotted = "a.b.c"`."""
    head, *rest = dotted.split(".")
    return deep_merge(tree, {head: set_path(tree.get(head, {}), ".".join(rest), value) if rest else value})


def get_path(tree: dict, dotted: str, default=None):
    """`tree[a][b][c]` for `dotted = "a.b.c"`, or `default` when a key is missing."""
    for key in dotted.split("."):
        if not isinstance(tree, dict) or key not in tree:
            return default
        tree = tree[key]
    return tree
