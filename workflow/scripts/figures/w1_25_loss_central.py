"""W1.25: the central flow's loss L(w(t)) decreases monotonically and stays below GD's loss."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"], "central": ["train_loss"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_loss(ax, table, cell, ["discrete", "central"])
    plotting.mark_onset(ax, plotting.onset(table, cell))
    ax.legend(frameon=False)
    ax.set_title("train loss: GD vs central flow")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
