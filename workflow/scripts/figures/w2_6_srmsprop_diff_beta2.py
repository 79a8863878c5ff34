"""W2.6: the same initialisation at beta2 = 0.99 (C0) and 0.999 (C1): loss, S_eff, S(w) and nu."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"runs": {"discrete": ["train_loss", "effective_hessian_eigs", "hessian_eigs", "opt.nu"]}}


def plot(table, pdf, png, params):
    fig, (loss, seff, sharp, nu) = plotting.subplots(4, width=3.6)
    for i, cell in enumerate(params.cells["runs"]):
        style = {"color": f"C{i}", "label": plotting.panel_title(cell)}
        plotting.line(loss, plotting.curve(table, cell, "discrete", "train_loss"), **style)
        plotting.line(seff, plotting.top(table, cell, "discrete"), **style)
        plotting.line(sharp, plotting.top(table, cell, "discrete", "hessian_eigs"), **style)
        plotting.line(nu, plotting.curve(table, cell, "discrete", "opt.nu"), **style)
    plotting.threshold(seff, 2.0, None)
    for ax, name in zip(
        (loss, seff, sharp, nu), ("train loss", "$S_{eff}$", "sharpness $S(w)$", "EMA $\\nu$"), strict=False
    ):
        ax.set(xlabel="step", title=name)
    loss.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
