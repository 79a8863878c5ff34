"""W3.9: the central flow's nu(t) (black) tracks RMSProp's fluctuating nu_t (blue) per coordinate."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["opt.nu_selected_idx"], "central": ["opt.nu_selected_idx"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    coords = plotting.selected_coordinates(table, cell, "discrete", "opt.nu_selected_idx")
    fig, axes = plotting.subplots(max(1, len(coords)), width=3.6)
    for ax, i in zip(axes, coords, strict=False):
        for process in ("discrete", "central"):
            s = plotting.curve(table, cell, process, "opt.nu_selected_idx", i)
            plotting.line(ax, s, color=plotting.COLORS[process], label=plotting.LABELS[process])
        ax.set(xlabel="step", title=f"$\\nu$ at coordinate {i}", yscale="log")
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
