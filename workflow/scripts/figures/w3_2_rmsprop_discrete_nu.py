"""W3.2: at single coordinates the squared gradient (faint) and its EMA nu (dark) fluctuate rapidly."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["grad_sq_selected_idx", "opt.nu_selected_idx"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    coords = plotting.selected_coordinates(table, cell, "discrete", "opt.nu_selected_idx")
    fig, axes = plotting.subplots(max(1, len(coords)), width=3.6)
    for ax, i in zip(axes, coords, strict=False):
        plotting.line(
            ax,
            plotting.curve(table, cell, "discrete", "grad_sq_selected_idx", i),
            color="C0",
            alpha=0.3,
            label="$g_t^2$",
        )
        plotting.line(
            ax,
            plotting.curve(table, cell, "discrete", "opt.nu_selected_idx", i),
            color="C0",
            label="$\\nu_t$",
        )
        ax.set(xlabel="step", title=f"coordinate {i}", yscale="log")
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
