"""W1.17: the central flow (black) follows GD (blue) through EOS; gradient flow (red) does not."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "hessian_eigs"],
        "stable": ["train_loss", "hessian_eigs"],
        "central": ["train_loss", "predicted_loss", "hessian_eigs"],
        "group": ["distances/central-discrete", "distances/discrete-stable"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, sharp, dist) = plotting.subplots(3, width=4.0)
    plotting.plot_loss(
        loss, table, cell, ["discrete", "stable", "central"], prediction=True, smooth=params.smooth
    )
    plotting.mark_onset(loss, plotting.onset(table, cell))
    loss.set_title("train loss")
    plotting.sharpness_panel(sharp, table, cell, ["discrete", "stable", "central"])
    sharp.set_title("sharpness")
    plotting.distance_panel(dist, table, cell)
    dist.set_title("distance to GD")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
