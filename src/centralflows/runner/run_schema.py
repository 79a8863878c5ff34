"""The JSON Schema of a workflow run block, generated from the run configuration's sections."""

from __future__ import annotations

from pathlib import Path

from centralflows.engine.eigs import NOT_IDENTITY as EIG_NOT_IDENTITY
from centralflows.runner.options import Option, spellings
from centralflows.runner.sections import EIG, SCHEMA

RUN_JSON_SCHEMA = "workflow/schemas/run.schema.yaml"  # relative to the repository root


def run_json_schema() -> dict:
    """The JSON Schema of a run block of the workflow config, derived from SCHEMA (types, choices,
    closed sections). The workflow validates its cells with it when it loads them, before planning;
    the values' checks (ranges, cross-field rules) are resolve_config's, which runs on every run at
    parse time. Committed as workflow/schemas/run.schema.yaml; a test keeps the file equal to this."""
    kinds = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array"}

    def leaf(opt: Option) -> dict:
        if not opt.strict:
            return {}  # a dataset or architecture option: its module checks it
        out = {"type": kinds[opt.type]} if opt.type in kinds else {}
        if opt.choices:
            names = [spelling for choice in opt.choices for spelling in spellings(choice)]
            out = {"items": {"enum": names}} if opt.type is list else {"enum": names}
            out["type"] = "array" if opt.type is list else "string"
        if opt.optional and "type" in out:
            out["type"] = [out["type"], "null"]
        return out

    def section(node: dict, open_: bool = False) -> dict:
        properties = {}
        for key, value in node.items():
            if isinstance(value, Option):
                properties[key] = leaf(value)
            elif key == "eig" and not value:  # a process's overrides of the global eig block
                properties[key] = section({k: v for k, v in EIG.items() if k not in EIG_NOT_IDENTITY})
            else:
                properties[key] = section(value, open_=key in ("data", "arch"))
        out = {"type": "object", "properties": properties}
        if not open_:
            out["additionalProperties"] = False
        return out

    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **section(SCHEMA)}


def write_run_json_schema(path) -> None:
    """Writes run_json_schema() as YAML to `path` (regenerate after changing a config section)."""
    import yaml

    header = (
        "# Generated from the run configuration (centralflows.runner.config.run_json_schema); do not edit.\n"
        "# Regenerate: python -c 'from centralflows.runner.config import *; "
        "write_run_json_schema(RUN_JSON_SCHEMA)'\n"
    )
    Path(path).write_text(header + yaml.safe_dump(run_json_schema(), sort_keys=False, width=110))
