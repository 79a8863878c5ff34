"""W1.11: EOS on every sequence architecture (LSTM, Transformer, Mamba) on the sorting task."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.eos_grid(table, params.cells, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
