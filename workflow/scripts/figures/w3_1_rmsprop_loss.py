"""W3.1: the RMSProp train loss looks smooth."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss"]}}


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots(width=5.0)
    plotting.plot_loss(ax, table, params.cells["main"])
    ax.set_title("RMSProp train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
