"""R1: GD train loss of the README MLP run."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss"]}}


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots()
    plotting.plot_loss(ax, table, params.cells["main"], ["discrete"])
    ax.set_title("train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
