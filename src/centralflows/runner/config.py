"""The run configuration: defaults of one run cell (a nested dict), merging and validation."""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import FLOW_T_RATES, hyperparameters
from centralflows.engine.registry import EDGE_TOL, OPTIMIZERS, PROCESSES, SDCP_THRESHOLD, optimizer_class
from centralflows.engine.stationary import StationaryConfig
from centralflows.plan.grid import deep_merge, not_identity, run_id
from centralflows.problem.build import INITS
from centralflows.problem.data import DATASETS
from centralflows.problem.losses import CRITERIA

DTYPES = ("float32", "float64")
# jax_default_matmul_precision of a run: full float32 (the authors switch TF32 off), or TF32 by choice
MATMUL_PRECISIONS = ("float32", "tensorfloat32")
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
_threshold = dict(help="effective eigenvalues >= this enter the SDCP", **_positive)
_nsubsteps = dict(help="Euler substeps per unit time (dt = 1/nsubsteps)", **_count)


def option(help: str, default=None, **kwargs) -> dataclasses.Field:
    """A field of a config section: its default, and (as metadata) the rest of its `Option`."""
    factory = (lambda: list(default)) if isinstance(default, list) else None
    meta = {"option": dict(help=help, **kwargs)}
    if factory:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# The run configuration, one frozen dataclass per section. The engine's own option types (EigConfig,
# StationaryConfig) are sections too: their defaults are theirs, and what the config adds (help, checks)
# is in ENGINE_OPTIONS below. The CLI options, their help, the defaults and the validation (SCHEMA) are
# derived from these classes; a resolved config is the nested dict of the same keys.
@dataclass(frozen=True)
class OptConfig:
    name: str = option("optimizer (positional opt:NAME)", kind=str, required=True, choices=tuple(OPTIMIZERS))
    lr: float = option("learning rate eta", kind=float, required=True, **_positive)
    beta2: float = option(
        "EMA factor of the squared gradient (RMSProp variants)", 0.99,
        check=lambda x: 0 < x < 1, allowed="a number in (0, 1)",
    )  # fmt: skip
    eps: float = option(
        "added outside the square root: P = (sqrt(nu) + eps)/lr (RMSProp variants)", 0.0,
        check=lambda x: 0 <= x < math.inf, allowed="a number >= 0",
    )  # fmt: skip
    bias_correction: bool = option("divide nu by 1 - beta2^t (RMSProp variants)", False)
    flow_t_rate: str = option(
        "rate of the flows' step counter t: step (1: flow time = steps) or authors (1/beta2, their code)",
        "step", choices=FLOW_T_RATES,
    )  # fmt: skip


@dataclass(frozen=True)
class DataConfig:
    """`data` also takes the options of the chosen dataset module (its DEFAULTS)."""

    name: str = option("dataset (positional data:NAME): " + " | ".join(DATASETS), "cifar10")
    criterion: str = option("loss: mse (with the 1/2) or ce", "mse", choices=CRITERIA)
    n: int = option("number of training examples", 1000, **_count)
    root: str | None = option(
        "directory of the dataset cache (none: the dataset's default)", kind=str, optional=True
    )
    ghost_batch_size: int = option(
        "evaluate the full-batch loss and its derivatives this many examples at a time, for memory "
        "(the same loss; -1: all at once)", -1,
        check=lambda x: x == -1 or x >= 1, allowed="-1 or an integer >= 1",
    )  # fmt: skip


@dataclass(frozen=True)
class ArchConfig:
    """`arch` also takes the options of the chosen architecture module (its DEFAULTS)."""

    name: str = option("architecture (positional arch:NAME)", kind=str, required=True)


@dataclass(frozen=True)
class StableConfig:
    min_nsubsteps: int = option("least Euler substeps per unit time; max(this, ceil(2 S_eff))", 4, **_count)
    max_seff: float = option(
        "stop the stable flow once S_eff exceeds this (alias: max_Seff)", 100.0, **_positive
    )


@dataclass(frozen=True)
class CentralConfig:
    nsubsteps: int = option(default=4, **_nsubsteps)
    sdcp_threshold: float = option(default=SDCP_THRESHOLD, **_threshold)
    frequency_in_substeps: bool = option("count eig.frequency in substeps, not steps (Mamba-CE)", False)
    edge_tol: float = option(
        "split a substep while the top effective eigenvalue exceeds 2 by more than half of this",
        EDGE_TOL,
        **_positive,
    )
    max_refine: int = option(
        "at most this many halvings of a substep by the edge_tol control (0: fixed substeps)",
        3,
        kind=int,
        check=lambda x: x >= 0,
        allowed="an integer >= 0",
    )
    lookahead: bool = option(
        "also count as critical an eigenvalue whose rise over the last Euler step would carry it past "
        "sdcp_threshold within the next (false: the threshold alone, as the authors)",
        True,
    )
    secant_precond: bool = option(
        "P's change over a substep as a secant, not its tangent (false: the authors' linearisation)", True
    )
    third_every: str = option(
        "third-derivative vectors at every velocity evaluation (substep, the authors') or once per step, "
        "carried across its substeps by the rotation of the critical eigenvectors (step: an approximation)",
        "substep",
        kind=str,
        choices=("substep", "step"),
    )
    max_seff: float = option(
        "stop the central flow once S_eff exceeds this: it has left the edge (2)", 10.0, **_positive
    )
    stationary_every: int = option(
        "every N steps log nu-bar, P-hat and their speeds along the flow (0: off; RMSProp variants)", 0,
        check=lambda x: x >= 0, allowed="an integer >= 0",
    )  # fmt: skip


@dataclass(frozen=True)
class AblatedConfig:
    """The central flow without its curvature penalty (centralflows.engine.ablated; RMSProp variants only)."""

    nsubsteps: int = option(default=4, **_nsubsteps)
    sdcp_threshold: float = option(default=SDCP_THRESHOLD, **_threshold)
    frequency_in_substeps: bool = option("count eig.frequency in substeps, not steps", False)


@dataclass(frozen=True)
class StationaryFlowConfig:
    """dw/dt = -Pbar(w)^-1 [grad L + 1/2 grad<Sigma,H>] (centralflows.engine.stationary; RMSProp variants
    only); the section also holds the fixed-point solver's options (StationaryConfig)."""

    nsubsteps: int = option("Euler substeps per unit time; nu-bar is re-solved at each", 4, **_count)


@dataclass(frozen=True)
class CheckpointConfig:
    frequency: int = option("save a checkpoint every N steps (-1: never)", -1, **_frequency)
    steps: list = option(
        "also save checkpoints at these steps", [], item=int,
        check=lambda xs: all(x >= 0 for x in xs), allowed="integers >= 0",
    )  # fmt: skip


@dataclass(frozen=True)
class LoadConfig:
    path: str | None = option(
        "start all processes from a point stored in this checkpoint", kind=str, optional=True
    )
    from_process: str | None = option(
        "which process of load.path to start from", kind=str, optional=True, choices=tuple(PROCESSES)
    )


@dataclass(frozen=True)
class RunConfig:
    """One run cell. After `eig`, SCHEMA inserts one section per process (PROCESS_SECTIONS), each with an
    `eig` block of that process's overrides of `eig`."""

    opt: OptConfig = dataclasses.field(default_factory=OptConfig)
    data: DataConfig = dataclasses.field(default_factory=DataConfig)
    arch: ArchConfig = dataclasses.field(default_factory=ArchConfig)
    runs: list = option("processes to run in lockstep", ["discrete"], item=str, choices=tuple(PROCESSES))
    steps: int = option(
        "number of steps (units of time)", kind=int, required=True, check=lambda x: x >= 0,
        allowed="an integer >= 0",
    )  # fmt: skip
    seed: int = option("seed of the initialisation and of the eigensolver's random vectors", 0)
    init: str = option(
        "initial weights: torch (the authors' PyTorch init after torch.manual_seed(seed), exactly) or jax "
        "(the same distributions drawn from JAX's generator)", "torch", choices=INITS,
    )  # fmt: skip
    warm_start: int = option(
        "discrete steps taken before the processes start (-1 or 0: off)", -1,
        check=lambda x: x >= -1, allowed="an integer >= -1",
    )  # fmt: skip
    dtype: str = option("floating-point precision of the run", "float32", choices=DTYPES)
    matmul_precision: str = option(
        "float32 matrix products and convolutions on a GPU: float32 (full, as the authors) or "
        "tensorfloat32 (faster on Ampere and later GPUs, ~1e-3 relative error; changes the trajectory); "
        "CPUs compute float32 either way", "float32", choices=MATMUL_PRECISIONS,
    )  # fmt: skip
    eig: EigConfig = dataclasses.field(default_factory=EigConfig)
    checkpoint: CheckpointConfig = dataclasses.field(default_factory=CheckpointConfig)
    checkpoint_file: str | None = option(
        "resume from this checkpoint (continues the same trajectory and file)", kind=str, optional=True
    )
    load: LoadConfig = dataclasses.field(default_factory=LoadConfig)
    out: str | None = option(
        "output directory (none: results/runs/<run id>, the workflow's run id)", kind=str, optional=True
    )


# The process registry's config side: the section of each process (None: its `eig` overrides only),
# inserted into SCHEMA after `eig`. Its options are the process's keyword arguments
# (`centralflows.runner.experiment.process_options`).
PROCESS_SECTIONS = {
    "discrete": None,
    "midpoint": None,
    "stable": StableConfig,
    "central": CentralConfig,
    "ablated": AblatedConfig,
    "stationary": StationaryFlowConfig,
}

# What the config adds to the engine's own option types: help and checks (defaults are the engine's).
ENGINE_OPTIONS = {
    EigConfig: {
        "frequency": dict(
            help="run the full eigensolver every N calls (-1: never; 1 for the figures)", **_frequency
        ),
        "track_threshold": dict(
            help="track one more eigenpair while the smallest effective eigenvalue is >= this "
            "(x 1/lr for GD)",
            optional=True,
            **_positive,
        ),  # fmt: skip
        "initial_k": dict(help="eigenpairs tracked at the start (alias: initial_neigs)", **_count),
        "max_k": dict(help="cap on the number of tracked eigenpairs", **_count),
        "tol": dict(help="LOBPCG relative tolerance (authors' convention, REFERENCE §3.5)", **_positive),
        "max_iter": dict(help="LOBPCG iteration cap", **_count),
        "chunk_size": dict(help="Hessian-vector products run at once (none: all k)", optional=True, **_count),
        "between_solves": dict(
            help="eigenpairs between full solves: one warm-started LOBPCG iteration, or the authors' "
            "Rayleigh quotients",
            kind=str,
            choices=("lobpcg", "quotients"),
        ),  # fmt: skip
        "warm_start": dict(
            help="vectors that start a full solve: the last solve's (the authors'), the one before "
            "(two_back: same side of the period-2 oscillation at the edge), or auto (two_back for the "
            "discrete iterates only)",
            kind=str,
            choices=("auto", "last", "two_back"),
        ),  # fmt: skip
    },
    StationaryConfig: {
        "step": dict(
            help="pseudo-time step of the nu fixed-point iteration, in (0, 1]",
            check=lambda x: 0 < x <= 1,
            allowed="a number in (0, 1]",
        ),  # fmt: skip
        "max_iter": dict(help="cap on fixed-point iterations per solve", **_count),
        "tol": dict(help="stop when max|d nu| / max nu < tol (and S_eff <= 2 + tol_eig)", **_positive),
        "tol_eig": dict(help="tolerance on S_eff <= 2 at the fixed point", **_positive),
        "sdcp_threshold": _threshold,
        # `floor` is not a run option: P-hat's invertibility floor, only the probe's concern
    },
}


def _section_schema(cls) -> dict:
    """{key: Option or sub-schema} of a config section class (its defaults, its fields' metadata)."""
    out = {}
    extra = ENGINE_OPTIONS.get(cls, {})
    for f in dataclasses.fields(cls):
        if isinstance(f.default_factory, type) and dataclasses.is_dataclass(f.default_factory):
            out[f.name] = _section_schema(f.default_factory)  # a section
            continue
        meta = f.metadata.get("option", extra.get(f.name))
        if meta is None:
            continue  # an engine option the run configuration does not expose
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        out[f.name] = Option(default, **meta)
    return out


def _run_schema() -> dict:
    schema = _section_schema(RunConfig)
    out = {}
    for key, node in schema.items():
        out[key] = node
        if key == "eig":  # the process sections follow the global eig block
            for name, section in PROCESS_SECTIONS.items():
                out[name] = {"eig": {}, **(_section_schema(section) if section else {})}
    out["stationary"].update(_section_schema(StationaryConfig))
    return out


EIG = _section_schema(EigConfig)
# The schema of a run cell. Leaves are Options; `eig` under a process holds that process's overrides
# of the global `eig` block (e.g. discrete.eig.frequency = -1 to solve at the midpoints only).
SCHEMA = _run_schema()

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


def spellings(name: str) -> tuple:
    """`name` and its spellings with `-` and `_` swapped: choices and component names accept each."""
    return tuple(dict.fromkeys((name, name.replace("-", "_"), name.replace("_", "-"))))


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
        node = schema_node(schema, path.split("."))
        if node is None:
            raise _unknown(path, schema)
        if isinstance(node, dict):  # a section, or a process's eig overrides ({} in the schema)
            if not isinstance(value, dict):
                raise ConfigError(f"'{path}' must be a mapping of options, got {value!r}", key=path)
            _check_keys(value, schema, path + ".")


def describe(opt: Option) -> str:
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
    for spelling in spellings(value):
        if spelling in choices:
            return spelling
    raise ValueError


def convert_value(path: str, value, opt: Option):
    """The value of `path` converted to the option's kind and checked; ConfigError otherwise."""
    if value is NO_VALUE:
        if opt.type is bool:
            return True
        if opt.type is list:
            value = []
        else:
            raise ConfigError(f"'{path}' needs a value: {describe(opt)}", key=path)
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
            f"invalid value for '{path}': {value!r} (allowed: {describe(opt)})", key=path
        ) from None
    return out


def _merge(schema: dict, overrides: dict, prefix: str = "") -> dict:
    out = {}
    for key, node in schema.items():
        path = f"{prefix}{key}"
        given = overrides.get(key, {} if isinstance(node, dict) else None)
        if isinstance(node, dict) and key == "eig" and prefix[:-1] in _PROCESS_EIG:
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
            node[parts[-1]] = deep_merge(node.get(parts[-1], {}), nest(value))
        else:
            node[parts[-1]] = value
    return out


def resolve_config(overrides: dict | None = None) -> dict:
    """Merges `overrides` over DEFAULTS and validates the result.

    Dataset and architecture options default to `centralflows.problem.data.get_dataset(name).DEFAULTS` and
    `centralflows.problem.models.get_architecture(name).DEFAULTS`. Keys may be nested or dotted
    ({"opt": {"lr": 0.1}} or {"opt.lr": 0.1}); strings are converted to the kind of the option, so
    command-line values can be passed as they are. When `out` is not given it is
    `default_out`: `results/runs/<run id>`, the id the workflow gives the same overrides.

    Returns:
        A new, complete config (nested dict); dataset, optimizer and process names canonical.

    Raises:
        ConfigError: an unknown key (with close matches), a missing required key, or an invalid value
            (saying what is allowed).
    """
    overrides = nest(copy.deepcopy(overrides or {}))
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
    data_name = convert_value(
        "data.name", overrides.get("data", {}).get("name", "cifar10"), SCHEMA["data"]["name"]
    )
    arch_name = overrides.get("arch", {}).get("name")
    if arch_name is None:
        raise ConfigError(f"'arch.name' is required: {describe(SCHEMA['arch']['name'])}", key="arch.name")
    schema, data_name, arch_name = schema_for(
        data_name, convert_value("arch.name", arch_name, SCHEMA["arch"]["name"])
    )
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
        config["out"] = default_out(given, config)
    return config


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
    return os.path.join("results", "runs", run_id(_given_values(given, config)))


def effective_eig_config(config: dict, process: str) -> dict:
    """The global `eig` block with the process's own overrides (config[process]["eig"]) on top."""
    return {**config["eig"], **config.get(process, {}).get("eig", {})}


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
                properties[key] = section(EIG)
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
