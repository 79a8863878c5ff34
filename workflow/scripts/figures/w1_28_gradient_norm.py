"""W1.28: the central flow predicts GD's time-averaged squared gradient norm; most of it is oscillation."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["grad_norm_sq", "hessian_eigs"],
        "central": ["grad_norm_sq", "predicted_grad_norm_sq"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(width=5.5)
    gd = plotting.curve(table, cell, "discrete", "grad_norm_sq")
    plotting.faint_and_smooth(ax, gd, params.smooth, "C0", f"GD (moving average, {params.smooth} steps)")
    plotting.line(
        ax,
        plotting.curve(table, cell, "central", "grad_norm_sq"),
        color="black",
        label="central flow $\\|\\nabla L(w(t))\\|^2$",
    )
    plotting.line(ax, plotting.curve(table, cell, "central", "predicted_grad_norm_sq"), **plotting.PREDICTION)
    plotting.mark_onset(ax, plotting.onset(table, cell))
    ax.set(xlabel="step", ylabel="squared gradient norm", yscale="log", title="gradient norm")
    ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
