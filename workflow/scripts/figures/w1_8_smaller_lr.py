"""W1.8: the same EOS behaviour at eta = 0.01: train loss, sharpness at 2/eta = 200."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (loss, sharp) = plotting.subplots(2)
    plotting.plot_loss(loss, table, cell)
    plotting.mark_onset(loss, plotting.onset(table, cell))
    loss.set_title("train loss")
    plotting.sharpness_panel(sharp, table, cell)
    sharp.set_title(f"sharpness (2/η = {2 / plotting.learning_rate(table, cell):.4g})")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
