"""W3.7: squared displacements along Sigma's generalized eigenvectors (faint, smoothed) vs their predicted variances."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"central": ["predicted_variances"], "group": ["deltas"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    eigs = plotting.indices(table, cell, "central", "predicted_variances")
    fig, axes = plotting.subplots(max(1, len(eigs)), width=4.0)
    for ax, i in zip(axes, eigs, strict=False):
        sq = plotting.curve(table, cell, "group", "deltas", i) ** 2
        plotting.faint_and_smooth(
            ax, sq, params.smooth, f"C{i}", label=f"$\\delta_{i + 1}^2$ (avg {params.smooth})"
        )
        plotting.line(
            ax,
            plotting.curve(table, cell, "central", "predicted_variances", i),
            color="black",
            label="predicted $x_{%d}$" % (i + 1),
        )
        ax.set(xlabel="step", title=f"eigenvector {i + 1}")
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
