"""W1.23: the same outputs under the central flow (black) evolve smoothly through GD's (colours)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.outputs_grid(table, params.cells[0], ["discrete", "central"], pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
