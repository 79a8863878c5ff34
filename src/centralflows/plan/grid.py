"""Named run cells and grids of the workflow config, expanded per scale into run ids and run configs."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from centralflows.plan.cells import all_cells
from centralflows.plan.tree import deep_merge, get_path, set_path

# Keys of a run config that locate or resume a run; they never take part in its identity.
_NOT_IDENTITY = ("out", "checkpoint_file")


def resolve_names(config: dict, names: list[str], scale_name: str | None = None) -> list[str]:
    """Cell names from a list of cell or grid names (a grid name stands for all of its cells), in order.

    With `scale_name`, a grid's cells left out at that scale (a `null` in its `scale_axes`) are dropped.
    """
    cells = all_cells(config)
    out = []
    for name in names:
        members = (
            [c for c, cell in cells.items() if cell["grid"] == name]
            if name in config.get("grids", {})
            else [name]
        )
        for member in members:
            if member not in cells:
                raise ValueError(f"unknown cell or grid {member!r}; defined: {sorted(cells)}")
            skipped = set(cells[member].get("skip_scales", ()))
            if scale_name and skipped & set(scale_chain(config, scale_name)):
                continue  # left out at this scale or at a scale it is built on
            if member not in out:
                out.append(member)
    return out


def figure_cell_names(entry: dict) -> list[str]:
    """The cell and grid names a figure entry's roles (`cells: {role: name or [names]}`) name, in order."""
    return [
        name for value in entry["cells"].values() for name in ([value] if isinstance(value, str) else value)
    ]


def figure_roles(config: dict, figure: str, scale_name: str) -> dict:
    """A figure's roles at one scale: role -> its cell, or -> the list of cells (grids expanded)."""
    roles = {}
    for role, value in config["figures"][figure]["cells"].items():
        if isinstance(value, str):
            names = resolve_names(config, [value], scale_name)
            if len(names) != 1:
                raise ValueError(
                    f"figure {figure}: role {role!r} names {value!r}, {len(names)} cells; use a list"
                )
            roles[role] = names[0]
        else:
            roles[role] = resolve_names(config, value, scale_name)
    return roles


def _scaled_steps(steps: int, scale: dict) -> int:
    factor, cap = scale.get("steps_factor", 1.0), scale.get("max_steps")
    scaled = max(1, int(round(steps * factor)))
    return min(scaled, cap) if cap else scaled


def scale_chain(config: dict, scale_name: str) -> list[str]:
    """`scale_name` followed by the scales it is built on (`base:`), nearest first."""
    scales, chain = config.get("scales", {}), [scale_name]
    while (base := scales.get(chain[-1], {}).get("base")) is not None:
        if base not in scales:
            raise ValueError(f"scale {chain[-1]!r}: base {base!r} is not a scale: {sorted(scales)}")
        if base in chain:
            raise ValueError(f"scale {scale_name!r}: its bases form a cycle ({' -> '.join([*chain, base])})")
        chain.append(base)
    return chain


def cell_run_config(config: dict, cell: dict, scale_name: str) -> dict:
    """The run-config overrides of one cell at one scale (engine defaults not applied).

    Layers, later wins: `run_defaults`; the cell's `run` (its paper setting); the scale's `run`;
    the scale's `datasets[<paper dataset>]` (which may rename the dataset, e.g. to the synthetic
    stand-in, whose options then start from the paper's data block); the scale's `archs[<arch>]`;
    the scale's step policy; the cell's own `scales[<scale>]`. A scale with `base: <scale>` starts
    from the cell's whole config at its base (the base's cell overrides included) instead of the
    paper setting, and its step policy scales the base's steps.
    A cell that ends on CIFAR-10 gets `data.root` = the workflow's `data_root`.
    """
    scale = config["scales"][scale_name]
    paper = deep_merge(config.get("run_defaults", {}), cell["run"])
    paper_data, arch = get_path(paper, "data.name"), get_path(paper, "arch.name")
    base = scale_chain(config, scale_name)[1:2]
    run = cell_run_config(config, cell, base[0]) if base else paper
    run = deep_merge(run, scale.get("run", {}))
    data_override = scale.get("datasets", {}).get(paper_data, {})
    if get_path(data_override, "data.name", get_path(run, "data.name")) != get_path(run, "data.name"):
        run["data"] = paper["data"]  # another dataset (a base's stand-in, or back): the paper's options
    run = deep_merge(run, data_override)
    run = deep_merge(run, scale.get("archs", {}).get(arch, {}))
    if "steps" in run:
        run["steps"] = _scaled_steps(run["steps"], scale)
    run = deep_merge(run, cell.get("scales", {}).get(scale_name, {}))
    if get_path(run, "data.name") == "cifar10":
        run = set_path(run, "data.root", config["data_root"])
    return run


def not_identity() -> dict[str, tuple[str, ...]]:
    """Section -> its options that are no part of a run's identity (how it is computed, not what)."""
    from centralflows.engine.eigs import NOT_IDENTITY as EIG_NOT_IDENTITY
    from centralflows.problem.data import NOT_IDENTITY as DATA_NOT_IDENTITY

    return {"data": DATA_NOT_IDENTITY, "eig": EIG_NOT_IDENTITY}


def run_id(run: dict) -> str:
    """Deterministic, readable slug of a run config: `<arch>-<opt>-lr<lr:g>-<dataset>-<hash8>`.

    The hash covers the whole config except where it is written (`out`, `checkpoint_file`), where
    its data lives and how it is batched (`problem.data.NOT_IDENTITY`) and how many Hessian-vector
    products run at once (`engine.eigs.NOT_IDENTITY`), so two cells with identical settings share one
    run and any change of setting makes a new run.
    """
    identity = {k: v for k, v in run.items() if k not in _NOT_IDENTITY}
    for section, keys in not_identity().items():
        options = {k: v for k, v in identity.pop(section, {}).items() if k not in keys}
        if options:
            identity[section] = options
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:8]
    parts = [get_path(run, "arch.name", "arch"), get_path(run, "opt.name", "opt")]
    lr = get_path(run, "opt.lr")
    if lr is not None:
        parts.append(f"lr{float(lr):g}")
    parts += [get_path(run, "data.name", "data"), digest]
    return "-".join(str(p) for p in parts)


@dataclass
class Plan:
    """What one scale computes: cells by name, their run ids and run configs, and the figures/claims."""

    scale: str
    cells: dict[str, str] = field(default_factory=dict)  # cell name -> run id
    runs: dict[str, dict] = field(default_factory=dict)  # run id -> run config overrides
    figures: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)
    part: list[str] | None = None  # the names of config `only` (None: the whole scale)

    def cells_of(self, run: str) -> list[str]:
        """The cell names that share one run."""
        return [c for c, r in self.cells.items() if r == run]


def _selected(choice, registry: dict) -> list[str]:
    return list(registry) if choice == "all" else list(choice)


def only_names(config: dict) -> list[str] | None:
    """The names of config `only` as a list (a single name may be given alone); None for `all`."""
    only = config.get("only", "all")
    if only == "all":
        return None
    return [only] if isinstance(only, str) else list(only)


def figures_named(config: dict, figures: list[str], name: str) -> list[str]:
    """The figures among `figures` that `name` names: a registry id, or a catalog id (W1.11) of one or
    more of them; empty when it names none."""
    if name in figures:
        return [name]
    return [f for f in figures if name in config["figures"][f].get("catalog", [])]


def select_part(config: dict, scale_name: str, names: list[str], figures: list[str], only: list[str]):
    """The cells of a scale (`names`, in order) that config `only` keeps: a part of the scale.

    Each name is a figure of the scale (its registry id or a catalog id such as W1.11), an
    architecture (the paper's: at a smaller scale a stand-in keeps its paper name, so `vit` selects
    the ci MLP that plays it), or a cell or grid. A cell of the scale is kept when it matches each
    kind of name given: a named figure reads it, its architecture is named, it is named.
    So `[W1.11, lstm]` keeps W1.11's LSTM cells and `[lstm]` every LSTM cell of the scale.

    Raises:
        ValueError: a name of no kind, or a selection that keeps no cell.
    """
    from centralflows.problem.models import ARCHITECTURES

    cells, grids = all_cells(config), config.get("grids", {})
    named_figures, archs, named_cells = [], [], []
    for name in only:
        if named := figures_named(config, figures, name):
            named_figures += named
        elif name in ARCHITECTURES:
            archs.append(name)
        elif name in cells or name in grids:
            named_cells.append(name)
        else:
            raise ValueError(
                f"only: {name!r} is no figure of scale {scale_name!r} (registry or catalog id), "
                f"architecture ({', '.join(ARCHITECTURES)}), cell or grid"
            )
    tests = []
    if named_figures:
        read = {
            c for f in named_figures for c in resolve_names(config, figure_cell_names(config["figures"][f]))
        }
        tests.append(lambda c: c in read)
    if archs:
        tests.append(lambda c: get_path(cells[c]["run"], "arch.name") in archs)
    if named_cells:
        chosen = set(resolve_names(config, named_cells))
        tests.append(lambda c: c in chosen)
    kept = [c for c in names if all(test(c) for test in tests)]
    if not kept:
        raise ValueError(f"only: {only} keeps none of the {len(names)} cells of scale {scale_name!r}")
    return kept


def plan(config: dict, scale_name: str | None = None) -> Plan:
    """Expands the workflow config at one scale: the one function that maps cells to run ids.

    The cells computed are those the scale's figures and claims name, plus the scale's `extra_cells`;
    with config `only`, a part of them (`select_part`). A part draws the figures of the scale whose
    cells it all computes (not the toys, which read no cell) and evaluates every claim of the scale,
    a claim on a cell it does not compute as not run (analysis.claims).
    """
    scale_name = scale_name or config["scale"]
    check_names(config)
    if scale_name not in config["scales"]:
        raise ValueError(f"unknown scale {scale_name!r}; defined: {sorted(config['scales'])}")
    scale = config["scales"][scale_name]
    cells = all_cells(config)
    result = Plan(scale_name, figures=_selected(scale["figures"], config["figures"]))
    result.claims = _selected(scale["claims"], config.get("claims", {}))
    for registry, chosen in (("figures", result.figures), ("claims", result.claims)):
        for name in chosen:
            if name not in config.get(registry, {}):
                raise ValueError(f"scale {scale_name!r} names unknown {registry[:-1]} {name!r}")
    wanted = []
    for name in result.figures:
        wanted += figure_cell_names(config["figures"][name])
    if scale.get("claim_cells", "all") == "all":  # `figures`: claims only on cells the figures compute
        for name in result.claims:
            wanted += config["claims"][name]["cells"]
    names = resolve_names(config, wanted + list(scale.get("extra_cells", [])), scale_name)
    result.part = only_names(config)
    if result.part:
        names = select_part(config, scale_name, names, result.figures, result.part)
    # a cell started from another cell's checkpoint needs that cell too (added before it)
    for name in list(names):
        source = cells[name].get("start_from", {}).get("cell")
        if source and source not in names:
            names.insert(names.index(name), source)
    if result.part:  # the figures this part can draw whole

        def whole(figure):
            read = resolve_names(config, figure_cell_names(config["figures"][figure]), scale_name)
            return bool(read) and all(c in names for c in read)

        result.figures = [f for f in result.figures if whole(f)]
    for name in names:
        run = cell_run_config(config, cells[name], scale_name)
        if "start_from" in cells[name]:
            run = deep_merge(run, {"load": start_from_load(config, cells, cells[name], scale_name)})
        rid = run_id(run)
        result.cells[name] = rid
        result.runs[rid] = run
    return result


def start_from_load(config: dict, cells: dict, cell: dict, scale_name: str) -> dict:
    """The engine's `load` of a cell with `start_from: {cell, step, scale_steps}`.

    Every process of the cell starts from the source cell's discrete iterate at `step` (at this scale
    `scale_steps[<scale>]` if given), read from the source run's checkpoint
    `results/<scale>/runs/<source run>/checkpoints/checkpoint_<step>.npz`; the step must be a
    multiple of the source's `checkpoint.frequency` (or in its `checkpoint.steps`) within its `steps`.
    `step: edge` takes the step from the source run's own data instead (`edge_checkpoint_path`).
    """
    spec = cell["start_from"]
    source = cell_run_config(config, cells[spec["cell"]], scale_name)
    if spec["step"] == "edge":
        return {"path": edge_checkpoint_path(source, spec["cell"], scale_name), "from_process": "discrete"}
    scale_steps = spec.get("scale_steps", {})
    step = next((scale_steps[s] for s in scale_chain(config, scale_name) if s in scale_steps), spec["step"])
    frequency = get_path(source, "checkpoint.frequency")
    saved = step in (get_path(source, "checkpoint.steps") or []) or (frequency and step % frequency == 0)
    if not saved or step > source.get("steps", 0):
        raise ValueError(
            f"start_from {spec['cell']!r} at step {step}: not a checkpoint of that cell "
            f"(checkpoint.frequency {frequency}, steps {source.get('steps')})"
        )
    path = f"results/{scale_name}/runs/{run_id(source)}/checkpoints/checkpoint_{step}.npz"
    return {"path": path, "from_process": spec.get("from_process", "discrete")}


def edge_checkpoint_path(source: dict, source_cell: str, scale_name: str) -> str:
    """`start_from.step: edge`: the checkpoint `results/<scale>/restarts/<source run>/edge.npz`.

    The workflow writes it once the source run has finished (centralflows.runner.restart.edge_checkpoint):
    its discrete state at the first step where its top effective eigenvalue reaches 2 (S = 2/η), so
    the restart follows the source's own data at every scale. The source must log eigenvalues.
    """
    if get_path(source, "discrete.eig.frequency", get_path(source, "eig.frequency", -1)) < 1:
        raise ValueError(
            f"start_from {source_cell!r} at step edge: that cell logs no eigenvalues (set eig.frequency 1)"
        )
    return f"results/{scale_name}/restarts/{run_id(source)}/edge.npz"


def check_names(config: dict):
    """Raises ValueError naming a key of the workflow config that is not a registered name: the scales'
    `datasets`/`archs` overrides and the resources' `per_kstep`/`process_weight`/`small_runs.archs` (the
    registries are the package's: DATASETS, ARCHITECTURES, PROCESSES; the config schema does not repeat
    them)."""
    from centralflows.engine.registry import PROCESSES
    from centralflows.problem.data import DATASETS
    from centralflows.problem.models import ARCHITECTURES

    runtime = config.get("resources", {}).get("runtime", {})
    places = [(f"scales.{s}.datasets", v.get("datasets", {}), DATASETS) for s, v in config["scales"].items()]
    places += [(f"scales.{s}.archs", v.get("archs", {}), ARCHITECTURES) for s, v in config["scales"].items()]
    places += [("resources.runtime.per_kstep", runtime.get("per_kstep", {}), ARCHITECTURES)]
    places += [("resources.runtime.process_weight", runtime.get("process_weight", {}), PROCESSES)]
    small = config.get("resources", {}).get("small_runs", {}).get("archs", [])
    places += [("resources.small_runs.archs", small, ARCHITECTURES)]
    for where, mapping, names in places:
        for key in mapping:
            if key not in names:
                raise ValueError(f"{where}: unknown name {key!r}; valid names: {', '.join(names)}")
