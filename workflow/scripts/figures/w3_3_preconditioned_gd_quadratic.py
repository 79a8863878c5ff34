"""W3.3: preconditioned GD on a 2-D quadratic diverges along the top right eigenvector of P^-1 H, not H's."""

import numpy as np

from centralflows.analysis import plotting
from centralflows.analysis.toys import preconditioned_gd_quadratic

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {}


def plot(table, pdf, png, params):
    toy = preconditioned_gd_quadratic()
    fig, (path, norm) = plotting.subplots(2, width=4.2)
    w = toy["trajectory"]
    path.plot(w[:, 0], w[:, 1], "-o", color="C0", markersize=2.5, linewidth=0.8, label="iterates $w_t$")
    r = 1.1 * np.abs(w).max()
    for vec, style, name in (
        (toy["q1"], {"color": "C3"}, "$q_1$: top eigenvector of $P^{-1}H$"),
        (toy["h1"], {"color": "gray", "linestyle": "--"}, "top eigenvector of $H$"),
    ):
        path.plot([-r * vec[0], r * vec[0]], [-r * vec[1], r * vec[1]], label=name, **style)
    path.set(
        xlabel="$w_1$",
        ylabel="$w_2$",
        title=f"$\\lambda_{{max}}(P^{{-1}}H)$ = {toy['seff']:.2f}",
        aspect="equal",
    )
    path.legend(frameon=False, fontsize="x-small", loc="lower left")
    norm.semilogy(np.linalg.norm(w, axis=1), color="C0")
    norm.set(xlabel="step", title="$\\|w_t\\|$")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
