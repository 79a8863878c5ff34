"""W1.10, W1.11: EOS on every vision (CNN, ResNet, ViT) or sequence architecture (LSTM, Transformer,
Mamba, on the sorting task): loss and sharpness vs 2/eta per eta."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"runs": {"discrete": ["train_loss", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    plotting.eos_grid(table, params.cells["runs"], pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
