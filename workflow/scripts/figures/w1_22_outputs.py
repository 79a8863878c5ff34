"""W1.22: GD's network outputs on 3 test examples (columns), 4 output units (colours): erratic at EOS."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["test_outputs/0", "test_outputs/1", "test_outputs/2", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    plotting.outputs_grid(table, params.cells["main"], ["discrete"], pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
