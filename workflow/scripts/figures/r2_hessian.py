"""R2: top Hessian eigenvalues of GD (each from the step it starts being tracked) and 2/eta."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots()
    plotting.plot_eigenvalues(ax, table, cell, "discrete", "hessian_eigs")
    plotting.threshold(ax, 2 / plotting.learning_rate(table, cell), "2/η")
    ax.set(xlabel="step", ylabel="Hessian eigenvalue", title="top Hessian eigenvalues")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
