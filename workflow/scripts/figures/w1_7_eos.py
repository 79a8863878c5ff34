"""W1.7: a full GD run at the edge of stability: train loss, and sharpness hovering at 2/eta."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (left, right) = plotting.subplots(2)
    plotting.plot_loss(left, table, cell, ["discrete"])
    left.set_title("train loss")
    plotting.plot_eigenvalues(right, table, cell, "discrete", "hessian_eigs", top=1, label="sharpness S(w)")
    plotting.threshold(right, 2 / plotting.learning_rate(table, cell), "2/η")
    right.set(xlabel="step", ylabel="sharpness", title="sharpness")
    right.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
