"""R5: train loss of gradient descent (C0) and the central flow prediction (black), as minimal.py draws it."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss"], "central": ["predicted_loss"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots()
    loss = plotting.curve(table, cell, "discrete", "train_loss")
    predicted = plotting.curve(table, cell, "central", "predicted_loss")
    ax.plot(loss.index, loss.values, color=plotting.COLORS["discrete"], label="gradient descent")
    ax.plot(predicted.index, predicted.values, color="black", label="central flow prediction")
    ax.set(xlabel="step", ylabel="train loss", title="train loss curves")
    ax.legend(frameon=False)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
