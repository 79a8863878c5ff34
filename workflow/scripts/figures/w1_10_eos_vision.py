"""W1.10: EOS on every vision architecture (CNN, ResNet, ViT): loss and sharpness vs 2/eta per eta."""

from centralflows import plotting


def plot(table, pdf, png, params):
    plotting.eos_grid(table, params.cells, pdf, png)


if "snakemake" in globals():
    from centralflows.tables import log_to

    log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
    plot(
        plotting.read_table(snakemake.input.table),
        snakemake.output.pdf,
        snakemake.output.png,
        snakemake.params,
    )  # noqa: F821
