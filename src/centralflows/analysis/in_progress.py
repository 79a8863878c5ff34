"""A scale's claims and figures on runs still in progress: what `check` and the figure rules will say once
the runs complete, read now from the runs' files (`data.partial.hdf5` while they run), with how far each
run got. The same metrics, thresholds, figure scripts and contract as the workflow's; the values are
provisional (a metric about a run's end reads its last logged step).

    python -m centralflows.analysis.long_run RUNS --scale paper [--figures W1.11 W1.29 --figure-dir DIR]

(run from the repository root: it reads config.yaml, the registries and the figure scripts there).
"""

from __future__ import annotations

import re
import runpy
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from centralflows.analysis.claims import apply_expectations, evaluate_claims
from centralflows.analysis.contract import Contract, check_roles, figure_rows, members, script_reads
from centralflows.analysis.metrics import summarize_run, summary_table
from centralflows.analysis.plotting.primitives import contract
from centralflows.analysis.read import cell_metadata, read_run
from centralflows.plan.grid import Plan, figure_roles, figures_named, resolve_names, scale_chain

CLAIM_COLUMNS = ["claim", "cell", "metric", "value", "threshold", "status", "expected", "steps"]
FIGURE_SCRIPTS = Path("workflow/scripts/figures")


def read_runs(files: list[Path], scale_plan: Plan) -> dict[str, tuple[pd.DataFrame, dict]]:
    """Run id -> (long table, root attributes) of each run file, as it stands.

    Raises:
        ValueError: a file whose run (its folder's name) is not one of the scale's runs.
    """
    out = {}
    for path in files:
        run_id = Path(path).parent.name
        if run_id not in scale_plan.runs:
            raise ValueError(
                f"{run_id} is no run of scale {scale_plan.scale!r} (its folder name is not a run id of "
                f"that scale's plan: `python -m centralflows plan --scale {scale_plan.scale}` lists them)"
            )
        out[run_id] = read_run(path)
    return out


def _cells_here(scale_plan: Plan, runs: dict) -> dict[str, str]:
    return {cell: run_id for cell, run_id in scale_plan.cells.items() if run_id in runs}


def claims_so_far(runs: dict[str, tuple], config: dict, scale_plan: Plan) -> pd.DataFrame:
    """The scale's claims on the cells that `runs` (read_runs) compute, on the steps each has logged.

    `steps` says how far each cell's run got (logged / planned); claims on cells no run here computes
    are left out.
    """
    scale = scale_plan.scale
    cells = _cells_here(scale_plan, runs)
    infos = {run_id: {"attrs": attrs, "job": {}} for run_id, (_, attrs) in runs.items()}
    smooth = config["scales"][scale]["smooth"]
    metrics = {run_id: summarize_run(table, attrs, smooth) for run_id, (table, attrs) in runs.items()}
    summary = summary_table(cells, infos, metrics)
    claims = {c: config["claims"][c] for c in scale_plan.claims}
    cells_by_claim = {c: resolve_names(config, claim["cells"], scale) for c, claim in claims.items()}
    table = evaluate_claims(summary, claims, cells_by_claim)
    table = table[table["status"] != "not-run"].reset_index(drop=True)
    table = apply_expectations(table, claims, scale_chain(config, scale))
    by_cell = summary.set_index("cell")
    table["steps"] = [  # an ordered claim's row names its cells joined by < or >
        ", ".join(
            f"{by_cell.at[c, 'steps_logged']} / {by_cell.at[c, 'steps']:g}" for c in re.split(" [<>] ", row)
        )
        for row in table["cell"]
    ]
    return table[CLAIM_COLUMNS]


def draw_figures_so_far(
    runs: dict[str, tuple], config: dict, scale_plan: Plan, name: str, out_dir: Path
) -> list[tuple[Path, list[str]]]:
    """Draws the scale's figures that `name` names (an id or a catalog id such as W1.11) from `runs` as
    they stand, with the panels of the cells they compute (a role that holds a list keeps the cells
    that ran; a single-cell role needs its cell), by the workflow's script under its contract, into
    `<out_dir>/<figure>.so_far.{pdf,png}`. Returns each PNG with the cells drawn.

    Raises:
        ValueError: a name of no figure of the scale, a role none of whose cells ran here.
        ContractError: a declared quantity a run lacks, an empty curve (as in the workflow).
    """
    figures = figures_named(config, scale_plan.figures, name)
    if not figures:
        raise ValueError(f"{name!r} is no figure of scale {scale_plan.scale!r} (registry or catalog id)")
    return [_draw(runs, config, scale_plan, figure, out_dir) for figure in figures]


def _draw(runs: dict, config: dict, scale_plan: Plan, figure: str, out_dir: Path) -> tuple[Path, list[str]]:
    entry = config["figures"][figure]
    script = FIGURE_SCRIPTS / f"{entry.get('script', figure)}.py"
    reads = script_reads(script)
    cells = _cells_here(scale_plan, runs)
    roles = {}
    for role, value in figure_roles(config, figure, scale_plan.scale).items():
        kept = [c for c in members(value) if c in cells]
        if not kept:
            raise ValueError(f"figure {figure}: none of the cells of its role {role!r} ({value}) ran here")
        roles[role] = kept[0] if isinstance(value, str) else kept
    check_roles(figure, reads, roles)
    drawn = [c for value in roles.values() for c in members(value)]
    table = pd.concat(
        [
            figure_rows(runs[cells[cell]][0], figure, role, cell, reads[role], entry["max_step"])
            for role, value in roles.items()
            for cell in members(value)
        ],
        ignore_index=True,
    )
    infos = {cells[c]: {"attrs": runs[cells[c]][1], "job": {}} for c in drawn}
    meta = cell_metadata({c: cells[c] for c in drawn}, infos)
    table.attrs["cells"] = meta.set_index("cell", drop=False).to_dict("index")
    params = SimpleNamespace(
        figure=figure,
        entry=entry,
        cells=roles,
        cell_names=drawn,
        reads=reads,
        smooth=config["scales"][scale_plan.scale]["smooth"],
        scale=scale_plan.scale,
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    pdf, png = out_dir / f"{figure}.so_far.pdf", out_dir / f"{figure}.so_far.png"
    plot = runpy.run_path(str(script))["plot"]
    with contract(Contract(figure, roles, reads)):
        plot(table, pdf, png, params)
    return png, drawn
