"""Metrics of gradient descent and its central flow (Part I: REFERENCE §4 items 1-9; issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from centralflows.analysis.metrics.common import after, last, outputs, prediction_rel_error
from centralflows.analysis.onset import EOS, central_edge_entry
from centralflows.analysis.read import PROCESSES, moving_average, series

CORE_COLUMNS = [
    "eos_onset_step",
    "discrete_top_eff_eig_median_after_eos",
    "central_top_eff_eig_max",
    "final_train_loss_discrete",
    "final_train_loss_central",
    "final_train_loss_stable",
    "smoothed_final_train_loss_discrete",
    "predicted_loss_rel_error",
    "central_loss_max_rel_increase",
    "max_distance_central_discrete",
    "final_distance_discrete_stable",
    "central_vs_stable_distance_ratio",
    "central_stable_distance_before_eos_rel",
]

CENTRAL_SMOOTHNESS_COLUMNS = [
    "central_sigma_trace_roughness",
    "central_max_seff_after_onset",
    "central_started_above_edge",
    "central_sdcp_unconverged",
]

PART_ONE_COLUMNS = [
    "n_eigs_reached_eos",
    "predicted_grad_norm_sq_rel_error",
    "grad_norm_sq_oscillation_fraction",
    "predicted_variance_rel_error",
    "outputs_rel_error",
    "central_outputs_roughness_ratio",
    "central_over_smoothed_final_loss",
]


def core_metrics(table: pd.DataFrame, top_d: pd.Series, top_c: pd.Series, onset, smoothed) -> dict:
    """The metrics every run gets (CORE_COLUMNS); NaN where not measurable.

    - `eos_onset_step`: `eos_onset` of GD's top effective eigenvalue (the first step it reaches 2).
    - `predicted_loss_rel_error`: mean |MA_smooth(GD loss) - predicted_loss| / MA over steps >= onset.
    - `central_loss_max_rel_increase`: largest one-step relative increase of the central L(w(t)).
    - `central_vs_stable_distance_ratio`: max ||GD - central|| / final ||GD - stable||.
    - `central_stable_distance_before_eos_rel`: max ||central - stable|| before onset / final ||GD - stable||.
    """
    row = {"eos_onset_step": np.nan if onset is None else onset}
    row["discrete_top_eff_eig_median_after_eos"] = (
        float(top_d[top_d.index >= onset].median()) if onset is not None else np.nan
    )
    row["central_top_eff_eig_max"] = float(top_c.max()) if len(top_c) else np.nan
    loss = {p: series(table, p, "train_loss") for p in PROCESSES}
    for p in ("discrete", "central", "stable"):
        row[f"final_train_loss_{p}"] = last(loss[p])
    row["smoothed_final_train_loss_discrete"] = last(smoothed)
    predicted = series(table, "central", "predicted_loss")
    row["predicted_loss_rel_error"] = prediction_rel_error(smoothed, predicted, onset)
    central = loss["central"]
    row["central_loss_max_rel_increase"] = (
        float(max(0.0, (central.diff() / central.shift().abs()).max())) if len(central) > 1 else np.nan
    )
    d_cd = series(table, "group", "distances/central-discrete")
    d_ds = series(table, "group", "distances/discrete-stable")
    d_cs = series(table, "group", "distances/central-stable")
    row["max_distance_central_discrete"] = float(d_cd.max()) if len(d_cd) else np.nan
    final_ds = last(d_ds)
    row["final_distance_discrete_stable"] = final_ds
    row["central_vs_stable_distance_ratio"] = (
        row["max_distance_central_discrete"] / final_ds if final_ds > 0 else np.nan
    )
    before = d_cs[d_cs.index < onset] if onset is not None else d_cs
    row["central_stable_distance_before_eos_rel"] = (
        float(before.max()) / final_ds if len(before) and final_ds > 0 else np.nan
    )
    return row


def central_smoothness_metrics(table: pd.DataFrame, attrs: dict, top_c: pd.Series) -> dict:
    """Chatter at the edge and solver failures of the central flow (issue 15); NaN where not measurable.

    - `central_sigma_trace_roughness`: mean |second difference| of tr Σ over its mean, from the central
      flow's entry to the edge (`central_edge_entry`) on: ~0 for a smooth Σ, ~1 or more when Σ
      alternates from step to step.
    - `central_max_seff_after_onset`: largest effective eigenvalue of the central flow from that entry
      on (the flow holds it at 2 within CENTRAL_EDGE_TOL; an eigenvalue entering abruptly overshoots).
    - `central_started_above_edge`: 1 if the flow started above 2 + CENTRAL_EDGE_TOL (its entry is
      then the first step back at the edge, and its start is not counted as an overshoot), else 0.
    - `central_sdcp_unconverged`: SDCP solves of the run that did not converge (root attribute).
    """
    out = dict.fromkeys(CENTRAL_SMOOTHNESS_COLUMNS, np.nan)
    out["central_sdcp_unconverged"] = float(attrs.get("central_sdcp_unconverged", np.nan))
    onset, above = central_edge_entry(top_c)
    if len(top_c):
        out["central_started_above_edge"] = float(above)
    if onset is None:
        return out
    out["central_max_seff_after_onset"] = float(top_c[top_c.index >= onset].max())
    trace = series(table, "central", "sigma_trace")
    trace = trace[trace.index >= onset]
    if len(trace) > 2 and trace.abs().mean() > 0:
        out["central_sigma_trace_roughness"] = float(trace.diff().diff().abs().mean() / trace.abs().mean())
    return out


def part_one_metrics(table: pd.DataFrame, lr: float, onset, smooth: int) -> dict:
    """REFERENCE §4 items 2, 6, 7, 9 (NaN where the run lacks the quantities or never reaches EOS).

    - `n_eigs_reached_eos`: tracked discrete eigenvalues whose effective value ever reaches 2 (item 2).
    - `predicted_grad_norm_sq_rel_error`: mean |MA(GD ||grad||^2) - predicted_grad_norm_sq| / mean MA
      after onset (item 6); `grad_norm_sq_oscillation_fraction`: mean of 1 - central ||grad L(w(t))||^2 /
      predicted after onset, the share of the predicted norm that comes from the oscillations.
    - `predicted_variance_rel_error`: top direction, mean |MA(deltas_0^2) - x_0| / mean x_0 over the
      steps after onset where x_0 > 0 (item 7).
    - `outputs_rel_error`: mean ||central test outputs - MA(GD test outputs)|| / mean ||MA(GD outputs)||
      after onset (item 9); `central_outputs_roughness_ratio`: mean |second difference| of the central
      flow's outputs / that of GD's, over the whole run (smoothness, item 9).
    - `central_over_smoothed_final_loss`: final central L(w(t)) / final MA(GD loss) (item 5: below GD).
    """
    out = dict.fromkeys(PART_ONE_COLUMNS, np.nan)
    central_loss = series(table, "central", "train_loss")
    gd_loss = moving_average(series(table, "discrete", "train_loss"), smooth)
    if len(central_loss) and len(gd_loss) and gd_loss.iloc[-1] > 0:
        out["central_over_smoothed_final_loss"] = float(central_loss.iloc[-1] / gd_loss.iloc[-1])
    eff = table[(table["process"] == "discrete") & (table["quantity"] == "effective_hessian_eigs")]
    if eff.empty:
        eff = table[(table["process"] == "discrete") & (table["quantity"] == "hessian_eigs")]
        eff = eff.assign(value=eff["value"] * lr)
    if len(eff):
        out["n_eigs_reached_eos"] = int(eff.groupby("index")["value"].max().ge(EOS).sum())
    if onset is None:
        return out
    gd_norm = moving_average(series(table, "discrete", "grad_norm_sq"), smooth)
    predicted = series(table, "central", "predicted_grad_norm_sq")
    own = series(table, "central", "grad_norm_sq")
    both = pd.concat([gd_norm, predicted, own], axis=1, keys=["ma", "pred", "own"], join="inner")
    both = after(both, onset)
    if len(both):
        # relative to the mean norm, not step by step: at the onset GD's oscillation is still growing
        # from ~0 while the flow already predicts its full size, and a ratio there would be huge
        error = (both["pred"] - both["ma"]).abs().mean() / both["ma"].mean()
        out["predicted_grad_norm_sq_rel_error"] = float(error)
        out["grad_norm_sq_oscillation_fraction"] = float((1 - both["own"] / both["pred"]).mean())
    d2 = moving_average(series(table, "group", "deltas", 0) ** 2, smooth)
    x0 = series(table, "central", "predicted_variances", 0)
    both = after(pd.concat([d2, x0], axis=1, keys=["ma", "x"], join="inner"), onset)
    both = both[both["x"] > 0]
    if len(both):
        out["predicted_variance_rel_error"] = float((both["ma"] - both["x"]).abs().mean() / both["x"].mean())
    gd, central = outputs(table, "discrete"), outputs(table, "central")
    common = gd.columns.intersection(central.columns)
    if len(common) and len(gd) > 2:
        ma = gd[common].rolling(smooth, center=True, min_periods=1).mean()
        steps = [t for t in ma.index.intersection(central.index) if t >= onset]
        if steps:
            diff = np.linalg.norm(central.loc[steps, common].to_numpy() - ma.loc[steps].to_numpy(), axis=1)
            scale = np.linalg.norm(ma.loc[steps].to_numpy(), axis=1).mean()
            out["outputs_rel_error"] = float(diff.mean() / scale) if scale > 0 else np.nan
        rough_gd = np.abs(np.diff(gd[common].to_numpy(), 2, axis=0)).mean()
        rough_c = np.abs(np.diff(central[common].to_numpy(), 2, axis=0)).mean()
        out["central_outputs_roughness_ratio"] = float(rough_c / rough_gd) if rough_gd > 0 else np.nan
    return out
