"""Shared plotting for the figure scripts: colours of REFERENCE §2.0, curves, thresholds, saving.

Figure scripts read one figure table (the long table of `centralflows.tables` for the figure's cells,
processes and quantities, with the columns `cell` and `lr` added) and stay a few lines long.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: cluster nodes and CI have no display

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from centralflows.tables import moving_average  # noqa: E402

# REFERENCE §2.0: discrete = C0, central flow = black, its prediction = dashed black, stable flow = red.
COLORS = {"discrete": "C0", "midpoint": "C2", "central": "black", "stable": "red"}
LABELS = {"discrete": "discrete", "midpoint": "midpoint", "central": "central flow", "stable": "stable flow"}
PREDICTION = {"color": "black", "linestyle": "--", "label": "central flow prediction"}
THRESHOLD = {"color": "gray", "linestyle": ":", "linewidth": 1.0}


def read_table(path) -> pd.DataFrame:
    """The figure table written by the `figure_table` rule."""
    return pd.read_csv(path)


def curve(table: pd.DataFrame, cell: str, process: str, quantity: str, index: int = -1) -> pd.Series:
    """One curve of one cell as a Series indexed by step."""
    rows = table[
        (table["cell"] == cell)
        & (table["process"] == process)
        & (table["quantity"] == quantity)
        & (table["index"] == index)
    ]
    return rows.set_index("step")["value"].sort_index()


def indices(table: pd.DataFrame, cell: str, process: str, quantity: str) -> list[int]:
    """The indices (e.g. tracked eigenvalues) logged for one quantity, in order."""
    rows = table[(table["cell"] == cell) & (table["process"] == process) & (table["quantity"] == quantity)]
    return sorted(int(i) for i in rows["index"].unique())


def learning_rate(table: pd.DataFrame, cell: str) -> float:
    """The cell's learning rate eta (for the 2/eta threshold)."""
    return float(table.loc[table["cell"] == cell, "lr"].iloc[0])


def subplots(ncols: int = 1, width: float = 4.5, height: float = 3.4):
    """A one-row figure with `ncols` panels."""
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False, layout="constrained")
    return fig, list(axes[0])


def plot_loss(ax, table, cell, processes=("discrete",), prediction=False, smooth=None, raw_alpha=1.0):
    """Train loss of each process; optionally GD's moving average (window `smooth`) and the prediction."""
    for process in processes:
        loss = curve(table, cell, process, "train_loss")
        if loss.empty:
            continue
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
