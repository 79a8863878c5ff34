"""W3.14: acceleration via regularization for RMSProp: the ablated flow (no implicit curvature penalty,
red) goes sharper, takes smaller steps and trains slower than the central flow (black) and RMSProp (blue)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "hessian_eigs", "opt.ess_harmonic_mean"],
        "central": ["train_loss", "hessian_eigs", "opt.ess_harmonic_mean"],
        "ablated": ["train_loss", "hessian_eigs", "opt.ess_harmonic_mean"],
    },
}


def plot(table, pdf, png, params):
    plotting.acceleration_panels(
        table, params.cells["main"], pdf, png, "opt.ess_harmonic_mean", "harmonic mean"
    )


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
