"""W3.12: along the RMSProp central flow, ||grad L||^2 in the P_hat^-1 norm (orange) exceeds the baseline
(S/2) I of GD at its largest stable step (green), one panel per eta."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"runs": {"central": ["stationary/speed_p_hat", "stationary/speed_baseline"]}}


def plot(table, pdf, png, params):
    plotting.speed_panels(
        table, params.cells["runs"], pdf, png, ["stationary/speed_p_hat", "stationary/speed_baseline"]
    )


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
