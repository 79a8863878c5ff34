"""W1.27: GD loss (raw and moving average), the central flow's loss and its prediction (dashed)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss"], "central": ["train_loss", "predicted_loss"]}}


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_loss(
        ax, table, params.cells["main"], ["discrete", "central"], prediction=True, smooth=params.smooth
    )
    ax.set_title("predicting the time-averaged loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
