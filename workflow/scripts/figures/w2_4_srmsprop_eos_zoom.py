"""W2.4, W2.5: the 2x3 EOS grid zoomed on the first cycle, at beta2 = 0.99 (W2.4) or 0.999 (W2.5: nu
grows less, S drops more)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["train_loss", "effective_hessian_eigs", "hessian_eigs", "grad_norm_sq", "opt.nu"],
        "group": ["deltas"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    table = plotting.zoom_on_onset(table, cell)
    fig, axes = plotting.grid(2, 3)
    plotting.eos_panels(axes, table, cell)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
