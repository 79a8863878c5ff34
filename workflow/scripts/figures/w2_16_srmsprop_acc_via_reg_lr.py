"""W2.16: Scalar RMSProp from one initialisation at two eta (colours): both hold eta/sqrt(nu) = 2/S, the
larger eta regularizes more, reaches a lower sharpness, takes larger steps and trains faster."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "runs": {
        "discrete": ["train_loss", "hessian_eigs", "opt.effective_step_size"],
        "central": ["train_loss", "hessian_eigs", "opt.effective_step_size"],
    },
}


def plot(table, pdf, png, params):
    fig, (loss, sharp, ess) = plotting.subplots(3, width=4.0)
    for i, cell in enumerate(params.cells["runs"]):
        color, name = f"C{i}", f"$\\eta$ = {plotting.learning_rate(table, cell):g}"
        for process, style in (("discrete", {"alpha": 0.3, "linewidth": 0.8}), ("central", {"label": name})):
            plotting.line(loss, plotting.curve(table, cell, process, "train_loss"), color=color, **style)
            plotting.line(sharp, plotting.top(table, cell, process, "hessian_eigs"), color=color, **style)
            step_size = plotting.curve(table, cell, process, "opt.effective_step_size")
            plotting.line(ess, step_size, color=color, **style)
    loss.set(xlabel="step", title="train loss (faint: discrete; solid: central flow)", yscale="log")
    sharp.set(xlabel="step", title="sharpness $S(w)$")
    ess.set(xlabel="step", title="effective step size $\\eta/\\sqrt{\\nu}$", yscale="log")
    for ax in (loss, sharp, ess):
        ax.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
