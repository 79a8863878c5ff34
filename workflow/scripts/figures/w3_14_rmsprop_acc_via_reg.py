"""W3.14: acceleration via regularization for RMSProp: the ablated flow (no implicit curvature penalty,
red) goes sharper, takes smaller steps and trains slower than the central flow (black) and RMSProp (blue)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.acceleration_panels(table, params.cells[0], pdf, png, "opt.ess_harmonic_mean", "harmonic mean")


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
