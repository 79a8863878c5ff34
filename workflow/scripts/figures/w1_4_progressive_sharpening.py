"""W1.4: the sharpness of GD rises to 2/eta (progressive sharpening)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots()
    plotting.plot_eigenvalues(ax, table, cell, "discrete", "hessian_eigs", top=1, label="sharpness S(w)")
    plotting.threshold(ax, 2 / plotting.learning_rate(table, cell), "2/η")
    ax.set(xlabel="step", ylabel="sharpness", title="progressive sharpening")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
