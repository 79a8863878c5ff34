"""The workflow config in one dict: the user's knobs (config.yaml) and the registries under workflow/.

config.yaml holds what a user sets (scale, scales, data_root, resources, check). What the workflow
computes and draws is a registry kept with the workflow's code: the cells and grids
(workflow/cells.yaml), the figures (workflow/figures.yaml, their captions in
workflow/report/captions.yaml beside the report template) and the claims (workflow/claims.yaml).
`add_registries` merges them into the config dict under "cells", "grids", "figures" and "claims",
each file validated by its schema in workflow/schemas/; the Snakefile, the tests and every script
read the config through it (or through `load_config`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

# registry file (relative to the repository root) -> its schema and the config keys it holds
REGISTRIES = {
    "workflow/cells.yaml": ("workflow/schemas/cells.schema.yaml", ("cells", "grids")),
    "workflow/figures.yaml": ("workflow/schemas/figures.schema.yaml", ("figures",)),
    "workflow/claims.yaml": ("workflow/schemas/claims.schema.yaml", ("claims",)),
}
CAPTIONS = "workflow/report/captions.yaml"  # figure id -> caption, read by the report template
CONFIG_SCHEMA = "workflow/schemas/config.schema.yaml"


class WorkflowConfigError(ValueError):
    """A workflow config or registry file that is missing or does not match its schema."""


def _unshared(tree):
    """A copy in which no two places share one object (YAML anchors do): merges copy, but never share."""
    if isinstance(tree, dict):
        return {key: _unshared(value) for key, value in tree.items()}
    return [_unshared(value) for value in tree] if isinstance(tree, list) else tree


def _read(path: Path) -> dict:
    if not path.is_file():
        raise WorkflowConfigError(f"no file {path}; run from the repository root (or pass its config.yaml)")
    try:
        return _unshared(yaml.safe_load(path.read_text()) or {})
    except yaml.YAMLError as error:
        raise WorkflowConfigError(f"{path} is not valid YAML: {error}") from None


def validate(document: dict, schema_path: Path, name: str) -> None:
    """Raises WorkflowConfigError naming the file and key where `document` breaks its JSON Schema.

    A schema may refer to another schema of the same folder (`config.schema.yaml#/$defs/run`).
    """
    import jsonschema
    from referencing import Registry, Resource

    folder = schema_path.resolve().parent
    resources = [
        (path.as_uri(), Resource.from_contents({"$id": path.as_uri(), **_read(path)}))
        for path in sorted(folder.glob("*.schema.yaml"))
    ]
    registry = Registry().with_resources(resources)
    schema = registry.contents(schema_path.resolve().as_uri())
    validator = jsonschema.Draft202012Validator(schema, registry=registry)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        raise WorkflowConfigError(f"{name}: {where}: {error.message}")


def add_registries(config: dict, root: str | Path = ".") -> dict:
    """`config` (a parsed config.yaml) with the registries of the workflow under `root` merged in.

    Every figure must have a caption and every caption a figure.
    """
    root = Path(root)
    for file, (schema, keys) in REGISTRIES.items():
        registry = _read(root / file)
        validate(registry, root / schema, file)
        config.update({key: registry[key] for key in keys})
    captions = _read(root / CAPTIONS)
    figures = config["figures"]
    missing, orphans = sorted(set(figures) - set(captions)), sorted(set(captions) - set(figures))
    if missing or orphans:
        raise WorkflowConfigError(
            f"{CAPTIONS}: every figure of workflow/figures.yaml needs one caption there"
            + (f"; no caption for {missing}" if missing else "")
            + (f"; captions of unknown figures {orphans}" if orphans else "")
        )
    for figure, entry in figures.items():
        if not isinstance(captions[figure], str) or not captions[figure].strip():
            raise WorkflowConfigError(f"{CAPTIONS}: the caption of {figure} must be text")
        entry["caption"] = captions[figure]
    return config


def load_config(path: str | Path = "config.yaml") -> dict:
    """config.yaml validated by its schema, with the registries of its repository merged in."""
    path = Path(path)
    config = _read(path)
    validate(config, path.parent / CONFIG_SCHEMA, str(path))
    return add_registries(config, path.parent)
