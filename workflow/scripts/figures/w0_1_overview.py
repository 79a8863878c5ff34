"""W0.1: the landing figure: GD (blue) and its central flow (black) on the ViT, loss and sharpness."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "hessian_eigs"],
        "central": ["train_loss", "predicted_loss", "hessian_eigs"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, sharp) = plotting.subplots(2)
    plotting.plot_loss(loss, table, cell, ["discrete", "central"], prediction=True, smooth=params.smooth)
    plotting.mark_onset(loss, plotting.onset(table, cell))
    loss.set_title("train loss")
    plotting.sharpness_panel(sharp, table, cell, ["discrete", "central"])
    sharp.set_title("sharpness")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
