"""W2.13: along the central flow at EOS, eta/sqrt(nu(t)) = 2/S(w(t)); every eigenvalue at EOS is drawn."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["opt.effective_step_size"],
        "central": ["opt.effective_step_size", "hessian_eigs", "effective_hessian_eigs"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ess, sharp, eff) = plotting.subplots(3, width=4.0)
    plotting.line(
        ess,
        plotting.curve(table, cell, "discrete", "opt.effective_step_size"),
        color="C0",
        alpha=0.3,
        label="discrete $\\eta/\\sqrt{\\nu_t}$",
    )
    plotting.line(
        ess,
        plotting.curve(table, cell, "central", "opt.effective_step_size"),
        color="black",
        label="central $\\eta/\\sqrt{\\nu(t)}$",
    )
    plotting.line(
        ess,
        2.0 / plotting.top(table, cell, "central", "hessian_eigs"),
        color="C3",
        linestyle="--",
        label="$2/S(w(t))$",
    )
    ess.set(yscale="log", title="effective step size")
    plotting.plot_eigenvalues(sharp, table, cell, "central", "hessian_eigs")
    sharp.set(title="central flow: Hessian eigenvalues")
    plotting.plot_eigenvalues(eff, table, cell, "central", "effective_hessian_eigs")
    plotting.threshold(eff, 2.0, "2")
    eff.set(title="central flow: effective eigenvalues")
    for ax in (ess, sharp, eff):
        ax.set_xlabel("step")
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
