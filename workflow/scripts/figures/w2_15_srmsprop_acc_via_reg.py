"""W2.15: acceleration via regularization for Scalar RMSProp: the ablated flow dw/dt = -(2/S)grad L (red)
goes sharper, takes smaller steps and trains slower than the central flow (black) and the run (blue)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    cell, ess = params.cells[0], "opt.effective_step_size"
    plotting.acceleration_panels(table, cell, pdf, png, ess, "$\\eta/\\sqrt{\\nu}$", discrete_loss="midpoint")


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
