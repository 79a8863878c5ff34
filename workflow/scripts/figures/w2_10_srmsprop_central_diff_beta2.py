"""W2.10: the central flow follows Scalar RMSProp at both beta2 (one row each): loss, S_eff, nu, distance."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "runs": {
        "discrete": ["train_loss", "effective_hessian_eigs", "opt.nu"],
        "central": ["train_loss", "predicted_loss", "effective_hessian_eigs", "opt.nu"],
        "group": ["distances/central-discrete"],
    },
}


def plot(table, pdf, png, params):
    fig, axes = plotting.grid(len(params.cells["runs"]), 4)
    for row, cell in zip(axes, params.cells["runs"], strict=True):
        loss, seff, nu, dist = row
        plotting.plot_loss(loss, table, cell, ["discrete", "central"], prediction=True, smooth=params.smooth)
        for process in ("discrete", "central"):
            kw = {"color": plotting.COLORS[process], "label": plotting.LABELS[process]}
            plotting.line(seff, plotting.top(table, cell, process), **kw)
            plotting.line(nu, plotting.curve(table, cell, process, "opt.nu"), **kw)
        plotting.threshold(seff, 2.0, None)
        plotting.line(dist, plotting.curve(table, cell, "group", "distances/central-discrete"), color="black")
        name = plotting.panel_title(cell)
        for ax, title in zip(
            row, ("train loss", "$S_{eff}$", "EMA $\\nu$", "$\\|w_t - w(t)\\|$"), strict=False
        ):
            ax.set(xlabel="step", title=f"{name}: {title}")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
