"""Metrics of the stationary EMA, the preconditioner speeds and the stationary flow (REFERENCE §4 items
14-16)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from centralflows.analysis.metrics.common import after, prediction_rel_error
from centralflows.analysis.onset import CENTRAL_AT_EOS, eos_onset
from centralflows.analysis.read import series

STATIONARY_COLUMNS = [
    "stationary_nu_cosine_late_median",
    "p_hat_faster_than_baseline_fraction",
    "p_bar_slower_than_p_hat_fraction",
    "stationary_predicted_loss_rel_error",
    "stationary_over_central_loss_error",
]


def stationary_metrics(
    table: pd.DataFrame, top_c: pd.Series, smoothed: pd.Series, onset, central_error: float
) -> dict:
    """The stationary EMA, the preconditioner speeds and the stationary flow (REFERENCE §4 items 14-16).

    The first three read the central flow's `stationary/*` probe, logged every
    `central.stationary_every` steps (NaN rows, the other steps, are not in the long table).

    - `stationary_nu_cosine_late_median`: median of cos(nu(t), nu_bar(w(t))) over the later half of
      its logged points (the middle one included) (item 14: rises to ~1).
    - `p_hat_faster_than_baseline_fraction`: share of the logged points where ||grad L||^2 in the
      P_hat^-1 norm exceeds the baseline 2 ||grad L||^2 / S (item 15), counted from the central flow's
      EOS onset (`eos_onset` at CENTRAL_AT_EOS; all points if it never reaches it).
    - `p_bar_slower_than_p_hat_fraction`: same points, share where the P_bar^-1 speed is below
      the P_hat^-1 one (item 15).
    - `stationary_predicted_loss_rel_error`: `predicted_loss_rel_error` of the stationary flow's
      prediction (same moving average of the discrete loss, same steps >= the discrete onset);
      `stationary_over_central_loss_error`: that error / the central flow's (item 16: the stationary
      flow is less accurate, ratio > 1, but still a decent approximation).
    NaN where the run lacks the quantities.
    """
    out = dict.fromkeys(STATIONARY_COLUMNS, np.nan)
    cosine = series(table, "central", "stationary/nu_cosine")
    if len(cosine):
        out["stationary_nu_cosine_late_median"] = float(cosine.iloc[len(cosine) // 2 :].median())
    speeds = pd.concat(
        [series(table, "central", f"stationary/speed_{p}") for p in ("baseline", "p_hat", "p_bar")],
        axis=1,
        keys=["baseline", "p_hat", "p_bar"],
        join="inner",
    ).dropna()
    speeds = after(speeds, eos_onset(top_c, CENTRAL_AT_EOS))
    if len(speeds):
        out["p_hat_faster_than_baseline_fraction"] = float((speeds["p_hat"] > speeds["baseline"]).mean())
        out["p_bar_slower_than_p_hat_fraction"] = float((speeds["p_bar"] < speeds["p_hat"]).mean())
    error = prediction_rel_error(smoothed, series(table, "stationary", "predicted_loss"), onset)
    out["stationary_predicted_loss_rel_error"] = error
    if central_error > 0:
        out["stationary_over_central_loss_error"] = error / central_error
    return out
