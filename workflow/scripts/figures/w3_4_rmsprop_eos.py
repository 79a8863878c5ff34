"""W3.4: the top eigenvalue of the effective Hessian diag(eta/sqrt(nu)) H of RMSProp equilibrates at 2."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["effective_hessian_eigs"]}}


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots(width=5.5)
    plotting.plot_eigenvalues(ax, table, params.cells["main"], "discrete", "effective_hessian_eigs")
    plotting.threshold(ax, 2.0, "2")
    ax.set(xlabel="step", ylabel="effective eigenvalue", title="RMSProp: effective sharpness")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
