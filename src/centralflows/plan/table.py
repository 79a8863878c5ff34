"""The resolved plan of one scale as a table: `python -m centralflows plan --scale ci`.

One row per cell the scale computes: its run id, the architecture, optimizer, learning rate, steps
and dataset it really runs with at that scale, and the figures that read it. Cell names say what a
cell stands for in the paper (grid cells keep the paper's coordinates); this table is where a cell's
settings at a smaller scale are read. Where a scale swaps the paper's architecture or dataset for a
stand-in, the column says so: `mlp (for vit)`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from centralflows.plan.cells import all_cells
from centralflows.plan.grid import figure_roles, plan
from centralflows.plan.tree import get_path
from centralflows.plan.workflow import WorkflowConfigError, load_config

COLUMNS = ("cell", "run", "arch", "opt", "eta", "steps", "data", "figures")


def _with_paper(value, paper) -> str:
    return str(value) if value == paper else f"{value} (for {paper})"


def plan_rows(config: dict, scale: str) -> list[dict]:
    """The rows of the plan table at one scale, in plan order (a restart's source before it)."""
    result, cells = plan(config, scale), all_cells(config)
    readers: dict[str, list[str]] = {}
    for figure in result.figures:
        for value in figure_roles(config, figure, scale).values():
            for cell in [value] if isinstance(value, str) else value:
                readers.setdefault(cell, []).append(figure)
    rows = []
    for cell, rid in result.cells.items():
        run, paper = result.runs[rid], cells[cell]["run"]
        lr = get_path(run, "opt.lr")
        rows.append(
            {
                "cell": cell,
                "run": rid,
                "arch": _with_paper(get_path(run, "arch.name"), get_path(paper, "arch.name")),
                "opt": get_path(run, "opt.name"),
                "eta": "-" if lr is None else f"{float(lr):g}",
                "steps": run.get("steps", "-"),
                "data": _with_paper(get_path(run, "data.name"), get_path(paper, "data.name")),
                "figures": ", ".join(dict.fromkeys(readers.get(cell, []))) or "-",
            }
        )
    return rows


def aligned(columns, rows: list[dict]) -> list[str]:
    """A header and one line per row, each column padded to its widest value (None shows as '?')."""
    table = [list(columns)] + [["?" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    return ["  ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in table]


def render(rows: list[dict], scale: str) -> str:
    """Aligned columns, and a last line counting the cells and the runs they share."""
    lines = aligned(COLUMNS, rows)
    runs = len({row["run"] for row in rows})
    lines.append(f"scale {scale}: {len(rows)} cells, {runs} runs (cells with one run id share it)")
    return "\n".join(lines)


def scale_parser(command: str, doc: str) -> argparse.ArgumentParser:
    """The options of a command about one scale of the workflow (`plan`, `status`)."""
    parser = argparse.ArgumentParser(prog=f"python -m centralflows {command}", description=doc.split("\n")[0])
    parser.add_argument("--scale", help="scale of config.yaml (default: its `scale:`)")
    parser.add_argument("--config", default="config.yaml", help="workflow config (default: config.yaml)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="a part of the scale, as config `only`")
    return parser


def load_scale(args) -> tuple[dict, str]:
    """(workflow config, scale) named by `scale_parser`'s options; WorkflowConfigError if either is bad."""
    path = Path(args.config)
    if not path.is_file():
        raise WorkflowConfigError(f"no workflow config {path}; run from the repository root or pass --config")
    config = load_config(path)
    if args.only:
        config["only"] = args.only
    scale = args.scale or config.get("scale")
    if scale not in config.get("scales", {}):
        raise WorkflowConfigError(f"unknown scale {scale!r}; defined: {', '.join(config.get('scales', {}))}")
    return config, scale


def main(argv=None) -> int:
    parser = scale_parser("plan", __doc__)
    parser.add_argument("--tsv", action="store_true", help="tab-separated, with a header line")
    args = parser.parse_args(argv)
    try:
        config, scale = load_scale(args)
        rows = plan_rows(config, scale)
    except (WorkflowConfigError, ValueError) as error:  # ValueError: a registry that names no cell
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.tsv:
        print("\t".join(COLUMNS))
        print("\n".join("\t".join(str(row[c]) for c in COLUMNS) for row in rows))
    else:
        print(render(rows, scale))
    return 0


if __name__ == "__main__":
    sys.exit(main())
