"""W1.19: gradient flow leaves GD's trajectory once EOS starts; the central flow stays close."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {
    "main": {
        "discrete": ["hessian_eigs"],
        "group": ["distances/central-discrete", "distances/discrete-stable"],
    },
}


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (sharp, dist) = plotting.subplots(2)
    plotting.sharpness_panel(sharp, table, cell)
    sharp.set_title("sharpness (GD)")
    plotting.distance_panel(dist, table, cell)
    dist.set_title("distance to GD")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
