"""W1.24: GD's train loss L(w_t) is non-monotone at EOS."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_loss(ax, table, cell)
    plotting.mark_onset(ax, plotting.onset(table, cell))
    ax.legend(frameon=False)
    ax.set_title("GD train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
