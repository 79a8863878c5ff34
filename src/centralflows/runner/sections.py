"""The run configuration's sections (frozen dataclasses) and the schema derived from them."""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass

from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import FLOW_T_RATES
from centralflows.engine.registry import EDGE_TOL, OPTIMIZERS, PROCESSES, SDCP_THRESHOLD
from centralflows.engine.stationary import StationaryConfig
from centralflows.problem.build import INITS
from centralflows.problem.data import DATASETS
from centralflows.problem.losses import CRITERIA
from centralflows.runner.options import Option, option

DTYPES = ("float32", "float64")
# jax_default_matmul_precision of a run: full float32 (the authors switch TF32 off), or TF32 by choice
MATMUL_PRECISIONS = ("float32", "tensorfloat32")

_positive = dict(check=lambda x: 0 < x < math.inf, allowed="a number > 0")  # inf: a run of NaNs
_count = dict(kind=int, check=lambda x: x >= 1, allowed="an integer >= 1")
_frequency = dict(kind=int, check=lambda x: x == -1 or x >= 1, allowed="an integer >= 1, or -1 for never")
_threshold = dict(help="effective eigenvalues >= this enter the SDCP", **_positive)
_nsubsteps = dict(help="Euler substeps per unit time (dt = 1/nsubsteps)", **_count)


# The run configuration, one frozen dataclass per section. The engine's own option types (EigConfig,
# StationaryConfig) are sections too: their defaults are theirs, and what the config adds (help, checks)
# is in ENGINE_OPTIONS below. The CLI options, their help, the defaults and the validation (SCHEMA) are
# derived from these classes. A resolved config is a RunConfig; its dict form (`to_dict`, the same keys)
# is what the HDF5 file and the checkpoints store and `from_dict` reads back.


def _section(cls, **metadata) -> dataclasses.Field:
    """A field holding a sub-section (`inline`: its keys sit in the parent's, e.g. the stationary solver)."""
    return dataclasses.field(default_factory=cls, metadata=metadata)


def _extra(what: str) -> dataclasses.Field:
    """The options of the chosen dataset or architecture module (its DEFAULTS' keys), in their dict form."""
    return dataclasses.field(default_factory=dict, metadata={"extra": what})


@dataclass(frozen=True)
class EigOverrides:
    """A process's overrides of the global `eig` block (e.g. discrete.eig.frequency = -1): the keys given."""

    given: dict = dataclasses.field(default_factory=dict)

    def apply(self, eig: EigConfig) -> EigConfig:
        return dataclasses.replace(eig, **self.given)


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
    options: dict = _extra("dataset")

    def component(self) -> dict:
        """The dataset's options as `centralflows.problem.build.load_dataset` takes them (name first)."""
        return to_dict(self)


@dataclass(frozen=True)
class ArchConfig:
    """`arch` also takes the options of the chosen architecture module (its DEFAULTS)."""

    name: str = option("architecture (positional arch:NAME)", kind=str, required=True)
    options: dict = _extra("architecture")

    def component(self) -> dict:
        """The architecture's options as `centralflows.problem.build.build_model` takes them (name first)."""
        return to_dict(self)


@dataclass(frozen=True)
class ProcessConfig:
    """A process whose only option is its overrides of `eig` (discrete, midpoint)."""

    eig: EigOverrides = _section(EigOverrides)


@dataclass(frozen=True)
class StableConfig:
    eig: EigOverrides = _section(EigOverrides)
    min_nsubsteps: int = option("least Euler substeps per unit time; max(this, ceil(2 S_eff))", 4, **_count)
    max_seff: float = option(
        "stop the stable flow once S_eff exceeds this (alias: max_Seff)", 100.0, **_positive
    )


@dataclass(frozen=True)
class CentralConfig:
    eig: EigOverrides = _section(EigOverrides)
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
        "carried across its substeps by the rotation of the critical eigenvectors (step: an approximation) "
        "and moved along their change since the last step where that trend predicted this step's "
        "(extrapolate: an approximation, measured to hold the authors' accuracy; docs/design.md)",
        "extrapolate",
        kind=str,
        choices=("substep", "step", "extrapolate"),
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

    eig: EigOverrides = _section(EigOverrides)
    nsubsteps: int = option(default=4, **_nsubsteps)
    sdcp_threshold: float = option(default=SDCP_THRESHOLD, **_threshold)
    frequency_in_substeps: bool = option("count eig.frequency in substeps, not steps", False)


@dataclass(frozen=True)
class StationaryFlowConfig:
    """dw/dt = -Pbar(w)^-1 [grad L + 1/2 grad<Sigma,H>] (centralflows.engine.stationary; RMSProp variants
    only); the section also holds the fixed-point solver's options (StationaryConfig)."""

    eig: EigOverrides = _section(EigOverrides)
    nsubsteps: int = option("Euler substeps per unit time; nu-bar is re-solved at each", 4, **_count)
    solver: StationaryConfig = _section(StationaryConfig, inline=True)


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
    """One run cell. After `eig`, one section per process (PROCESS_SECTIONS, in the order of
    engine.registry.PROCESSES), each with an `eig` block of that process's overrides of `eig`."""

    opt: OptConfig = _section(OptConfig)
    data: DataConfig = _section(DataConfig)
    arch: ArchConfig = _section(ArchConfig)
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
    eig: EigConfig = _section(EigConfig)
    discrete: ProcessConfig = _section(ProcessConfig)
    midpoint: ProcessConfig = _section(ProcessConfig)
    stable: StableConfig = _section(StableConfig)
    central: CentralConfig = _section(CentralConfig)
    ablated: AblatedConfig = _section(AblatedConfig)
    stationary: StationaryFlowConfig = _section(StationaryFlowConfig)
    checkpoint: CheckpointConfig = _section(CheckpointConfig)
    checkpoint_file: str | None = option(
        "resume from this checkpoint (continues the same trajectory and file)", kind=str, optional=True
    )
    load: LoadConfig = _section(LoadConfig)
    out: str | None = option(
        "output directory (none: results/runs/<run id>, the workflow's run id)", kind=str, optional=True
    )

    def process_eig(self, process: str) -> EigConfig:
        """The global `eig` options with the process's own overrides (e.g. discrete.eig.frequency)."""
        return getattr(self, process).eig.apply(self.eig)

    def to_dict(self) -> dict:
        """The nested dict of the same keys (as stored in the HDF5 `config` attribute and checkpoints)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, tree: dict) -> RunConfig:
        """The RunConfig of a dict written by `to_dict` (a stored config); missing keys take defaults."""
        return from_dict(cls, tree)


# The process registry's config side: the section of each process, its RunConfig field. Its options
# but `eig` (and the central flow's probe, stationary_every) are the process's keyword arguments
# (`centralflows.runner.experiment.process_options`).
PROCESS_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(RunConfig) if f.name in PROCESSES}
if tuple(PROCESS_SECTIONS) != tuple(PROCESSES):  # a process added to the registry needs its section
    raise ImportError(f"RunConfig's process sections {tuple(PROCESS_SECTIONS)} differ from {PROCESSES}")

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
        ),
        "initial_k": dict(help="eigenpairs tracked at the start (alias: initial_neigs)", **_count),
        "max_k": dict(help="cap on the number of tracked eigenpairs", **_count),
        "tol": dict(help="LOBPCG relative tolerance (authors' convention, REFERENCE §3.5)", **_positive),
        "max_iter": dict(help="LOBPCG iteration cap", **_count),
        "chunk_size": dict(help="Hessian-vector products run at once (none: all k)", optional=True, **_count),
        "hvp_batching": dict(
            help="how a block's Hessian-vector products run in one program: vmap (the vectors as a batch "
            "axis), unroll (one product per vector; faster on CPU for convolutional networks) or auto "
            "(by architecture and device); equal to round-off",
            kind=str,
            choices=("auto", "vmap", "unroll"),
        ),
        "between_solves": dict(
            help="eigenpairs between full solves: one warm-started LOBPCG iteration, the authors' "
            "Rayleigh quotients, or (extrapolate: an approximation, central flow only) the last solve's "
            "span moved along its change since the solve before, then Rayleigh-Ritz in it",
            kind=str,
            choices=("lobpcg", "quotients", "extrapolate"),
        ),  # fmt: skip
        "lock": dict(
            help="LOBPCG iterations apply the operator to the pairs not yet converged only (soft locking, "
            "same tolerance; false: to all tracked pairs, as the authors; none: auto, on for the "
            "processes that read only eigenvalues, off for the central and stationary flows)",
            kind=bool,
            optional=True,
        ),
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
        ),
        "max_iter": dict(help="cap on fixed-point iterations per solve", **_count),
        "tol": dict(help="stop when max|d nu| / max nu < tol (and S_eff <= 2 + tol_eig)", **_positive),
        "tol_eig": dict(help="tolerance on S_eff <= 2 at the fixed point", **_positive),
        "sdcp_threshold": _threshold,
        # `floor` is not a run option: P-hat's invertibility floor, only the probe's concern
    },
}


def _exposed(cls, f: dataclasses.Field) -> dict | None:
    """The option metadata of field `f` of section `cls`; None for an engine option the config omits."""
    return f.metadata.get("option", ENGINE_OPTIONS.get(cls, {}).get(f.name))


def _subsection(f: dataclasses.Field):
    factory = f.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def _section_schema(cls) -> dict:
    """{key: Option or sub-schema} of a config section class (its defaults, its fields' metadata); a
    process's `eig` overrides are {} (checked against EIG)."""
    out = {}
    for f in dataclasses.fields(cls):
        sub = _subsection(f)
        if sub is EigOverrides:
            out[f.name] = {}
        elif f.metadata.get("inline"):
            out.update(_section_schema(sub))
        elif sub is not None:
            out[f.name] = _section_schema(sub)
        elif (meta := _exposed(cls, f)) is not None and "extra" not in f.metadata:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            out[f.name] = Option(default, **meta)
    return out


def to_dict(section) -> dict:
    """The dict form of a section: its options' keys in SCHEMA's order, the module options of data and
    arch after their own, a process's `eig` overrides as given."""
    out = {}
    for f in dataclasses.fields(section):
        value = getattr(section, f.name)
        if isinstance(value, EigOverrides):
            out[f.name] = copy.deepcopy(value.given)
        elif f.metadata.get("inline"):
            out.update(to_dict(value))
        elif "extra" in f.metadata:
            out.update(copy.deepcopy(value))
        elif _subsection(f) is not None:
            out[f.name] = to_dict(value)
        elif _exposed(type(section), f) is not None:
            out[f.name] = copy.deepcopy(value)
    return out


def from_dict(cls, tree: dict):
    """The section `cls` of its dict form (`to_dict`); keys it does not hold take their defaults."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {}
    for f in dataclasses.fields(cls):
        sub = _subsection(f)
        if sub is EigOverrides:
            values[f.name] = EigOverrides(dict(tree.get(f.name, {})))
        elif f.metadata.get("inline"):
            values[f.name] = from_dict(sub, tree)
        elif "extra" in f.metadata:
            values[f.name] = {k: copy.deepcopy(v) for k, v in tree.items() if k not in names}
        elif sub is not None:
            values[f.name] = from_dict(sub, tree.get(f.name, {}))
        elif f.name in tree:
            values[f.name] = copy.deepcopy(tree[f.name])
    return cls(**values)


EIG = _section_schema(EigConfig)
# The schema of a run cell. Leaves are Options; `eig` under a process holds that process's overrides
# of the global `eig` block (e.g. discrete.eig.frequency = -1 to solve at the midpoints only).
SCHEMA = _section_schema(RunConfig)

PROCESS_EIG = {p: "eig" for p in PROCESSES}  # sections whose `eig` holds overrides of EIG


def _defaults(schema: dict) -> dict:
    return {k: _defaults(v) if isinstance(v, dict) else copy.deepcopy(v.default) for k, v in schema.items()}


# The nested default config of docs/design.md; see SCHEMA for what each key means and allows.
DEFAULTS = _defaults(SCHEMA)
