"""W2.14: Scalar RMSProp at several eta (colours): a larger eta trains to a lower sharpness at equal loss."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "runs": {
        "discrete": ["train_loss"],
        "central": ["train_loss", "hessian_eigs", "opt.effective_step_size"],
    },
}


def plot(table, pdf, png, params):
    fig, (loss, sharp, ess) = plotting.subplots(3, width=4.0)
    for i, cell in enumerate(params.cells["runs"]):
        color, name = f"C{i}", f"$\\eta$ = {plotting.learning_rate(table, cell):g}"
        plotting.line(loss, plotting.curve(table, cell, "discrete", "train_loss"), color=color, alpha=0.3)
        plotting.line(loss, plotting.curve(table, cell, "central", "train_loss"), color=color, label=name)
        central_loss = plotting.curve(table, cell, "central", "train_loss")
        for k in plotting.indices(table, cell, "central", "hessian_eigs"):
            eig = plotting.curve(table, cell, "central", "hessian_eigs", k)
            both = central_loss.to_frame("loss").join(eig.rename("eig"), how="inner")
            sharp.plot(both["loss"], both["eig"], color=color, label=name if k == 0 else None)
        plotting.line(
            ess, plotting.curve(table, cell, "central", "opt.effective_step_size"), color=color, label=name
        )
    loss.set(xlabel="step", title="train loss (faint: discrete; solid: central flow)", yscale="log")
    sharp.set(xlabel="central-flow train loss", title="Hessian eigenvalues vs loss", xscale="log")
    sharp.invert_xaxis()
    ess.set(xlabel="step", title="central flow $\\eta/\\sqrt{\\nu}$", yscale="log")
    for ax in (loss, sharp, ess):
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
