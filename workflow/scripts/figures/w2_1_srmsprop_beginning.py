"""W2.1: the start of Scalar RMSProp training: loss, gradient norm and the network's outputs."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {"discrete": ["train_loss", "grad_norm_sq", "train_outputs/0", "effective_hessian_eigs"]},
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, gnorm, outputs) = plotting.subplots(3, width=4.0)
    plotting.line(loss, plotting.curve(table, cell, "discrete", "train_loss"), color="C0")
    plotting.line(gnorm, plotting.curve(table, cell, "discrete", "grad_norm_sq") ** 0.5, color="C0")
    for unit in plotting.indices(table, cell, "discrete", "train_outputs/0"):
        s = plotting.curve(table, cell, "discrete", "train_outputs/0", unit)
        plotting.line(outputs, s, color=f"C{unit}", label=f"output {unit}")
    onset = plotting.onset(table, cell, quantity="effective_hessian_eigs")
    for ax in (loss, gnorm, outputs):
        if onset is not None:
            ax.axvline(onset, **plotting.THRESHOLD)
        ax.set_xlabel("step")
    loss.set_title("train loss")
    gnorm.set_title("gradient norm $\\|\\nabla L\\|$")
    outputs.set_title("outputs on training example 0")
    outputs.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
