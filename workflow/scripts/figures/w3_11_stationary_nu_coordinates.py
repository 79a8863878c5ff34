"""W3.11: coordinate by coordinate, the central flow's nu(t) (dots) sits on the stationary nu_bar(w(t)) (lines)."""

from matplotlib.lines import Line2D

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"central": ["opt.nu_selected_idx", "stationary/nu_bar_selected_idx"]}}

NU_BAR = "stationary/nu_bar_selected_idx"


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    fig, (ax,) = plotting.subplots(1, width=5.5, height=4.2)
    for k, i in enumerate(plotting.selected_coordinates(table, cell, "central", NU_BAR, count=10)):
        nu_bar = plotting.curve(table, cell, "central", NU_BAR, i)
        nu = plotting.curve(table, cell, "central", "opt.nu_selected_idx", i)
        plotting.line(ax, nu_bar, color=f"C{k}", linewidth=1.2)
        plotting.line(
            ax, nu[nu.index.isin(nu_bar.index)], color=f"C{k}", linestyle="none", marker="o", markersize=3
        )
    handles = [
        Line2D([], [], color="gray", linestyle="none", marker="o", markersize=3, label="ν(t), central flow"),
        Line2D([], [], color="gray", linewidth=1.2, label="ν̄(w(t)), stationary"),
    ]
    ax.set(xlabel="step", ylabel="ν per coordinate (one colour each)", yscale="log")
    ax.legend(
        handles=handles, frameon=False, fontsize="small", ncols=2, loc="lower center", bbox_to_anchor=(0.5, 1)
    )
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
