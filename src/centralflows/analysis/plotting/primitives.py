"""Reads of a figure table under the figure's contract, the EOS onset of a cell, and drawing primitives.

Every read goes through `_rows`, which enforces the script's READS (`centralflows.analysis.contract`)
while a contract is active, and fails on an empty selection; `line` fails on an empty curve. A figure
table's `attrs["cells"]` is the per-cell metadata of its cells (cell -> {run_id, arch, opt, lr, ...}).
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from centralflows.analysis import onset as eos
from centralflows.analysis.contract import Contract, ContractError
from centralflows.analysis.plotting.style import ONSET, THRESHOLD
from centralflows.analysis.read import moving_average, series, top_eigenvalue

_CONTRACT: Contract | None = None  # the figure being drawn (set by `contract` / `run_figure`)


@contextmanager
def contract(active: Contract):
    """Enforces `active` (a figure's READS) on every read while the block runs."""
    global _CONTRACT
    previous, _CONTRACT = _CONTRACT, active
    try:
        yield active
    finally:
        _CONTRACT = previous


def _where() -> str:
    return f"figure {_CONTRACT.figure}: " if _CONTRACT else ""


def _rows(table: pd.DataFrame, cell: str, process: str, quantity: str) -> pd.DataFrame:
    """The rows of one cell's `process/quantity`: declared (under a contract) and with a finite value."""
    if _CONTRACT:
        _CONTRACT.check(cell, process, quantity)
    rows = table[(table["cell"] == cell) & (table["process"] == process) & (table["quantity"] == quantity)]
    if not np.isfinite(rows["value"].to_numpy(dtype=float)).any():
        raise ContractError(
            f"{_where()}cell {cell!r} has no {process}/{quantity} in its table "
            f"({len(rows)} rows, none finite): a misspelled name, or a quantity the run does not log"
        )
    return rows


def curve(table: pd.DataFrame, cell: str, process: str, quantity: str, index: int = -1) -> pd.Series:
    """One curve of one cell (`centralflows.analysis.read.series`), named `cell: process/quantity[index]`."""
    name = f"{cell}: {process}/{quantity}" + (f"[{index}]" if index != -1 else "")
    s = series(_rows(table, cell, process, quantity), process, quantity, index).rename(name)
    if not np.isfinite(s.to_numpy(dtype=float)).any():
        raise ContractError(f"{_where()}the curve {name} is empty (no finite value at index {index})")
    return s


def top(table: pd.DataFrame, cell: str, process: str, quantity: str = "effective_hessian_eigs") -> pd.Series:
    """The largest tracked eigenvalue per step of one cell (`centralflows.analysis.read.top_eigenvalue`)."""
    rows = _rows(table, cell, process, quantity)
    return top_eigenvalue(rows, process, quantity).rename(f"{cell}: {process}/{quantity} (top)")


def gd_top(table: pd.DataFrame, cell: str, process: str = "discrete") -> pd.Series:
    """GD's sharpness S(w) per step: the largest tracked Hessian eigenvalue."""
    return top(table, cell, process, "hessian_eigs")


def indices(table: pd.DataFrame, cell: str, process: str, quantity: str) -> list[int]:
    """The indices (e.g. tracked eigenvalues) logged for one quantity with a finite value, in order."""
    rows = _rows(table, cell, process, quantity)
    rows = rows[np.isfinite(rows["value"].to_numpy(dtype=float))]
    return sorted(int(i) for i in rows["index"].unique())


def metadata(table: pd.DataFrame, cell: str) -> dict:
    """The cell's row of the figure's per-cell metadata table (run_id, arch, opt, lr, beta2, ...)."""
    if _CONTRACT:
        _CONTRACT.role_of(cell)
    cells = table.attrs.get("cells", {})
    if cell not in cells:
        raise ContractError(f"{_where()}no metadata for cell {cell!r} (the table's cells: {list(cells)})")
    return cells[cell]


def learning_rate(table: pd.DataFrame, cell: str) -> float:
    """The cell's learning rate eta (for the 2/eta threshold), from the per-cell metadata."""
    return float(metadata(table, cell)["lr"])


def onset(table: pd.DataFrame, cell: str, process: str = "discrete", quantity: str = "hessian_eigs"):
    """The cell's EOS onset, `centralflows.analysis.onset.eos_onset` of its top effective eigenvalue (the
    summary's `eos_onset_step`): from `hessian_eigs` that is eta S (GD: the first step with S >= 2/eta),
    from `effective_hessian_eigs` the preconditioned one. Returns the step, or None if it never does."""
    s = top(table, cell, process, quantity)
    return eos.eos_onset(learning_rate(table, cell) * s if quantity == "hessian_eigs" else s)


def between(table: pd.DataFrame, start, stop) -> pd.DataFrame:
    """Rows with start <= step <= stop (None = open end)."""
    keep = pd.Series(True, index=table.index)
    if start is not None:
        keep &= table["step"] >= start
    if stop is not None:
        keep &= table["step"] <= stop
    return table[keep]


def zoom_on_onset(table: pd.DataFrame, cell: str, before: int = 20, after: int = 80) -> pd.DataFrame:
    """The window [onset - before, onset + after] around the EOS onset of the top effective eigenvalue
    (all steps if none)."""
    start = onset(table, cell, quantity="effective_hessian_eigs")
    return table if start is None else between(table, start - before, start + after)


def subplots(ncols: int = 1, width: float = 4.5, height: float = 3.4):
    """A one-row figure with `ncols` panels."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained")
    return fig, list(axes[0])


def grid(nrows: int, ncols: int, width: float = 3.8, height: float = 2.9):
    """An `nrows` x `ncols` figure; returns (fig, 2-D array of axes)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def line(ax, s: pd.Series, **style):
    """Plots one step-indexed Series; an empty or all-NaN one is an error (it would draw nothing)."""
    if not np.isfinite(s.to_numpy(dtype=float)).any():
        raise ContractError(
            f"{_where()}the curve {s.name or '(unnamed)'} is empty ({len(s)} points, none finite)"
        )
    ax.plot(s.index, s.values, **style)


def threshold(ax, value: float, label: str):
    """The stability threshold as a dotted horizontal line (2/eta raw, or 2 effective)."""
    ax.axhline(value, label=label, **THRESHOLD)


def mark_onset(ax, step, label: str | None = "EOS onset"):
    """The EOS onset as a dashed vertical line (nothing when the cell never reaches EOS)."""
    if step is not None:
        ax.axvline(step, label=label, **ONSET)


def faint_and_smooth(ax, s: pd.Series, smooth: int, color: str, label: str | None = None):
    """A fluctuating curve drawn faint with its moving average (window `smooth`) on top."""
    line(ax, s, color=color, alpha=0.3, linewidth=0.8)
    line(ax, moving_average(s, smooth), color=color, linewidth=1.8, label=label)


def panel_title(cell: str) -> str:
    """A short panel title from a grid cell name (`grid.arch.lr0.01` -> `arch lr0.01`)."""
    parts = re.split(r"\.(?=[a-z])", cell)  # a dot before a letter separates labels; lr0.01 keeps its dot
    return " ".join(parts[1:]) if len(parts) > 1 else cell


def run_title(table: pd.DataFrame, cell: str) -> str:
    """`<arch> η=<the run's eta>`: cell names keep the paper's eta, smaller scales may run another."""
    if cell not in table.attrs.get("cells", {}):
        return panel_title(cell)
    return f"{panel_title(cell).split(' ')[0]} η={learning_rate(table, cell):g}"


def selected_coordinates(
    table: pd.DataFrame, cell: str, process: str, quantity: str, count: int = 4
) -> list[int]:
    """`count` evenly spaced indices of the 25 logged coordinates (REFERENCE §1.7)."""
    logged = indices(table, cell, process, quantity)
    if len(logged) <= count:
        return logged
    step = len(logged) / count
    return [logged[int(i * step)] for i in range(count)]


def arch_groups(cells: list[str]) -> dict[str, list[str]]:
    """Grid cells grouped by architecture label (`grid.arch.lr0.01...` -> arch), in order."""
    groups: dict[str, list[str]] = {}
    for cell in cells:
        parts = cell.split(".")
        groups.setdefault(parts[1] if len(parts) > 1 else cell, []).append(cell)
    return groups


def save(fig, pdf, png, dpi: int = 200):
    """Writes the figure as PDF and PNG and closes it."""
    fig.savefig(pdf)
    fig.savefig(png, dpi=dpi)
    plt.close(fig)
