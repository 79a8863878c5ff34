"""W2.8: Scalar RMSProp (blue) follows its stable flow (dashed red) until EOS, then leaves it."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "effective_hessian_eigs"],
        "stable": ["train_loss", "effective_hessian_eigs"],
        "group": ["distances/discrete-stable"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, seff, dist) = plotting.subplots(3, width=4.0)
    for process, style in (("discrete", {}), ("stable", {"linestyle": "--"})):
        kw = {"color": plotting.COLORS[process], "label": plotting.LABELS[process], **style}
        plotting.line(loss, plotting.curve(table, cell, process, "train_loss"), **kw)
        plotting.line(seff, plotting.top(table, cell, process), **kw)
    plotting.threshold(seff, 2.0, None)
    plotting.line(dist, plotting.curve(table, cell, "group", "distances/discrete-stable"), color="red")
    for ax, name in zip(
        (loss, seff, dist), ("train loss", "$S_{eff}$", "$\\|w_t - w_{stable}(t)\\|$"), strict=False
    ):
        ax.set(xlabel="step", title=name)
    loss.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
