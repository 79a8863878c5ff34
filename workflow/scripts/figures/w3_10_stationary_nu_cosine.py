"""W3.10: along the RMSProp central flow, cos(nu(t), nu_bar(w(t))) rises to ~1 (inset: its last stretch)."""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"central": ["stationary/nu_cosine"]}}

ZOOM = 0.998  # the website's inset spans 0.998-1.000


def inset_window(cosine):
    """The inset's points and y-range: from the step after which the cosine stays >= ZOOM, on
    [ZOOM, 1]; if fewer than 2 points do, the later half of the curve on its own range."""
    below = cosine[cosine < ZOOM]
    late = cosine[cosine.index > below.index[-1]] if len(below) else cosine
    if len(late) >= 2:
        return late, (ZOOM, max(1.0, late.max()))
    late = cosine.iloc[len(cosine) // 2 :]
    pad = 0.1 * (late.max() - late.min()) + 1e-6
    return late, (late.min() - pad, late.max() + pad)


def plot(table, pdf, png, params):
    cosine = plotting.curve(table, params.cells["main"], "central", "stationary/nu_cosine")
    fig, (ax,) = plotting.subplots(1, width=5.5, height=3.8)
    style = {"color": plotting.COLORS["central"], "marker": "o", "markersize": 2.5, "linewidth": 1.2}
    plotting.line(ax, cosine, **style)
    low = min(0.8, cosine.min() - 0.01) if len(cosine) else 0.8
    ax.set(xlabel="step", ylabel="cosine between ν(t) and ν̄(w(t))", ylim=(low, 1.005))
    late, ylim = inset_window(cosine) if len(cosine) else ([], None)
    if len(late) >= 2:
        inset = ax.inset_axes([0.42, 0.1, 0.53, 0.45])
        plotting.line(inset, late, **style)
        inset.set(xlim=(late.index[0], late.index[-1]), ylim=ylim)
        inset.ticklabel_format(axis="y", useOffset=False)
        inset.tick_params(labelsize="x-small")
        ax.indicate_inset_zoom(inset, edgecolor="gray")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
