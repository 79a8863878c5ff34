"""W1.27: GD loss (raw and moving average), the central flow's loss and its prediction (dashed)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_loss(
        ax, table, params.cells[0], ["discrete", "central"], prediction=True, smooth=params.smooth
    )
    ax.set_title("predicting the time-averaged loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
