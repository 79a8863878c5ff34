"""W1.15: GD's top four Hessian eigenvalues enter EOS one after another (dashed: each reaches 2/eta)."""

from centralflows.analysis import plotting
from centralflows.analysis.onset import eos_onset

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["hessian_eigs"]}}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    lr = plotting.learning_rate(table, cell)
    fig, (ax,) = plotting.subplots(width=6.0, height=3.8)
    plotting.sharpness_panel(ax, table, cell, top_k=4, onset=None)
    for i in plotting.indices(table, cell, "discrete", "hessian_eigs")[:4]:
        entered = eos_onset(lr * plotting.curve(table, cell, "discrete", "hessian_eigs", i))
        if entered is not None:
            ax.axvline(entered, color=f"C{i}", linestyle="--", linewidth=0.7)
    ax.set_title("top Hessian eigenvalues (dashed: each reaches 2/η)")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
