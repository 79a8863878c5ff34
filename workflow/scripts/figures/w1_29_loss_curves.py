"""W1.29: real (faint, moving average solid) vs predicted (dashed black) GD loss for six architectures."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"runs": {"discrete": ["train_loss"], "central": ["predicted_loss"]}}


def title(table, cell):
    """`arch criterion eta=<the run's eta>` (cell names keep the paper eta; ci runs larger ones)."""
    arch, _, eta = plotting.run_title(table, cell).partition(" ")
    return f"{arch} {'CE' if cell.split('.')[0].endswith('_ce') else 'MSE'} {eta}".rstrip()


def plot(table, pdf, png, params):
    titles = [title(table, cell) for cell in params.cells["runs"]]
    plotting.validation_grid(table, params.cells["runs"], pdf, png, params.smooth, ncols=6, titles=titles)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
