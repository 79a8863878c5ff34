"""The run configuration: resolution of one run cell's overrides over the defaults, and validation."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os

from centralflows.engine.optimizers import hyperparameters
from centralflows.engine.registry import OPTIMIZERS, PROCESSES, optimizer_class
from centralflows.plan.grid import not_identity, run_id
from centralflows.runner.options import (  # noqa: F401 (the config's public names, re-exported)
    NO_VALUE,
    ConfigError,
    Option,
    convert_value,
    describe,
    flatten,
    nest,
    option,
    spellings,
)
from centralflows.runner.run_schema import (  # noqa: F401 (re-exported: `write_run_json_schema(RUN_JSON_SCHEMA)`)
    RUN_JSON_SCHEMA,
    run_json_schema,
    write_run_json_schema,
)
from centralflows.runner.sections import DEFAULTS, EIG, PROCESS_EIG, SCHEMA, RunConfig


def _component(kind: str, name: str):
    """The dataset or architecture module named `name` (tries `-` and `_` spellings)."""
    if kind == "data":
        from centralflows.problem.data import get_dataset as get
    else:
        from centralflows.problem.models import get_architecture as get
    first_error = None
    for candidate in spellings(name):
        try:
            return candidate, get(candidate)
        except ValueError as err:
            first_error = first_error or err
    raise ConfigError(str(first_error), key=f"{kind}.name")


def _component_options(kind: str, name: str) -> tuple[str, dict]:
    """(canonical name, {option: Option}) for a dataset or architecture, from its module's DEFAULTS."""
    name, module = _component(kind, name)
    what = "dataset" if kind == "data" else "architecture"
    options = {}
    for key, default in module.DEFAULTS.items():
        if isinstance(default, list | tuple):  # e.g. resnet stage_sizes (3, 3, 3)
            item = type(default[0]) if default else None
            options[key] = Option(default, f"{what} option of {name}", kind=list, item=item, strict=False)
        elif key != "name":
            options[key] = Option(default, f"{what} option of {name}", strict=False)
    return name, options


def schema_for(data: str | None = None, arch: str | None = None) -> tuple[dict, str | None, str | None]:
    """The full schema with the options of dataset `data` and architecture `arch` added.

    Returns:
        (schema, canonical dataset name, canonical architecture name); a name left None adds nothing.
    """
    schema = copy.copy(SCHEMA)
    if data is not None:
        data, options = _component_options("data", data)
        schema["data"] = dict(SCHEMA["data"])
        for key, opt in options.items():  # the module's defaults win, e.g. its own n
            schema["data"][key] = (
                dataclasses.replace(schema["data"][key], default=opt.default)
                if key in SCHEMA["data"]
                else opt
            )
    if arch is not None:
        arch, options = _component_options("arch", arch)
        schema["arch"] = {**SCHEMA["arch"], **options}
    return schema, data, arch


def schema_node(schema: dict, path: list[str]) -> Option | dict | None:
    node = schema
    for i, key in enumerate(path):
        if i == 2 and path[0] in PROCESS_EIG and path[1] == "eig":
            node = EIG  # discrete.eig.frequency is checked as eig.frequency
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _all_keys(schema: dict) -> list[str]:
    keys = []
    for path, leaf in flatten(schema).items():
        keys.append(path)
        if path.endswith(".eig") and leaf == {}:
            keys += [f"{path}.{k}" for k in EIG]
    return keys


def _unknown(key: str, schema: dict, note: str = "") -> ConfigError:
    keys = _all_keys(schema)
    leaf = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(key, keys, n=3, cutoff=0.6)
    close += [k for k in keys if k.rsplit(".", 1)[-1] == leaf and k not in close]
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"unknown key '{key}'{hint}{note}", key=key, suggestions=close[:3])


def _check_keys(tree: dict, schema: dict, prefix: str = "", skip: tuple = ()):
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if not prefix and key in skip:
            continue
        node = schema_node(schema, path.split("."))
        if node is None:
            raise _unknown(path, schema)
        if isinstance(node, dict):  # a section, or a process's eig overrides ({} in the schema)
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' must be a mapping of options, got {value!r}", key=path)
            _check_keys(value, schema, path + ".")


def _merge(schema: dict, overrides: dict, prefix: str = "") -> dict:
    out = {}
    for key, node in schema.items():
        path = f"{prefix}{key}"
        given = overrides.get(key, {} if isinstance(node, dict) else None)
        if isinstance(node, dict) and key == "eig" and prefix[:-1] in PROCESS_EIG:
            out[key] = {k: convert_value(f"{path}.{k}", v, EIG[k]) for k, v in given.items()}
        elif isinstance(node, dict):
            out[key] = _merge(node, given, path + ".")
        elif key in overrides:
            out[key] = convert_value(path, given, node)
        elif node.required:
            raise ConfigError(f"'{path}' is required: {describe(node)}", key=path)
        else:
            out[key] = copy.deepcopy(node.default)
    return out


def resolve_config(overrides: dict | None = None) -> RunConfig:
    """Merges `overrides` over DEFAULTS and validates the result.

    A bare `x.no_flag` (NO_VALUE, from the command line) of a boolean option sets x.flag to False.
    Dataset and architecture options default to `centralflows.problem.data.get_dataset(name).DEFAULTS` and
    `centralflows.problem.models.get_architecture(name).DEFAULTS`. Keys may be nested or dotted
    ({"opt": {"lr": 0.1}} or {"opt.lr": 0.1}); strings are converted to the kind of the option, so
    command-line values can be passed as they are. When `out` is not given it is
    `default_out`: `results/runs/<run id>`, the id the workflow gives the same overrides.

    Returns:
        A new, complete RunConfig; dataset, optimizer and process names canonical.

    Raises:
        ConfigError: an unknown key (with close matches), a missing required key, or an invalid value
            (saying what is allowed).
    """
    overrides = negate_flags(overrides or {})
    overrides = nest(copy.deepcopy(overrides))
    given = copy.deepcopy(overrides)  # what the run id names (see default_out)
    given.setdefault("data", {}).setdefault("name", None)  # the id names the dataset, given or default
    for section, keys in not_identity().items():  # where the data lives, how it is chunked: no identity
        for key in keys:
            given.get(section, {}).pop(key, None)
    # keys outside data/arch first: a typo there is reported without loading any model code
    _check_keys(overrides, SCHEMA, skip=("data", "arch"))
    for section in ("data", "arch"):
        if not isinstance(overrides.get(section, {}), dict):
            raise ConfigError(f"'{section}' must be a mapping of options", key=section)
    data_name = overrides.get("data", {}).get("name", DEFAULTS["data"]["name"])
    data_name = convert_value("data.name", data_name, SCHEMA["data"]["name"])
    arch_name = overrides.get("arch", {}).get("name")
    if arch_name is None:
        raise ConfigError(f"'arch.name' is required: {describe(SCHEMA['arch']['name'])}", key="arch.name")
    arch_name = convert_value("arch.name", arch_name, SCHEMA["arch"]["name"])
    schema, data_name, arch_name = schema_for(data_name, arch_name)  # the names made canonical
    for section in ("data", "arch"):
        _check_keys({section: overrides.get(section, {})}, schema)
    overrides.setdefault("data", {})["name"] = data_name
    overrides["arch"]["name"] = arch_name
    config = _merge(schema, overrides)
    if config["init"] == "torch":  # an architecture without the authors' constructor: say so now
        from centralflows.problem.models.torch_init import NoTorchInit, authors_module

        try:
            authors_module(arch_name)
        except NoTorchInit as err:
            raise ConfigError(str(err), key="init") from None

    opt = config["opt"]
    own = hyperparameters(opt["name"])
    for key in sorted({key for name in OPTIMIZERS for key in hyperparameters(name)} - set(own)):
        if key in overrides.get("opt", {}) and opt[key] != DEFAULTS["opt"][key]:
            raise ConfigError(
                f"'opt.{key}' has no effect with opt.name {opt['name']}; remove it", key=f"opt.{key}"
            )
    if not config["runs"]:
        raise ConfigError(f"'runs' is empty: {describe(SCHEMA['runs'])}", key="runs")
    config["runs"] = list(dict.fromkeys(config["runs"]))
    for process in ("ablated", "stationary"):
        if process in config["runs"] and not optimizer_class(opt["name"]).has_ema:
            raise ConfigError(
                f"the {process} flow needs an EMA preconditioner: opt.name "
                + " or ".join(name for name in OPTIMIZERS if optimizer_class(name).has_ema),
                key="runs",
            )
    for process in PROCESSES:
        for key in set(not_identity()["eig"]) & set(config[process]["eig"]):  # shared by the processes
            raise ConfigError(
                f"'{process}.eig.{key}' cannot differ between processes: they share the compiled "
                f"derivative programs it sets; set it for the whole run with {flag('eig.' + key)}",
                key=f"{process}.eig.{key}",
            )
        eig = {**config["eig"], **config[process]["eig"]}
        if eig["max_k"] < eig["initial_k"]:
            raise ConfigError(
                f"{process}: eig.max_k ({eig['max_k']}) < eig.initial_k ({eig['initial_k']})", key="eig.max_k"
            )
    load = config["load"]
    if load["path"] and not load["from_process"]:
        raise ConfigError(
            f"'load.from_process' is required with load.path: one of {', '.join(PROCESSES)}",
            key="load.from_process",
        )
    if config["out"] is None:
        config["out"] = default_out(given, config)
    return RunConfig.from_dict(config)


def _given_values(given: dict, config: dict) -> dict:
    """The keys of `given` (nested overrides) with their values as resolved in `config`."""
    out = {}
    for key, value in given.items():
        resolved = config.get(key, value) if isinstance(config, dict) else value
        both = isinstance(value, dict) and isinstance(resolved, dict)
        out[key] = _given_values(value, resolved) if both else resolved
    return out


def default_out(given: dict, config: dict) -> str:
    """`results/runs/<run id>`: the workflow's run id (`centralflows.plan.grid.run_id`) of the overrides
    given, with their values as resolved (so `--opt.lr 0.02` names the run a cell with `lr: 0.02` does)."""
    given = _given_values(given, config)
    return os.path.join("results", "runs", run_id(given))


# The command line (runner.cli) hands its overrides here as dotted keys with raw values; what needs
# the schema to be read (`no-` flags, the authors' defaults, the option listing of --help) is below.
POSITIONAL = ("opt", "data", "arch")  # sections whose name is given as SECTION:NAME


def flag(key: str) -> str:
    """Dotted config key -> its command-line spelling: `eig.max_k` -> --eig.max-k, `opt.name` -> opt:NAME."""
    section, _, leaf = key.rpartition(".")
    if leaf == "name" and section in POSITIONAL:
        return f"{section}:NAME"
    return "--" + key.replace("_", "-")


def _schema_with_components(overrides: dict) -> dict:
    """The schema with the options of the dataset and architecture named by dotted `overrides`."""
    return schema_for(overrides.get("data.name", DEFAULTS["data"]["name"]), overrides.get("arch.name"))[0]


def negate_flags(overrides: dict) -> dict:
    """Dotted `overrides` with each bare `x.no_flag` of a boolean option as x.flag = False."""
    out = {}
    for key, value in overrides.items():
        head, _, leaf = key.rpartition(".")
        if leaf.startswith("no_") and value is NO_VALUE:
            target = f"{head}.{leaf[3:]}" if head else leaf[3:]
            component = head.split(".")[0] in ("data", "arch")
            opt = schema_node(_schema_with_components(overrides) if component else SCHEMA, target.split("."))
            if isinstance(opt, Option) and opt.type is bool:
                if target in overrides:
                    raise ConfigError(
                        f"'{target}' and '{key}' contradict each other; give one",
                        key=target, suggestions=(key,),
                    )  # fmt: skip
                key, value = target, False
        out[key] = value
    return out


def resolve_command_line(overrides: dict) -> tuple[RunConfig, bool]:
    """The run config of a command line's dotted overrides, and whether `--overwrite` was given.

    The authors' main.py conventions apply: a missing `steps` is 50 and a missing `data.classes` of
    cifar10 is 10, and `steps` counts the steps after the warm start and the load (see count_steps).
    """
    overrides = dict(overrides)
    overwrite = convert_value("overwrite", overrides.pop("overwrite", False), Option(False, ""))
    overrides.setdefault("steps", "50")
    if overrides.get("data.name", DEFAULTS["data"]["name"]) == "cifar10":
        overrides.setdefault("data.classes", "10")
    return count_steps(resolve_config(overrides)), overwrite


def count_steps(config: RunConfig) -> RunConfig:
    """`config` with its `steps` counted from the start: warm_start (if > 0) plus the step of load.path
    are added, as the authors' main.py counts; the engine's `steps` is the last step."""
    if config.steps < 1:
        raise ConfigError(
            f"invalid value for 'steps': {config.steps} (allowed: an integer >= 1, the steps to run)",
            key="steps",
        )
    start = max(config.warm_start, 0)
    if config.load.path:
        from centralflows.runner.checkpoint import CheckpointError, read_meta

        try:
            start += int(read_meta(config.load.path)["step"])
        except (CheckpointError, KeyError, TypeError, ValueError) as err:
            raise ConfigError(f"'load.path': {err}", key="load.path") from None
    return dataclasses.replace(config, steps=config.steps + start)


def help_line(form: str, text: str) -> str:
    """One option of --help: its command-line form, then what it means."""
    return f"  {form:<36}  {text}" if len(form) <= 36 else f"  {form}\n  {'':<36}  {text}"


def option_help(overrides: dict) -> tuple[list[str], str]:
    """(a help line per option of the config, a note) for --help; with the options of the dataset and
    architecture the dotted `overrides` name, or a note saying why they are not listed."""
    note = ""
    try:
        schema = _schema_with_components(overrides)
    except (ImportError, ConfigError) as err:  # unknown or not yet importable dataset/architecture
        schema, note = SCHEMA, f"(dataset/architecture options not listed: {err})"
    lines = []
    for key, opt in flatten(schema).items():
        if key.endswith(".name") and key.count(".") == 1:
            continue
        if not isinstance(opt, Option):  # a process's eig overrides
            lines.append(help_line(flag(key) + ".OPTION V", "this process's override of --eig.OPTION"))
            continue
        head, _, leaf = key.rpartition(".")
        if opt.type is bool:
            form = f"{flag(key)} / {flag(f'{head}.no_{leaf}' if head else f'no_{leaf}')}"
        else:
            form = f"{flag(key)} {'V [V ...]' if opt.type is list else 'V'}"
        allowed = f"{describe(opt)}; " if opt.choices or opt.allowed else ""
        default = "required" if opt.required else f"default {opt.default!r}"
        text = f"{opt.help} ({allowed}{default})"
        if key == "steps":  # the command line counts as the authors' main.py does (count_steps)
            text = "steps to run after --warm-start and after the step of --load.path (default 50)"
        lines.append(help_line(form, text))
    return lines, note
