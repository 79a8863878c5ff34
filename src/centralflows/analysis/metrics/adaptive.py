"""Metrics of the RMSProp variants and of the ablated flow (Parts II-III: REFERENCE §4 items 10-13, 17)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from centralflows.analysis.metrics.common import per_coordinate
from centralflows.analysis.onset import CENTRAL_AT_EOS
from centralflows.analysis.read import moving_average, series, top_eigenvalue

# Metrics of the RMSProp variants (`adaptive_metrics`).
ADAPTIVE_COLUMNS = [
    "central_ess_sharpness_rel_error",
    "nu_share_of_first_seff_drop",
    "central_sharpness_at_fifth_loss",
    "central_ess_at_fifth_loss",
    "steps_to_fifth_loss",
    "nu_tracking_rel_error",
    "predicted_grad_sq_rel_error",
    "grad_sq_oscillation_share",
    "initial_top_eff_eig",
    "top_eff_eig_at_step5",
]

# Acceleration via regularization (REFERENCE §4 item 12; `ablation_metrics`).
ABLATION_COLUMNS = [
    "ablated_over_central_final_sharpness",
    "ablated_over_central_final_loss",
    "ablated_over_central_final_ess",
]


def adaptive_metrics(table: pd.DataFrame, top_d: pd.Series, onset, smooth: int) -> dict:
    """Metrics of the RMSProp variants (REFERENCE §4 items 10, 11, 13, 17).

    - `central_ess_sharpness_rel_error`: max |(eta/sqrt(nu)) S(w) / 2 - 1| along the central flow
      once its top effective eigenvalue is >= CENTRAL_AT_EOS (at EOS eta/sqrt(nu) = 2/S, item 10).
    - `nu_share_of_first_seff_drop`: over the first EOS cycle (onset to onset + 4*smooth steps, moving
      averages), the share of the drop of log S_eff = log eta + log S - 1/2 log nu due to nu rising:
      d(1/2 log nu) / (d(1/2 log nu) - d log S) (item 10: larger for beta2 0.99 than 0.999).
    - `central_sharpness_at_fifth_loss`, `central_ess_at_fifth_loss`, `steps_to_fifth_loss`: the
      central flow's sharpness and eta/sqrt(nu) at the first step its loss falls to 1/5 of the initial
      loss, and that step (item 11: an equal-loss comparison across eta from one initialisation).
    - `nu_tracking_rel_error`: mean over the logged coordinates and steps >= onset of
      |nu_central - MA(nu_discrete)| / MA(nu_discrete) (item 13).
    - `predicted_grad_sq_rel_error`: median over coordinates of the mean over steps >= onset of
      |predicted g^2 - MA(g^2)| over the mean of MA(g^2) (item 13).
    - `grad_sq_oscillation_share`: median over coordinates and steps >= onset of
      1 - (central's own g^2) / (predicted g^2): the part of E[g^2] due to oscillation (item 13).
    - `initial_top_eff_eig`, `top_eff_eig_at_step5`: GD-run top effective eigenvalue at the first
      logged step and 5 steps later (item 17: RMSProp without warm start).
    """
    nan = np.nan
    out = dict.fromkeys(ADAPTIVE_COLUMNS, nan)
    if len(top_d):
        out["initial_top_eff_eig"] = float(top_d.iloc[0])
        later = top_d[top_d.index >= top_d.index[0] + 5]
        out["top_eff_eig_at_step5"] = float(later.iloc[0]) if len(later) else nan
    ess_c = series(table, "central", "opt.effective_step_size")
    sharp_c = top_eigenvalue(table, "central", "hessian_eigs")
    top_c = top_eigenvalue(table, "central")
    both = pd.concat([ess_c, sharp_c, top_c], axis=1, keys=["ess", "S", "eff"], join="inner").dropna()
    at_eos = both[both["eff"] >= CENTRAL_AT_EOS]
    if len(at_eos):
        out["central_ess_sharpness_rel_error"] = float((at_eos["ess"] * at_eos["S"] / 2 - 1).abs().max())
    nu_d = series(table, "discrete", "opt.nu")
    sharp_d = top_eigenvalue(table, "discrete", "hessian_eigs")
    if onset is not None and len(nu_d) and len(sharp_d):
        logs = pd.concat([0.5 * np.log(nu_d), np.log(sharp_d)], axis=1, keys=["nu", "S"], join="inner")
        logs = logs.apply(lambda c: moving_average(c, smooth))
        cycle = logs[(logs.index >= onset) & (logs.index <= onset + 4 * smooth)]
        if len(cycle) > 1:
            d_nu, d_s = cycle["nu"].iloc[-1] - cycle["nu"].iloc[0], cycle["S"].iloc[-1] - cycle["S"].iloc[0]
            out["nu_share_of_first_seff_drop"] = float(d_nu / (d_nu - d_s)) if d_nu - d_s > 0 else nan
    loss_c = series(table, "central", "train_loss")
    if len(loss_c):
        reached = loss_c[loss_c <= loss_c.iloc[0] / 5]
        if len(reached):
            step = reached.index[0]
            out["steps_to_fifth_loss"] = float(step - loss_c.index[0])
            out["central_sharpness_at_fifth_loss"] = float(sharp_c.get(step, nan))
            out["central_ess_at_fifth_loss"] = float(ess_c.get(step, nan))
    start = onset if onset is not None else np.inf
    nu_dc, nu_cc = (
        per_coordinate(table, "discrete", "opt.nu_selected_idx"),
        per_coordinate(table, "central", "opt.nu_selected_idx"),
    )
    if not nu_dc.empty and not nu_cc.empty:
        ma = nu_dc.apply(lambda c: moving_average(c, smooth))
        err = ((nu_cc - ma).abs() / ma.abs()).loc[lambda f: f.index >= start]
        out["nu_tracking_rel_error"] = float(np.nanmean(err.to_numpy())) if err.size else nan
    g2_d = per_coordinate(table, "discrete", "grad_sq_selected_idx")
    g2_c = per_coordinate(table, "central", "grad_sq_selected_idx")
    pred = per_coordinate(table, "central", "predicted_grad_sq_selected_idx")
    if not g2_d.empty and not pred.empty:
        ma = g2_d.apply(lambda c: moving_average(c, smooth)).loc[lambda f: f.index >= start]
        err = (pred - ma).abs().loc[lambda f: f.index >= start]  # relative to the mean, as GD's norm
        out["predicted_grad_sq_rel_error"] = (
            float((err.mean() / ma.abs().mean()).median()) if err.size else nan
        )
    if not g2_c.empty and not pred.empty:
        share = (1 - g2_c / pred).loc[lambda f: f.index >= start]
        out["grad_sq_oscillation_share"] = float(np.nanmedian(share.to_numpy())) if share.size else nan
    return out


def ablation_metrics(table: pd.DataFrame) -> dict:
    """Ablated vs central flow at their last common logged step (REFERENCE §4 item 12).

    - `ablated_over_central_final_sharpness`: top raw Hessian eigenvalue S(w), ablated / central
      (item 12: > 1, the ablated flow goes sharper).
    - `ablated_over_central_final_loss`: train loss L(w(t)), ablated / central (> 1: it trains slower).
    - `ablated_over_central_final_ess`: effective step size, ablated / central (< 1: smaller steps);
      `opt.effective_step_size` for Scalar RMSProp, `opt.ess_harmonic_mean` for RMSProp.
    NaN where the run has no ablated flow.
    """
    out = dict.fromkeys(ABLATION_COLUMNS, np.nan)
    pairs = {
        "sharpness": tuple(top_eigenvalue(table, p, "hessian_eigs") for p in ("ablated", "central")),
        "loss": (series(table, "ablated", "train_loss"), series(table, "central", "train_loss")),
    }
    for quantity in ("opt.effective_step_size", "opt.ess_harmonic_mean"):
        ess_a = series(table, "ablated", quantity)
        if len(ess_a):
            pairs["ess"] = (ess_a, series(table, "central", quantity))
            break
    for name, (ablated, central) in pairs.items():
        both = pd.concat([ablated, central], axis=1, keys=["a", "c"], join="inner").dropna()
        if len(both) and both["c"].iloc[-1] != 0:
            out[f"ablated_over_central_final_{name}"] = float(both["a"].iloc[-1] / both["c"].iloc[-1])
    return out
