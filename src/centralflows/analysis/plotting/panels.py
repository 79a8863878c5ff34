"""Panels and whole figures the figure scripts share: loss, eigenvalues, distances, outputs, EOS grids."""

from __future__ import annotations

import pandas as pd

from centralflows.analysis.plotting.primitives import (
    arch_groups,
    curve,
    gd_top,
    grid,
    indices,
    learning_rate,
    line,
    mark_onset,
    run_title,
    save,
    subplots,
    threshold,
    top,
)
from centralflows.analysis.plotting.primitives import onset as cell_onset
from centralflows.analysis.plotting.style import COLORS, LABELS, PREDICTION, THRESHOLD
from centralflows.analysis.read import moving_average


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


def sharpness_panel(ax, table, cell, processes=("discrete",), top_k: int = 1, onset="auto"):
    """Top `top_k` Hessian eigenvalues per process (discrete C0.., central black, stable red) and 2/eta;
    the EOS onset line at `onset` (`auto`: the cell's onset, None: none)."""
    for process in processes:
        for i in indices(table, cell, process, "hessian_eigs")[:top_k]:
            color = f"C{i}" if process == "discrete" else COLORS[process]
            style = {"zorder": 3} if process == "central" else {}  # stable flow: solid red for GD (§2.0)
            name = LABELS[process] if top_k == 1 else f"{LABELS[process]} $\\lambda_{i + 1}$"
            line(ax, curve(table, cell, process, "hessian_eigs", i), color=color, label=name, **style)
    threshold(ax, 2 / learning_rate(table, cell), "2/η")
    mark_onset(ax, cell_onset(table, cell) if onset == "auto" else onset)
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
    mark_onset(ax, cell_onset(table, cell))
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
        mark_onset(ax, cell_onset(table, cell))
        ax.set(xlabel="step", ylabel="network output", title=f"test example {ex}")
        if ex == 0:
            ax.legend(frameon=False, fontsize="x-small")
    save(fig, pdf, png)


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
            start = cell_onset(table, cell)
            if start is not None:
                sharp_ax.axvline(start, color=f"C{k}", linestyle="--", linewidth=0.6)
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
        ax.set(xlabel="step", yscale="log", title=f"η = {learning_rate(table, cell):g}")
    axes[0].set_ylabel("$\\|\\nabla L\\|^2_{P^{-1}}$")
    axes[0].legend(frameon=False, fontsize="small")
    save(fig, pdf, png)
