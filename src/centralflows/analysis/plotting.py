"""Shared plotting for the figure scripts: colours of REFERENCE §2.0, curves, thresholds, saving.

Figure scripts read one figure table (the long table of `centralflows.analysis.tables` for the figure's cells,
processes and quantities, with the columns `cell` and `lr` added) and stay a few lines long. Every
read goes through `_rows`, which enforces the script's READS (`centralflows.analysis.contract`) while a
contract is active, and fails on an empty selection; `line` fails on an empty curve.
"""

from __future__ import annotations

import re
from contextlib import contextmanager

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from centralflows.analysis.contract import Contract, ContractError  # noqa: E402
from centralflows.analysis.tables import moving_average  # noqa: E402

# REFERENCE §2.0: discrete = C0, central flow = black, its prediction = dashed black, stable flow = red.
COLORS = {
    "discrete": "C0",
    "midpoint": "C2",
    "central": "black",
    "stable": "red",
    "ablated": "red",
    "stationary": "C1",
}
LABELS = {
    "discrete": "discrete",
    "midpoint": "midpoint",
    "central": "central flow",
    "stable": "stable flow",
    "ablated": "ablated flow",
    "stationary": "stationary flow",
}
PREDICTION = {"color": "black", "linestyle": "--", "label": "central flow prediction"}
THRESHOLD = {"color": "gray", "linestyle": ":", "linewidth": 1.0}


def read_table(path) -> pd.DataFrame:
    """The figure table written by the `figure_table` rule."""
    return pd.read_csv(path)


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
    """One curve of one cell as a Series indexed by step (named `cell: process/quantity[index]`)."""
    rows = _rows(table, cell, process, quantity)
    name = f"{cell}: {process}/{quantity}" + (f"[{index}]" if index != -1 else "")
    s = rows[rows["index"] == index].set_index("step")["value"].sort_index().rename(name)
    if not np.isfinite(s.to_numpy(dtype=float)).any():
        raise ContractError(f"{_where()}the curve {name} is empty (no finite value at index {index})")
    return s


def indices(table: pd.DataFrame, cell: str, process: str, quantity: str) -> list[int]:
    """The indices (e.g. tracked eigenvalues) logged for one quantity with a finite value, in order."""
    rows = _rows(table, cell, process, quantity)
    rows = rows[np.isfinite(rows["value"].to_numpy(dtype=float))]
    return sorted(int(i) for i in rows["index"].unique())


def learning_rate(table: pd.DataFrame, cell: str) -> float:
    """The cell's learning rate eta (for the 2/eta threshold)."""
    if _CONTRACT:
        _CONTRACT.role_of(cell)
    return float(table.loc[table["cell"] == cell, "lr"].iloc[0])


def subplots(ncols: int = 1, width: float = 4.5, height: float = 3.4):
    """A one-row figure with `ncols` panels."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained")
    return fig, list(axes[0])


def plot_loss(ax, table, cell, processes=("discrete",), prediction=False, smooth=None, raw_alpha=1.0):
    """Train loss of each process; optionally GD's moving average (window `smooth`) and the prediction."""
    for process in processes:
        loss = curve(table, cell, process, "train_loss")
        faint = process == "discrete" and smooth
        ax.plot(
            loss.index,
            loss.values,
            color=COLORS[process],
            alpha=0.3 if faint else raw_alpha,
            label=None if faint else LABELS[process],
        )
        if faint:
            ma = moving_average(loss, smooth)
            ax.plot(
                ma.index,
                ma.values,
                color=COLORS[process],
                linewidth=2,
                label=f"{LABELS[process]} (avg {smooth})",
            )
    if prediction:
        predicted = curve(table, cell, "central", "predicted_loss")
        ax.plot(predicted.index, predicted.values, **PREDICTION)
    ax.set(xlabel="step", ylabel="train loss")
    ax.legend(frameon=False)


def plot_eigenvalues(ax, table, cell, process, quantity, color=None, label=None, top=None, linestyle="-"):
    """Tracked eigenvalues of one process: C0, C1, ... per eigenvalue unless `color` is given."""
    for i in indices(table, cell, process, quantity)[:top]:
        eig = curve(table, cell, process, quantity, i)
        ax.plot(
            eig.index,
            eig.values,
            color=color or f"C{i}",
            linestyle=linestyle,
            label=label if (label and i == 0) else (None if label else f"{LABELS[process]} {i + 1}"),
        )


def threshold(ax, value: float, label: str):
    """The stability threshold as a dotted horizontal line (2/eta raw, or 2 effective)."""
    ax.axhline(value, label=label, **THRESHOLD)


def clip(table: pd.DataFrame, max_step) -> pd.DataFrame:
    """Rows up to `max_step` (all when None)."""
    return table if max_step is None else table[table["step"] <= max_step]


def save(fig, pdf, png, dpi: int = 200):
    """Writes the figure as PDF and PNG and closes it."""
    fig.savefig(pdf)
    fig.savefig(png, dpi=dpi)
    plt.close(fig)


def run_figure(plot, smk):
    """Runs a figure script's `plot(table, pdf, png, params)` on the inputs of its Snakemake rule, under
    the contract of its READS: a read outside them, or an empty curve, fails naming the figure."""
    from centralflows.analysis.tables import log_to

    log = log_to(smk.log[0])
    try:
        with contract(Contract(smk.params.figure, smk.params.cells, smk.params.reads)):
            plot(read_table(smk.input.table), smk.output.pdf, smk.output.png, smk.params)
    except ContractError as error:
        log.error("%s", error)
        raise


# --- adaptive optimizers (Scalar RMSProp, RMSProp: REFERENCE §2.2-2.3) ------------------------------


def grid(nrows: int, ncols: int, width: float = 3.8, height: float = 2.9):
    """An `nrows` x `ncols` figure; returns (fig, 2-D array of axes)."""
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, layout="constrained"
    )
    return fig, axes


def top(table: pd.DataFrame, cell: str, process: str, quantity: str = "effective_hessian_eigs") -> pd.Series:
    """The largest tracked eigenvalue per step (tracked arrays are sorted only up to tracking)."""
    rows = _rows(table, cell, process, quantity)
    return rows.groupby("step")["value"].max().sort_index().rename(f"{cell}: {process}/{quantity} (top)")


def eos_onset(table: pd.DataFrame, cell: str, process: str = "discrete") -> int | None:
    """First step where the top effective eigenvalue reaches 2 (None if it never does)."""
    s = top(table, cell, process)
    crossed = s[s >= 2.0]
    return int(crossed.index[0]) if len(crossed) else None


def between(table: pd.DataFrame, start, stop) -> pd.DataFrame:
    """Rows with start <= step <= stop (None = open end)."""
    keep = pd.Series(True, index=table.index)
    if start is not None:
        keep &= table["step"] >= start
    if stop is not None:
        keep &= table["step"] <= stop
    return table[keep]


def zoom_on_onset(table: pd.DataFrame, cell: str, before: int = 20, after: int = 80) -> pd.DataFrame:
    """The window [onset - before, onset + after] around GD-style EOS onset (all steps if none)."""
    onset = eos_onset(table, cell)
    return table if onset is None else between(table, onset - before, onset + after)


def line(ax, s: pd.Series, **style):
    """Plots one step-indexed Series; an empty or all-NaN one is an error (it would draw nothing)."""
    if not np.isfinite(s.to_numpy(dtype=float)).any():
        raise ContractError(
            f"{_where()}the curve {s.name or '(unnamed)'} is empty ({len(s)} points, none finite)"
        )
    ax.plot(s.index, s.values, **style)


def faint_and_smooth(ax, s: pd.Series, smooth: int, color: str, label: str | None = None):
    """A fluctuating curve drawn faint with its moving average (window `smooth`) on top."""
    line(ax, s, color=color, alpha=0.3, linewidth=0.8)
    line(ax, moving_average(s, smooth), color=color, linewidth=1.8, label=label)


def eos_panels(axes, table: pd.DataFrame, cell: str, color: str = "C0", label: str | None = None):
    """The 2x3 Scalar RMSProp EOS grid of W2.2/W2.4/W2.5 on a 2x3 axes array.

    Top: train loss; effective sharpness S_eff = eta S / sqrt(nu) with the line at 2; displacement
    <u_1, P (w_t - w(t))> along the top eigenvector (the `deltas` of the central-flow run: the
    discrete iterate's displacement from the smooth central trajectory). Bottom: gradient norm;
    sharpness S(w); the EMA nu.
    """
    (loss, seff, disp), (gnorm, sharp, nu) = axes
    style = {"color": color, "label": label}
    line(loss, curve(table, cell, "discrete", "train_loss"), **style)
    line(seff, top(table, cell, "discrete"), **style)
    threshold(seff, 2.0, None)
    line(disp, curve(table, cell, "group", "deltas", 0), **style)
    disp.axhline(0.0, **THRESHOLD)
    line(gnorm, curve(table, cell, "discrete", "grad_norm_sq") ** 0.5, **style)
    line(sharp, top(table, cell, "discrete", "hessian_eigs"), **style)
    line(nu, curve(table, cell, "discrete", "opt.nu"), **style)
    titles = (
        ("train loss", "effective sharpness $S_{eff}$", "displacement along $u_1$"),
        ("gradient norm $\\|\\nabla L\\|$", "sharpness $S(w)$", "EMA $\\nu$"),
    )
    for row, names in zip(axes, titles, strict=True):
        for ax, name in zip(row, names, strict=True):
            ax.set(xlabel="step", title=name)


def panel_title(cell: str) -> str:
    """A short panel title from a grid cell name (`grid.arch.lr0.01` -> `arch lr0.01`)."""
    parts = re.split(r"\.(?=[a-z])", cell)  # a dot before a letter separates labels; lr0.01 keeps its dot
    return " ".join(parts[1:]) if len(parts) > 1 else cell


def run_title(table: pd.DataFrame, cell: str) -> str:
    """`<arch> η=<the run's eta>`: cell names keep the paper's eta, smaller scales may run another."""
    rows = table.loc[table["cell"] == cell, "lr"] if "lr" in table.columns else []
    if not len(rows):
        return panel_title(cell)
    return f"{panel_title(cell).split(' ')[0]} η={float(rows.iloc[0]):g}"


def selected_coordinates(
    table: pd.DataFrame, cell: str, process: str, quantity: str, count: int = 4
) -> list[int]:
    """`count` evenly spaced indices of the 25 logged coordinates (REFERENCE §1.7)."""
    logged = indices(table, cell, process, quantity)
    if len(logged) <= count:
        return logged
    step = len(logged) / count
    return [logged[int(i * step)] for i in range(count)]


def validation_grid(
    table: pd.DataFrame, cells: list[str], pdf, png, smooth: int, ncols: int = 4, titles=None
):
    """One panel per cell: discrete loss (faint, and its moving average) vs the central prediction.

    `titles` (optional, one per cell) replaces the default panel titles (`run_title`)."""
    nrows = max(1, -(-len(cells) // ncols))
    fig, axes = grid(nrows, min(ncols, max(1, len(cells))), width=3.3, height=2.6)
    flat = list(axes.flat)
    for ax, cell in zip(flat, cells, strict=False):
        plot_loss(ax, table, cell, smooth=smooth, prediction=True)
        ax.set_title(titles[cells.index(cell)] if titles else run_title(table, cell), fontsize="small")
        ax.set_yscale("log")
        if ax is not flat[0]:
            ax.legend().remove()
        else:
            ax.legend(frameon=False, fontsize="x-small")
    for ax in flat[len(cells) :]:
        ax.axis("off")
    save(fig, pdf, png)


# --- gradient descent (Part I: REFERENCE §2.1) -------------------------------------------------------

ONSET = {"color": "gray", "linestyle": "--", "linewidth": 0.8}


def gd_top(table: pd.DataFrame, cell: str, process: str = "discrete") -> pd.Series:
    """GD's sharpness S(w) per step: the largest tracked Hessian eigenvalue."""
    return top(table, cell, process, "hessian_eigs")


def gd_onset(table: pd.DataFrame, cell: str, process: str = "discrete", persist: int = 2) -> int | None:
    """GD's edge-of-stability onset: the first step from which S(w) >= 2/eta for `persist` logged steps
    in a row (a one-step spike at initialisation is not an onset); None if there is none."""
    s = gd_top(table, cell, process)
    return first_above(s, 2.0 / learning_rate(table, cell), persist)


def first_above(s: pd.Series, limit: float, persist: int = 2) -> int | None:
    """First step from which `s` stays >= `limit` for `persist` logged steps in a row (None if never)."""
    run = (s >= limit).astype(int).rolling(persist).sum().shift(-(persist - 1))
    crossed = run[run >= persist]
    return int(crossed.index[0]) if len(crossed) else None


def mark_onset(ax, onset, label: str | None = "EOS onset"):
    """The EOS onset as a dashed vertical line (nothing when GD never reaches 2/eta)."""
    if onset is not None:
        ax.axvline(onset, label=label, **ONSET)


def sharpness_panel(ax, table, cell, processes=("discrete",), top_k: int = 1, onset="auto"):
    """Top `top_k` Hessian eigenvalues per process (discrete C0.., central black, stable red) and 2/eta."""
    for process in processes:
        for i in indices(table, cell, process, "hessian_eigs")[:top_k]:
            color = f"C{i}" if process == "discrete" else COLORS[process]
            style = {"zorder": 3} if process == "central" else {}  # stable flow: solid red for GD (§2.0)
            name = LABELS[process] if top_k == 1 else f"{LABELS[process]} $\\lambda_{i + 1}$"
            line(ax, curve(table, cell, process, "hessian_eigs", i), color=color, label=name, **style)
    threshold(ax, 2 / learning_rate(table, cell), "2/η")
    mark_onset(ax, gd_onset(table, cell) if onset == "auto" else onset)
    ax.set(xlabel="step", ylabel="Hessian eigenvalue" if top_k > 1 else "sharpness S(w)")
    ax.legend(frameon=False, fontsize="small")


def distance_panel(ax, table, cell, pairs=("central-discrete", "discrete-stable")):
    """Weight-space distances ||w_a - w_b|| (GD-central black, GD-stable flow red)."""
    names = {
        "central-discrete": ("‖GD − central flow‖", "black"),
        "discrete-stable": ("‖GD − gradient flow‖", "red"),
    }
    for pair in pairs:
        name, color = names.get(pair, (pair, "C7"))
        zorder = 3 if color == "black" else 2  # the central flow's curve on top of gradient flow's
        line(ax, curve(table, cell, "group", f"distances/{pair}"), color=color, label=name, zorder=zorder)
    mark_onset(ax, gd_onset(table, cell))
    ax.set(xlabel="step", ylabel="distance")
    ax.legend(frameon=False, fontsize="small")


def variance_panel(ax, table, cell, i: int, smooth: int):
    """Squared displacement along Sigma's i-th eigenvector (faint, moving average) vs predicted x_i."""
    d2 = curve(table, cell, "group", "deltas", i) ** 2
    line(ax, d2, color=f"C{i}", alpha=0.3, linewidth=0.8, label="squared displacement")
    line(ax, moving_average(d2, smooth), color=f"C{i}", linewidth=2, label=f"moving average ({smooth} steps)")
    predicted = curve(table, cell, "central", "predicted_variances", i)
    line(ax, predicted, color="black", label="predicted $x_i$ (central flow)")
    ax.set(xlabel="step", title=f"direction {i + 1}")
    ax.legend(frameon=False, fontsize="x-small")


def outputs_grid(table, cell, processes, pdf, png, examples: int = 3):
    """Network outputs on `examples` test examples (columns), one colour per output unit; central black."""
    fig, axes = subplots(examples, width=3.6, height=3.0)
    for ex, ax in enumerate(axes):
        quantity = f"test_outputs/{ex}"
        for process in processes:
            for unit in indices(table, cell, process, quantity):
                s = curve(table, cell, process, quantity, unit)
                if process == "discrete":
                    alpha = 0.6 if len(processes) > 1 else 1.0
                    line(ax, s, color=f"C{unit}", alpha=alpha, label=f"output {unit}")
                else:
                    label = LABELS[process] if unit == 0 else None
                    line(ax, s, color=COLORS[process], linewidth=1.4, label=label)
        mark_onset(ax, gd_onset(table, cell))
        ax.set(xlabel="step", ylabel="network output", title=f"test example {ex}")
        if ex == 0:
            ax.legend(frameon=False, fontsize="x-small")
    save(fig, pdf, png)


def arch_groups(cells: list[str]) -> dict[str, list[str]]:
    """Grid cells grouped by architecture label (`grid.arch.lr0.01...` -> arch), in order."""
    groups: dict[str, list[str]] = {}
    for cell in cells:
        parts = cell.split(".")
        groups.setdefault(parts[1] if len(parts) > 1 else cell, []).append(cell)
    return groups


def eos_grid(table, cells, pdf, png):
    """EOS across architectures: per architecture (column) train loss (top) and sharpness vs 2/eta
    (bottom), one colour per learning rate; the dotted lines are each eta's 2/eta."""
    groups = arch_groups(cells)
    fig, axes = grid(2, max(1, len(groups)), width=3.4, height=2.7)
    for col, (arch, members) in enumerate(groups.items()):
        loss_ax, sharp_ax = axes[0][col], axes[1][col]
        for k, cell in enumerate(members):
            lr = learning_rate(table, cell) if len(table) else float("nan")
            label = f"η = {lr:g}"
            line(loss_ax, curve(table, cell, "discrete", "train_loss"), color=f"C{k}", label=label)
            line(sharp_ax, gd_top(table, cell), color=f"C{k}", label=label)
            sharp_ax.axhline(2 / lr, color=f"C{k}", linestyle=":", linewidth=1.0)
            onset = gd_onset(table, cell)
            if onset is not None:
                sharp_ax.axvline(onset, color=f"C{k}", linestyle="--", linewidth=0.6)
        loss_ax.set(xlabel="step", ylabel="train loss", title=arch)
        sharp_ax.set(xlabel="step", ylabel="sharpness S(w)")
        loss_ax.legend(frameon=False, fontsize="x-small")
    save(fig, pdf, png)


def acceleration_panels(table, cell, pdf, png, ess_quantity: str, ess_label: str, discrete_loss="discrete"):
    """Acceleration via regularization (W2.15, W3.14): discrete (blue), central (black), ablated (red).

    Panels: train loss (the discrete run's from process `discrete_loss`, e.g. the midpoint; the flows'
    own L(w(t)), not the prediction), sharpness S(w) (top raw Hessian eigenvalue), effective step size.
    """
    fig, (loss, sharp, ess) = subplots(3, width=4.0)
    for process in ("discrete", "central", "ablated"):
        source = discrete_loss if process == "discrete" else process
        width = 1.0 if process == "discrete" else 1.5
        style = {"color": COLORS[process], "label": LABELS[process], "linewidth": width}
        if process == "discrete" and source != "discrete":
            style["label"] = f"discrete (at the {LABELS[source]})"
        line(loss, curve(table, cell, source, "train_loss"), **style)
        line(sharp, top(table, cell, source, "hessian_eigs"), **style)
        line(ess, curve(table, cell, process, ess_quantity), **style)
    loss.set(xlabel="step", title="train loss", yscale="log")
    sharp.set(xlabel="step", title="sharpness $S(w)$")
    ess.set(xlabel="step", title=f"effective step size ({ess_label})", yscale="log")
    for ax in (loss, sharp, ess):
        ax.legend(frameon=False, fontsize="small")
    save(fig, pdf, png)


# quantity -> (colour, label) of the preconditioner speeds along the central flow (W3.12, W3.13)
SPEEDS = {
    "stationary/speed_p_hat": ("C1", "$\\hat P$"),
    "stationary/speed_baseline": ("C2", "baseline $(S/2)\\,I$"),
    "stationary/speed_p_bar": ("C0", "stationary $\\bar P$"),
}


def speed_panels(table, cells, pdf, png, quantities: list[str]):
    """One panel per cell (eta): the speeds ||grad L||^2_{P^-1} of `quantities` along the central flow."""
    fig, axes = subplots(max(1, len(cells)), width=3.4, height=3.0)
    for ax, cell in zip(axes, cells, strict=False):
        for quantity in quantities:
            color, label = SPEEDS[quantity]
            line(
                ax,
                curve(table, cell, "central", quantity),
                color=color,
                label=label,
                marker="o",
                markersize=2.5,
            )
        lr = table.loc[table["cell"] == cell, "lr"]
        ax.set(xlabel="step", yscale="log", title=f"η = {lr.iloc[0]:g}" if len(lr) else panel_title(cell))
    axes[0].set_ylabel("$\\|\\nabla L\\|^2_{P^{-1}}$")
    axes[0].legend(frameon=False, fontsize="small")
    save(fig, pdf, png)
