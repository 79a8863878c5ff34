"""R1: GD train loss of the README MLP run."""

from centralflows import plotting


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots()
    plotting.plot_loss(ax, table, params.cells[0], ["discrete"])
    ax.set_title("train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
