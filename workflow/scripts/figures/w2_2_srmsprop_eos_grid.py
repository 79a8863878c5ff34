"""W2.2: one Scalar RMSProp EOS cycle on the 2x3 grid (loss, S_eff, displacement; grad norm, S, nu)."""

from centralflows import plotting


def plot(table, pdf, png, params):
    cell = params.cells[0]
    fig, axes = plotting.grid(2, 3)
    plotting.eos_panels(axes, table, cell)
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
