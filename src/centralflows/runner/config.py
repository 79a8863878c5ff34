"""The run configuration: defaults of one run cell (a nested dict), merging and validation."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

OPTIMIZERS = ("gd", "scalar_rmsprop", "rmsprop")
FLOW_T_RATES = ("step", "authors")  # as optimizers.FLOW_T_RATES
PROCESSES = ("discrete", "midpoint", "stable", "central", "ablated", "stationary")  # as processes.PROCESSES
DTYPES = ("float32", "float64")
INITS = ("torch", "jax")  # as problem.INITS
CRITERIA = ("mse", "ce")
STATUSES = ("running", "completed", "diverged", "stopped", "failed")


class _NoValue:
    """A command-line option given without a value: True for a flag, [] for a list, else an error."""

    def __repr__(self):
        return "NO_VALUE"

    def __deepcopy__(self, memo):
        return self  # stays recognisable through resolve_config's copy


NO_VALUE = _NoValue()


class ConfigError(ValueError):
    """A user error in a run configuration (unknown key or invalid value).

    Attributes:
        key: the dotted key at fault ("eig.frequency"), or None.
        suggestions: close matches of an unknown key, as dotted keys.
    """

    def __init__(self, message: str, key: str | None = None, suggestions: tuple = ()):
        super().__init__(message)
        self.key = key
        self.suggestions = tuple(suggestions)


@dataclass(frozen=True)
class Option:
    """One leaf of the config: its default, its meaning, and what values it allows.

    Attributes:
        default: the value used when the key is not given (None with `required`: must be given).
        help: what the key means; shown by `--help` (this is the comment of the key).
        kind: bool, int, float, str or list; inferred from `default` when None.
        item: element kind of a list.
        optional: None is an allowed value.
        required: the key has no default and must be given.
        choices: the allowed values (strings; `-` and `_` are interchangeable when matching).
        check: predicate on the converted value; `allowed` says in words what it accepts.
        strict: a value that does not convert to `kind` is an error; dataset and architecture options
            are not strict (e.g. data.classes takes 4 or "binary"), their modules check them.
    """

    default: object
    help: str
    kind: type | None = None
    item: type | None = None
    optional: bool = False
    required: bool = False
    choices: tuple = ()
    check: Callable | None = None
    allowed: str = ""
    strict: bool = True

    @property
    def type(self) -> type:
        return self.kind or (type(self.default) if self.default is not None else object)


_positive = dict(check=lambda x: 0 < x < math.inf, allowed="a number > 0")  # inf: a run of NaNs
_count = dict(kind=int, check=lambda x: x >= 1, allowed="an integer >= 1")
_frequency = dict(kind=int, check=lambda x: x == -1 or x >= 1, allowed="an integer >= 1, or -1 for never")

EIG = {
    "frequency": Option(
        -1, "run the full eigensolver every N calls (-1: never; 1 for the figures)", **_frequency
    ),
    "track_threshold": Option(
        1.5,
        "track one more eigenpair while the smallest effective eigenvalue is >= this (x 1/lr for GD)",
        optional=True,
        **_positive,
    ),
    "initial_k": Option(1, "eigenpairs tracked at the start (alias: initial_neigs)", **_count),
    "max_k": Option(10, "cap on the number of tracked eigenpairs", **_count),
    "tol": Option(1e-10, "LOBPCG relative tolerance (authors' convention, REFERENCE §3.5)", **_positive),
    "max_iter": Option(100, "LOBPCG iteration cap", **_count),
    "chunk_size": Option(None, "Hessian-vector products run at once (none: all k)", optional=True, **_count),
    "between_solves": Option(
        "lobpcg",
        "eigenpairs between full solves: one warm-started LOBPCG iteration, or the authors' quotients",
        kind=str,
        choices=("lobpcg", "quotients"),
    ),  # fmt: skip
}

# The schema of a run cell. Leaves are Options; `eig` under a process holds that process's overrides
# of the global `eig` block (e.g. discrete.eig.frequency = -1 to solve at the midpoints only).
# `data` and `arch` also take the options of the chosen dataset / architecture module (their DEFAULTS).
SCHEMA = {
    "opt": {
        "name": Option(None, "optimizer (positional opt:NAME)", kind=str, required=True, choices=OPTIMIZERS),
        "lr": Option(None, "learning rate eta", kind=float, required=True, **_positive),
        "beta2": Option(
            0.99,
            "EMA factor of the squared gradient (RMSProp variants)",
            check=lambda x: 0 < x < 1,
            allowed="a number in (0, 1)",
        ),
        "eps": Option(
            0.0,
            "added outside the square root: P = (sqrt(nu) + eps)/lr (RMSProp variants)",
            check=lambda x: 0 <= x < math.inf,
            allowed="a number >= 0",
        ),
        "bias_correction": Option(False, "divide nu by 1 - beta2^t (RMSProp variants)"),
        "flow_t_rate": Option(
            "step",
            "rate of the flows' step counter t: step (1: flow time = steps) or authors (1/beta2, their code)",
            choices=FLOW_T_RATES,
        ),
    },
    "data": {
        "name": Option("cifar10", "dataset (positional data:NAME): cifar10 | synthetic-cifar10 | sorting"),
        "criterion": Option("mse", "loss: mse (with the 1/2) or ce", choices=CRITERIA),
        "n": Option(1000, "number of training examples", **_count),
        "root": Option(
            None, "directory of the dataset cache (none: the dataset's default)", kind=str, optional=True
        ),
    },
    "arch": {
        "name": Option(None, "architecture (positional arch:NAME)", kind=str, required=True),
    },
    "runs": Option(["discrete"], "processes to run in lockstep", item=str, choices=PROCESSES),
    "steps": Option(
        None,
        "number of steps (units of time)",
        kind=int,
        required=True,
        check=lambda x: x >= 0,
        allowed="an integer >= 0",
    ),
    "seed": Option(0, "seed of the initialisation and of the eigensolver's random vectors"),
    "init": Option(
        "torch",
        "initial weights: torch (the authors' PyTorch init after torch.manual_seed(seed), exactly) or jax "
        "(the same distributions drawn from JAX's generator)",
        choices=INITS,
    ),
    "warm_start": Option(
        -1,
        "discrete steps taken before the processes start (-1 or 0: off)",
        check=lambda x: x >= -1,
        allowed="an integer >= -1",
    ),
    "dtype": Option("float32", "floating-point precision of the run", choices=DTYPES),
    "eig": EIG,
    "discrete": {"eig": {}},
    "midpoint": {"eig": {}},
    "stable": {
        "eig": {},
        "min_nsubsteps": Option(4, "least Euler substeps per unit time; max(this, ceil(2 S_eff))", **_count),
        "max_seff": Option(
            100.0, "stop the stable flow once S_eff exceeds this (alias: max_Seff)", **_positive
        ),
    },
    "central": {
        "eig": {},
        "nsubsteps": Option(4, "Euler substeps per unit time (dt = 1/nsubsteps)", **_count),
        "sdcp_threshold": Option(1.95, "effective eigenvalues >= this enter the SDCP", **_positive),
        "frequency_in_substeps": Option(False, "count eig.frequency in substeps, not steps (Mamba-CE)"),
        "max_seff": Option(
            10.0, "stop the central flow once S_eff exceeds this: it has left the edge (2)", **_positive
        ),
        "stationary_every": Option(
            0,
            "every N steps log nu-bar, P-hat and their speeds along the flow (0: off; RMSProp variants)",
            check=lambda x: x >= 0,
            allowed="an integer >= 0",
        ),
    },
    # the central flow without its curvature penalty (centralflows.engine.ablated; RMSProp variants only)
    "ablated": {
        "eig": {},
        "nsubsteps": Option(4, "Euler substeps per unit time (dt = 1/nsubsteps)", **_count),
        "sdcp_threshold": Option(1.95, "effective eigenvalues >= this enter the SDCP", **_positive),
        "frequency_in_substeps": Option(False, "count eig.frequency in substeps, not steps"),
    },
    # dw/dt = -Pbar(w)^-1 [grad L + 1/2 grad<Sigma,H>] (centralflows.engine.stationary; RMSProp variants only)
    "stationary": {
        "eig": {},
        "nsubsteps": Option(4, "Euler substeps per unit time; nu-bar is re-solved at each", **_count),
        "step": Option(
            0.5,
            "pseudo-time step of the nu fixed-point iteration, in (0, 1]",
            check=lambda x: 0 < x <= 1,
            allowed="a number in (0, 1]",
        ),
        "max_iter": Option(200, "cap on fixed-point iterations per solve", **_count),
        "tol": Option(1e-5, "stop when max|d nu| / max nu < tol (and S_eff <= 2 + tol_eig)", **_positive),
        "tol_eig": Option(1e-4, "tolerance on S_eff <= 2 at the fixed point", **_positive),
        "sdcp_threshold": Option(1.95, "effective eigenvalues >= this enter the SDCP", **_positive),
    },
    "checkpoint": {
        "frequency": Option(-1, "save a checkpoint every N steps (-1: never)", **_frequency),
        "steps": Option(
            [],
            "also save checkpoints at these steps",
            item=int,
            check=lambda xs: all(x >= 0 for x in xs),
            allowed="integers >= 0",
        ),
    },
    "checkpoint_file": Option(
        None, "resume from this checkpoint (continues the same trajectory and file)", kind=str, optional=True
    ),
    "load": {
        "path": Option(
            None, "start all processes from a point stored in this checkpoint", kind=str, optional=True
        ),
        "from_process": Option(
            None, "which process of load.path to start from", kind=str, optional=True, choices=PROCESSES
        ),
    },
    "out": Option(None, "output directory (none: results/runs/<run_id>)", kind=str, optional=True),
}

_OPT_ONLY = ("beta2", "eps", "bias_correction")  # options that GD does not have
_PROCESS_EIG = {p: "eig" for p in PROCESSES}  # sections whose `eig` holds overrides of EIG


def _defaults(schema: dict) -> dict:
    return {k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


# The nested default config of docs/design.md; see SCHEMA for what each key means and allows.
DEFAULTS = _defaults(SCHEMA)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{"a": {"b": 1}} -> {"a.b": 1}."""
    out = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out


def _component(kind: str, name: str):
    """The dataset or architecture module named `name` (tries `-` and `_` spellings)."""
    if kind == "data":
        from centralflows.problem.data import get_dataset as get
    else:
        from centralflows.problem.models import get_architecture as get
    first_error = None
    for candidate in dict.fromkeys((name, name.replace("_", "-"), name.replace("-", "_"))):
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


def _option(schema: dict, path: list[str]) -> Option | dict | None:
    node = schema
    for i, key in enumerate(path):
        if i == 2 and path[0] in _PROCESS_EIG and path[1] == "eig":
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
        node = _option(schema, path.split("."))
        if node is None:
            raise _unknown(path, schema)
        if isinstance(node, dict):  # a section, or a process's eig overrides ({} in the schema)
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' must be a mapping of options, got {value!r}", key=path)
            _check_keys(value, schema, path + ".")


def _describe(opt: Option) -> str:
    if opt.choices:
        text = ", ".join(opt.choices)
        text = f"a list of values from {text}" if opt.type is list else f"one of {text}"
    else:
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list"}
        text = opt.allowed or names.get(opt.type, opt.type.__name__)
    return text + (", or none" if opt.optional else "")


def _scalar(value, kind: type):
    """Converts one value (possibly a command-line string) to `kind`; raises ValueError if it can't."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise ValueError
    if isinstance(value, bool):
        raise ValueError
    if kind is int:
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            number = float(value)
            if number.is_integer():
                return int(number)
        raise ValueError
    if kind is float:
        if isinstance(value, int | float | str):
            return float(value)
        raise ValueError
    if kind is str:
        if isinstance(value, str | os.PathLike):
            return os.fspath(value)
        raise ValueError
    return _literal(value)


def _literal(value):
    """A dataset/architecture option whose default is None: int, float, none or string."""
    if not isinstance(value, str):
        return value
    for convert in (int, float):
        try:
            return convert(value)
        except ValueError:
            pass
    return None if value.lower() in ("none", "null") else value


def _choose(value, choices: tuple):
    if value in choices:
        return value
    for spelling in (value.replace("-", "_"), value.replace("_", "-")):
        if spelling in choices:
            return spelling
    raise ValueError


def _convert(path: str, value, opt: Option):
    """The value of `path` converted to the option's kind and checked; ConfigError otherwise."""
    if value is NO_VALUE:
        if opt.type is bool:
            return True
        if opt.type is list:
            value = []
        else:
            raise ConfigError(f"'{path}' needs a value: {_describe(opt)}", key=path)
    if opt.optional and (value is None or (isinstance(value, str) and value.lower() in ("none", "null"))):
        return None
    try:
        if opt.type is list:
            items = [value] if isinstance(value, str | int | float) else list(value)
            out = [_scalar(v, opt.item) for v in items]
            out = [_choose(v, opt.choices) for v in out] if opt.choices else out
        else:
            try:
                out = _scalar(value, opt.type)
            except ValueError:
                if opt.strict or not isinstance(value, str):
                    raise
                out = _literal(value)
            out = _choose(out, opt.choices) if opt.choices else out
        if opt.check is not None and not opt.check(out):
            raise ValueError
    except (ValueError, TypeError):
        raise ConfigError(
            f"invalid value for '{path}': {value!r} (allowed: {_describe(opt)})", key=path
        ) from None
    return out


def _merge(schema: dict, overrides: dict, prefix: str = "") -> dict:
    out = {}
    for key, node in schema.items():
        path = f"{prefix}{key}"
        given = overrides.get(key, {} if isinstance(node, dict) else None)
        if isinstance(node, dict) and key == "eig" and prefix[:-1] in _PROCESS_EIG:
            out[key] = {k: _convert(f"{path}.{k}", v, EIG[k]) for k, v in given.items()}
        elif isinstance(node, dict):
            out[key] = _merge(node, given, path + ".")
        elif key in overrides:
            out[key] = _convert(path, given, node)
        elif node.required:
            raise ConfigError(f"'{path}' is required: {_describe(node)}", key=path)
        else:
            out[key] = copy.deepcopy(node.default)
    return out


def nest(overrides: dict) -> dict:
    """Turns dotted keys ({"opt.lr": 0.1}) into nested dicts, merging with nested ones."""
    out: dict = {}
    for key, value in overrides.items():
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"'{key}' conflicts with a value given for '{part}'", key=key)
        if isinstance(value, dict):
            node[parts[-1]] = _deep_merge(node.get(parts[-1], {}), nest(value))
        else:
            node[parts[-1]] = value
    return out


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        both = isinstance(value, dict) and isinstance(out.get(key), dict)
        out[key] = _deep_merge(out[key], value) if both else value
    return out


def resolve_config(overrides: dict | None = None) -> dict:
    """Merges `overrides` over DEFAULTS and validates the result.

    Dataset and architecture options default to `centralflows.problem.data.get_dataset(name).DEFAULTS` and
    `centralflows.problem.models.get_architecture(name).DEFAULTS`. Keys may be nested or dotted
    ({"opt": {"lr": 0.1}} or {"opt.lr": 0.1}); strings are converted to the kind of the option, so
    command-line values can be passed as they are. When `out` is not given it is
    `results/runs/<run_id>`.

    Returns:
        A new, complete config (nested dict); dataset, optimizer and process names canonical.

    Raises:
        ConfigError: an unknown key (with close matches), a missing required key, or an invalid value
            (saying what is allowed).
    """
    overrides = nest(copy.deepcopy(overrides or {}))
    # keys outside data/arch first: a typo there is reported without loading any model code
    _check_keys(overrides, SCHEMA, skip=("data", "arch"))
    for section in ("data", "arch"):
        if not isinstance(overrides.get(section, {}), dict):
            raise ConfigError(f"'{section}' must be a mapping of options", key=section)
    data_name = _convert(
        "data.name", overrides.get("data", {}).get("name", "cifar10"), SCHEMA["data"]["name"]
    )
    arch_name = overrides.get("arch", {}).get("name")
    if arch_name is None:
        raise ConfigError(f"'arch.name' is required: {_describe(SCHEMA['arch']['name'])}", key="arch.name")
    schema, data_name, arch_name = schema_for(
        data_name, _convert("arch.name", arch_name, SCHEMA["arch"]["name"])
    )
    for section in ("data", "arch"):
        _check_keys({section: overrides.get(section, {})}, schema)
    overrides.setdefault("data", {})["name"] = data_name
    overrides["arch"]["name"] = arch_name
    config = _merge(schema, overrides)

    opt = config["opt"]
    if opt["name"] == "gd":
        for key in _OPT_ONLY:
            if key in overrides.get("opt", {}) and opt[key] != DEFAULTS["opt"][key]:
                raise ConfigError(f"'opt.{key}' has no effect with opt.name gd; remove it", key=f"opt.{key}")
    if not config["runs"]:
        raise ConfigError(f"'runs' is empty: {_describe(SCHEMA['runs'])}", key="runs")
    config["runs"] = list(dict.fromkeys(config["runs"]))
    for process in ("ablated", "stationary"):
        if process in config["runs"] and opt["name"] == "gd":
            raise ConfigError(
                f"the {process} flow needs an EMA preconditioner: opt.name scalar_rmsprop or rmsprop",
                key="runs",
            )
    for process in PROCESSES:
        eig = effective_eig_config(config, process)
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
        config["out"] = os.path.join("results", "runs", run_id(config))
    return config


def effective_eig_config(config: dict, process: str) -> dict:
    """The global `eig` block with the process's own overrides (config[process]["eig"]) on top."""
    return {**config["eig"], **config.get(process, {}).get("eig", {})}


def _g(value) -> str:
    if isinstance(value, list | tuple):
        return "x".join(_g(v) for v in value)
    if isinstance(value, bool):
        return str(value).lower()
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_id(config: dict) -> str:
    """A deterministic, readable slug of the trajectory a config describes.

    Names optimizer, dataset, architecture, the optimizer's hyperparameters, criterion, n, the
    dataset/architecture options that differ from their module defaults, then warm start, dtype (if
    not float32) and seed, e.g. "gd-cifar10-mlp-lr0.02-mse-n1000-s0". Measurement options (runs,
    steps, eig, checkpoints) are not part of it. Floats are formatted with :g.
    """
    opt, data, arch = config["opt"], config["data"], config["arch"]
    parts = [opt["name"], data["name"], arch["name"], f"lr{_g(opt['lr'])}"]
    if opt["name"] != "gd":
        parts += [f"b2{_g(opt['beta2'])}", f"eps{_g(opt['eps'])}"] + (
            ["bc"] if opt["bias_correction"] else []
        )
    parts += [data["criterion"], f"n{_g(data['n'])}"]
    for section, kind in ((data, "data"), (arch, "arch")):
        try:
            module_defaults = _component(kind, section["name"])[1].DEFAULTS
        except ImportError:
            module_defaults = {}
        for key, value in section.items():
            default = module_defaults.get(key)
            same = _g(value) == _g(default) if isinstance(value, list | tuple) else value == default
            if key not in ("name", "criterion", "n", "root") and not same:
                parts.append(f"{key}{_g(value)}")
    if config.get("warm_start", -1) > 0:
        parts.append(f"ws{config['warm_start']}")
    if config.get("dtype", "float32") != "float32":
        parts.append(config["dtype"].replace("float", "f"))
    if config.get("init", "torch") != "torch":
        parts.append(f"init{config['init']}")
    parts.append(f"s{config.get('seed', 0)}")
    return "-".join(parts).replace("/", "_").replace(" ", "")
