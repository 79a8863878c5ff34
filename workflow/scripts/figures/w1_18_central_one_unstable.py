"""W1.18: the central flow started from GD where S first reaches 2/eta (second cell, restarted run).

The restart step (the restarted run's first step, derived from the GD run's data) is in the title.

Left: sharpness, GD (blue, from the full run) cycling around 2/eta, the central flow (black) pinned
there. Middle: squared displacement along the top eigenvector (light), its moving average (thick)
and the central flow's sigma^2(t) (black). Right: ||w_t - w(t)||.
"""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "full": {"discrete": ["hessian_eigs"]},
    "restart": {
        "central": ["hessian_eigs", "predicted_variances"],
        "group": ["deltas", "distances/central-discrete"],
    },
}


def plot(table, pdf, png, params):
    full, restart = params.cells["full"], params.cells["restart"]
    steps = table.loc[table["cell"] == restart, "step"]
    start = int(steps.min()) if len(steps) else None
    gd = plotting.between(table[table["cell"] == full], start, None if start is None else int(steps.max()))
    fig, (sharp, var, dist) = plotting.subplots(3, width=4.0)
    plotting.line(sharp, plotting.gd_top(gd, full), color="C0", label="GD")
    plotting.line(sharp, plotting.gd_top(table, restart, "central"), color="black", label="central flow")
    plotting.threshold(sharp, 2 / plotting.learning_rate(table, restart), "2/η")
    sharp.set(xlabel="step", ylabel="sharpness S(w)", title=f"sharpness (restart at step {start})")
    sharp.legend(frameon=False, fontsize="small")
    plotting.variance_panel(var, table, restart, 0, params.smooth)
    var.set_title("squared displacement along $u$ vs $\\sigma^2(t)$")
    plotting.line(
        dist,
        plotting.curve(table, restart, "group", "distances/central-discrete"),
        color="black",
        label="‖GD − central flow‖",
    )
    dist.set(xlabel="step", ylabel="distance", title="$\\|w_t - w(t)\\|$")
    dist.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
