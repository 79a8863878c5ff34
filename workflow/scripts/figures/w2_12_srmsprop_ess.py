"""W2.12: the effective step size eta/sqrt(nu) fluctuates for Scalar RMSProp and is smooth for its central flow."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["opt.effective_step_size"], "central": ["opt.effective_step_size"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(width=5.5)
    for process in ("discrete", "central"):
        s = plotting.curve(table, cell, process, "opt.effective_step_size")
        plotting.line(ax, s, color=plotting.COLORS[process], label=plotting.LABELS[process])
    ax.set(xlabel="step", ylabel="$\\eta/\\sqrt{\\nu}$", title="effective step size", yscale="log")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
