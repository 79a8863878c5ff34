"""W1.5 / W1.6 / W1.13: one EOS cycle of GD: blow-up past 2/eta, then self-stabilization.

Panels: train loss, sharpness S(w) with 2/eta, and the displacement along the top eigenvector
(`deltas[0]`: u_1^T (w_t - w(t)), measured from the central flow). The window is 20 steps before
the onset to 80 after; red shading = blow-up (S > 2/eta, W1.5), green = stabilization until S next
exceeds 2/eta (W1.6); together one cycle (W1.13).
"""

from centralflows.analysis import plotting

# What plot() reads, per role of the registry entry's `cells:` (centralflows.analysis.contract)
READS = {"main": {"discrete": ["train_loss", "hessian_eigs"], "group": ["deltas"]}}


def phases(sharpness, limit, onset):
    """(blow-up end, stabilization end): S first back below 2/eta, then next back above it."""
    after = sharpness[sharpness.index >= onset]
    below = after[after < limit]
    blow_end = int(below.index[0]) if len(below) else int(after.index[-1])
    again = after[(after.index > blow_end) & (after >= limit)]
    return blow_end, int(again.index[0]) if len(again) else int(after.index[-1])


def plot(table, pdf, png, params):
    cell = params.cells["main"]
    onset = plotting.onset(table, cell)
    view = table if onset is None else plotting.between(table, onset - 20, onset + 80)
    fig, (loss, sharp, disp) = plotting.subplots(3, width=4.0)
    plotting.plot_loss(loss, view, cell)
    loss.set_title("train loss")
    plotting.sharpness_panel(sharp, view, cell, onset=onset)
    sharp.set_title("sharpness")
    plotting.line(disp, plotting.curve(view, cell, "group", "deltas", 0), color="C0", label="GD")
    disp.axhline(0.0, **plotting.THRESHOLD)
    disp.set(xlabel="step", ylabel="$u_1^T(w_t - w(t))$", title="displacement along top eigenvector")
    if onset is not None:
        blow_end, stab_end = phases(
            plotting.gd_top(table, cell), 2 / plotting.learning_rate(table, cell), onset
        )
        for ax in (loss, sharp, disp):
            ax.axvspan(onset, blow_end, color="red", alpha=0.08, label="blow-up" if ax is disp else None)
            ax.axvspan(
                blow_end, stab_end, color="green", alpha=0.08, label="stabilization" if ax is disp else None
            )
    disp.legend(frameon=False, fontsize="small")
    plotting.save(fig, pdf, png)


if "snakemake" in globals():
    plotting.run_figure(plot, snakemake)  # noqa: F821 (injected by Snakemake)
