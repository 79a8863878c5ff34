"""W1.23: the same outputs under the central flow (black) evolve smoothly through GD's (colours)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["test_outputs/0", "test_outputs/1", "test_outputs/2", "hessian_eigs"],
        "central": ["test_outputs/0", "test_outputs/1", "test_outputs/2"],
    },
}


def plot(table, pdf, png, params):
    plotting.outputs_grid(table, params.cells["main"], ["discrete", "central"], pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
