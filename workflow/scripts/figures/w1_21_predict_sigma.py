"""W1.21: each eigenvalue x_i of Sigma(t) predicts the variance of GD's oscillation along its eigenvector."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"central": ["predicted_variances"], "group": ["deltas"], "discrete": ["hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    directions = plotting.indices(table, cell, "group", "deltas")[:3] or [0]
    fig, axes = plotting.subplots(len(directions), width=4.0)
    for ax, i in zip(axes, directions, strict=True):
        plotting.variance_panel(ax, table, cell, i, params.smooth)
        plotting.mark_onset(ax, plotting.onset(table, cell))
    axes[0].set_ylabel("squared displacement")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
