"""R3: GD vs its central flow: loss with the prediction, and effective eigenvalues with the line at 2."""

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
    fig, (left, right) = plotting.subplots(2)
    plotting.plot_loss(left, table, cell, ["discrete", "central"], prediction=True)
    plotting.plot_eigenvalues(right, table, cell, "discrete", "effective_hessian_eigs")
    plotting.plot_eigenvalues(
        right, table, cell, "central", "effective_hessian_eigs", color="black", label="central flow"
    )
    plotting.threshold(right, 2.0, "2")
    right.set(xlabel="step", ylabel="effective eigenvalue", title="effective eigenvalues")
    right.legend(frameon=False)
    left.set_title("train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
