"""W1.23: the same outputs under the central flow (black) evolve smoothly through GD's (colours)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.outputs_grid(table, params.cells[0], ["discrete", "central"], pdf, png)


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
