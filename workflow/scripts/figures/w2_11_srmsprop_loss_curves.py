"""W2.11 and its RMSProp counterpart: predicted (dashed black) vs actual Scalar RMSProp or RMSProp loss
for every architecture and eta."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"runs": {"discrete": ["train_loss"], "central": ["predicted_loss"]}}


def plot(table, pdf, png, params):
    plotting.validation_grid(table, params.cells["runs"], pdf, png, params.smooth)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
