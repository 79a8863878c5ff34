"""W3.13: W3.12 plus the stationary preconditioner P_bar (blue): slower than P_hat, at times slower than
the baseline."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "runs": {"central": ["stationary/speed_p_hat", "stationary/speed_baseline", "stationary/speed_p_bar"]},
}


def plot(table, pdf, png, params):
    quantities = ["stationary/speed_p_hat", "stationary/speed_baseline", "stationary/speed_p_bar"]
    plotting.speed_panels(table, params.cells["runs"], pdf, png, quantities)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
