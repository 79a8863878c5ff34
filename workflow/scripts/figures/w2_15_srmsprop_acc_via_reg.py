"""W2.15: acceleration via regularization for Scalar RMSProp: the ablated flow dw/dt = -(2/S)grad L (red)
goes sharper, takes smaller steps and trains slower than the central flow (black) and the run (blue)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["opt.effective_step_size"],
        "midpoint": ["train_loss", "hessian_eigs"],
        "central": ["train_loss", "hessian_eigs", "opt.effective_step_size"],
        "ablated": ["train_loss", "hessian_eigs", "opt.effective_step_size"],
    },
}


def plot(table, pdf, png, params):
    cell, ess = params.cells["main"], "opt.effective_step_size"
    plotting.acceleration_panels(table, cell, pdf, png, ess, "$\\eta/\\sqrt{\\nu}$", discrete_loss="midpoint")


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
