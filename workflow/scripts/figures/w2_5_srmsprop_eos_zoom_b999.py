"""W2.5: the 2x3 EOS grid zoomed on the first cycle at beta2 = 0.999 (nu grows less, S drops more)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    cell = params.cells[0]
    table = plotting.zoom_on_onset(table, cell)
    fig, axes = plotting.grid(2, 3)
    plotting.eos_panels(axes, table, cell)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
