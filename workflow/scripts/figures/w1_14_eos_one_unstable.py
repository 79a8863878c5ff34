"""W1.14: one eigenvalue at EOS: consecutive cycles of the sharpness around 2/eta (and the loss).

Window: from 20 steps before the onset to the step the second eigenvalue reaches 2/eta (or the end).
"""

from centralflows.analysis import plotting
from centralflows.analysis.onset import eos_onset

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    onset, lr = plotting.onset(table, cell), plotting.learning_rate(table, cell)
    stop = eos_onset(lr * plotting.curve(table, cell, "discrete", "hessian_eigs", 1))
    view = plotting.between(table, None if onset is None else onset - 20, stop)
    fig, (loss, sharp) = plotting.subplots(2)
    plotting.plot_loss(loss, view, cell)
    plotting.mark_onset(loss, onset)
    loss.set_title("train loss")
    plotting.sharpness_panel(sharp, view, cell, top_k=2, onset=onset)
    sharp.set_title("one eigenvalue at the edge of stability")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
