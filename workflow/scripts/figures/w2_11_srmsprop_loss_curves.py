"""W2.11: predicted (dashed black) vs actual Scalar RMSProp loss for every architecture and eta."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.validation_grid(table, params.cells, pdf, png, params.smooth)


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
