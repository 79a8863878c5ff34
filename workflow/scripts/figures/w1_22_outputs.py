"""W1.22: GD's network outputs on 3 test examples (columns), 4 output units (colours): erratic at EOS."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.outputs_grid(table, params.cells[0], ["discrete"], pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
