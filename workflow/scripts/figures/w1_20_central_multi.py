"""W1.20: each eigenvalue rises to 2/eta and locks under the central flow; distances to GD."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["hessian_eigs"],
        "central": ["hessian_eigs"],
        "group": ["distances/central-discrete", "distances/discrete-stable"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (eigs, dist) = plotting.subplots(2, width=5.0)
    plotting.plot_eigenvalues(eigs, table, cell, "discrete", "hessian_eigs")
    plotting.plot_eigenvalues(
        eigs, table, cell, "central", "hessian_eigs", color="black", label="central flow"
    )
    plotting.threshold(eigs, 2 / plotting.learning_rate(table, cell), "2/η")
    plotting.mark_onset(eigs, plotting.onset(table, cell))
    eigs.set(xlabel="step", ylabel="Hessian eigenvalue", title="top eigenvalues")
    eigs.legend(frameon=False, fontsize="x-small")
    plotting.distance_panel(dist, table, cell)
    dist.set_title("distance to GD")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
