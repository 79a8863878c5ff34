"""W3.1: the RMSProp train loss looks smooth."""

from centralflows import plotting


def plot(table, pdf, png, params):
    fig, (ax,) = plotting.subplots(width=5.0)
    plotting.plot_loss(ax, table, params.cells[0])
    ax.set_title("RMSProp train loss")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
