"""W3.6: under the RMSProp central flow (black) each effective eigenvalue rises to 2 and locks there."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["effective_hessian_eigs"], "central": ["effective_hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_eigenvalues(ax, table, cell, "discrete", "effective_hessian_eigs")
    plotting.plot_eigenvalues(
        ax, table, cell, "central", "effective_hessian_eigs", color="black", label="central flow"
    )
    plotting.threshold(ax, 2.0, "2")
    ax.set(xlabel="step", ylabel="effective eigenvalue", title="RMSProp vs its central flow")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
