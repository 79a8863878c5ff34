"""R4: RMSProp (MLP README recipe) vs its central flow: loss with prediction, effective eigenvalues at 2."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "effective_hessian_eigs"],
        "central": ["train_loss", "predicted_loss", "effective_hessian_eigs"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, eigs) = plotting.subplots(2)
    plotting.plot_loss(loss, table, cell, ["discrete", "central"], prediction=True, smooth=params.smooth)
    loss.set_title("train loss")
    plotting.plot_eigenvalues(eigs, table, cell, "discrete", "effective_hessian_eigs")
    plotting.plot_eigenvalues(
        eigs,
        table,
        cell,
        "central",
        "effective_hessian_eigs",
        color="black",
        label="central flow",
        linestyle="--",
    )
    plotting.threshold(eigs, 2.0, "2")
    eigs.set(xlabel="step", ylabel="effective eigenvalue", title="effective eigenvalues")
    eigs.legend(frameon=False, fontsize="x-small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
