"""W3.14: acceleration via regularization for RMSProp: the ablated flow (no implicit curvature penalty,
red) goes sharper, takes smaller steps and trains slower than the central flow (black) and RMSProp (blue)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.acceleration_panels(table, params.cells[0], pdf, png, "opt.ess_harmonic_mean", "harmonic mean")


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
