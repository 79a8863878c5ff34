"""W3.8: per coordinate, the central flow predicts RMSProp's time-averaged squared gradient; most comes from oscillation."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["grad_sq_selected_idx"],
        "central": ["grad_sq_selected_idx", "predicted_grad_sq_selected_idx"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    coords = plotting.selected_coordinates(table, cell, "discrete", "grad_sq_selected_idx")
    fig, axes = plotting.subplots(max(1, len(coords)), width=3.6)
    for ax, i in zip(axes, coords, strict=False):
        sq = plotting.curve(table, cell, "discrete", "grad_sq_selected_idx", i)
        plotting.faint_and_smooth(
            ax, sq, params.smooth, "C0", label=f"discrete $g_t^2$ (avg {params.smooth})"
        )
        plotting.line(
            ax,
            plotting.curve(table, cell, "central", "predicted_grad_sq_selected_idx", i),
            **plotting.PREDICTION,
        )
        plotting.line(
            ax,
            plotting.curve(table, cell, "central", "grad_sq_selected_idx", i),
            color="black",
            linewidth=0.8,
            label="central $\\nabla L(w(t))^2$",
        )
        ax.set(xlabel="step", title=f"coordinate {i}", yscale="log")
        ax.legend(frameon=False, fontsize="x-small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
