"""Tidy tables from run HDF5 files: the long table, the per-cell summary, claims and reference checks.

The long table of a run has one row per logged number, NaN (= not logged) rows dropped:

    run_id, process, step, quantity, index, value

- `process`: discrete | midpoint | stable | central, or `group` for cross-process datasets
  (`distances/<a>-<b>`, `deltas`, `midpoint_deltas`).
- `quantity`: the dataset path inside the process group (`train_loss`, `opt.nu`, `hessian_eigs`);
  a (steps, examples, outputs) dataset such as `test_outputs` becomes one quantity per example,
  `test_outputs/<example>`, indexed by output unit.
- `index`: -1 for a scalar per step, else the position in the trailing axis (eigenvalue i, selected
  coordinate i, output unit i).
"""

from __future__ import annotations

import json
import logging
import sys

import h5py
import numpy as np
import pandas as pd

from centralflows.engine.registry import PROCESSES, SDCP_THRESHOLD

LONG_COLUMNS = ["run_id", "process", "step", "quantity", "index", "value"]
# Diagnostics that no figure reads (timings, solver logs, the central flow's internal tensors).
SKIPPED_PREFIXES = ("times/", "eig_logs/", "flow_aux/")

# Metrics of the RMSProp variants (`_adaptive_metrics`).
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

# Stationary EMA, preconditioner speeds and the stationary flow (REFERENCE §4 items 14-16;
# `_stationary_metrics`).
STATIONARY_COLUMNS = [
    "stationary_nu_cosine_late_median",
    "p_hat_faster_than_baseline_fraction",
    "p_bar_slower_than_p_hat_fraction",
    "stationary_predicted_loss_rel_error",
    "stationary_over_central_loss_error",
]

# The central flow counts as at EOS once its top effective eigenvalue reaches this (it locks at 2 up
# to the SDCP's tolerance, so 2 itself would be missed; the engine's `sdcp_threshold` default).
CENTRAL_AT_EOS = SDCP_THRESHOLD

# Acceleration via regularization (REFERENCE §4 item 12; `_ablation_metrics`).
ABLATION_COLUMNS = [
    "ablated_over_central_final_sharpness",
    "ablated_over_central_final_loss",
    "ablated_over_central_final_ess",
]

CENTRAL_SMOOTHNESS_COLUMNS = [
    "central_sigma_trace_roughness",
    "central_max_seff_after_onset",
    "central_sdcp_unconverged",
]

SUMMARY_COLUMNS = [
    "cell",
    "run_id",
    "arch",
    "opt",
    "lr",
    "beta2",
    "dataset",
    "n",
    "steps",
    "runs",
    "n_params",
    "status",
    "device",
    "slurm_job_id",
    "wall_s",
    "steps_logged",
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
    # smoothness of the central flow at the edge and its SDCP solves (issue 15)
    *CENTRAL_SMOOTHNESS_COLUMNS,
    # adaptive optimizers (REFERENCE §4 items 10, 11, 13, 17; NaN where the run lacks the quantity)
    *ADAPTIVE_COLUMNS,
    # gradient descent (REFERENCE §4 items 2, 6, 7, 9)
    "n_eigs_reached_eos",
    "predicted_grad_norm_sq_rel_error",
    "grad_norm_sq_oscillation_fraction",
    "predicted_variance_rel_error",
    "outputs_rel_error",
    "central_outputs_roughness_ratio",
    "central_over_smoothed_final_loss",
    # ablated flows (REFERENCE §4 item 12)
    *ABLATION_COLUMNS,
    # stationary EMA, preconditioner speeds, stationary flow (REFERENCE §4 items 14-16)
    *STATIONARY_COLUMNS,
]


def log_to(path) -> logging.Logger:
    """Sends logging, warnings and stderr of a workflow script to the rule's log file."""
    handle = open(path, "a", buffering=1)  # noqa: SIM115 (lives as long as the script)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", force=True
    )
    logging.captureWarnings(True)
    return logging.getLogger("workflow")


# --- HDF5 -> long table ---------------------------------------------------------------------------


def _long_rows(run_id: str, process: str, quantity: str, step: np.ndarray, values: np.ndarray) -> list:
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        blocks = [(quantity, values[:, None], np.array([-1]))]
    elif values.ndim == 2:
        blocks = [(quantity, values, np.arange(values.shape[1]))]
    elif values.ndim == 3:
        blocks = [
            (f"{quantity}/{i}", values[:, i, :], np.arange(values.shape[2])) for i in range(values.shape[1])
        ]
    else:
        return []
    frames = []
    for name, block, index in blocks:
        steps = np.repeat(step, block.shape[1])
        flat, idx = block.reshape(-1), np.tile(index, block.shape[0])
        keep = np.isfinite(flat)
        frames.append(
            pd.DataFrame(
                {
                    "run_id": run_id,
                    "process": process,
                    "step": steps[keep],
                    "quantity": name,
                    "index": idx[keep],
                    "value": flat[keep],
                }
            )
        )
    return frames


def read_run(path, run_id: str) -> tuple[pd.DataFrame, dict]:
    """Reads one `data.hdf5` (REFERENCE §3.9 layout) into the long table and its root attributes.

    Returns:
        (long table with LONG_COLUMNS, attrs) where attrs["config"] is the parsed run config.
    """
    frames = []
    with h5py.File(path, "r") as f:
        step = np.asarray(f["step"][()], dtype=np.int64)
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}

        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset) or name == "step" or obj.shape[:1] != step.shape:
                return
            head, _, rest = name.partition("/")
            process, quantity = (head, rest) if head in PROCESSES else ("group", name)
            if quantity and not quantity.startswith(SKIPPED_PREFIXES):
                frames.extend(_long_rows(run_id, process, quantity, step, obj[()]))

        f.visititems(visit)
    for key, value in attrs.items():
        if isinstance(value, bytes):
            attrs[key] = value.decode()
    if isinstance(attrs.get("config"), str):
        attrs["config"] = json.loads(attrs["config"])
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LONG_COLUMNS)
    table = table[LONG_COLUMNS].astype({"step": "int64", "index": "int64", "value": "float64"})
    return table, attrs


def series(table: pd.DataFrame, process: str, quantity: str, index: int = -1) -> pd.Series:
    """One logged curve as a Series indexed by step (NaN-free, sorted)."""
    rows = table[(table["process"] == process) & (table["quantity"] == quantity) & (table["index"] == index)]
    return rows.set_index("step")["value"].sort_index()


def top_eigenvalue(table: pd.DataFrame, process: str, quantity: str = "effective_hessian_eigs") -> pd.Series:
    """The largest tracked eigenvalue per step (eigenvalue arrays are sorted only up to tracking)."""
    rows = table[(table["process"] == process) & (table["quantity"] == quantity)]
    return rows.groupby("step")["value"].max().sort_index()


def moving_average(values: pd.Series, window: int) -> pd.Series:
    """Centred moving average over `window` steps (shrinking at the ends), as plotted and summarised."""
    return values.rolling(window, center=True, min_periods=1).mean()


# --- per-cell summary ---------------------------------------------------------------------------------


def _effective_top(table: pd.DataFrame, process: str, lr: float) -> pd.Series:
    top = top_eigenvalue(table, process)
    if top.empty:  # only raw eigenvalues logged: GD's effective eigenvalue is eta * lambda
        top = lr * top_eigenvalue(table, process, "hessian_eigs")
    return top


def _last(s: pd.Series) -> float:
    return float(s.iloc[-1]) if len(s) else np.nan


def summarize_run(table: pd.DataFrame, attrs: dict, job: dict, smooth: int) -> dict:
    """The key metrics of one run (SUMMARY_COLUMNS without the cell name); NaN where not measurable.

    - `eos_onset_step`: first step where GD's top effective eigenvalue reaches 2.
    - `predicted_loss_rel_error`: mean |MA_smooth(GD loss) - predicted_loss| / MA over steps >= onset.
    - `central_loss_max_rel_increase`: largest one-step relative increase of the central L(w(t)).
    - `central_vs_stable_distance_ratio`: max ||GD - central|| / final ||GD - stable||.
    - `central_stable_distance_before_eos_rel`: max ||central - stable|| before onset / final ||GD - stable||.
    """
    config = attrs.get("config", {})
    opt, data = config.get("opt", {}), config.get("data", {})
    lr = float(opt.get("lr", np.nan))
    row = {
        "run_id": job.get("run_id", ""),
        "arch": config.get("arch", {}).get("name", ""),
        "opt": opt.get("name", ""),
        "lr": lr,
        "beta2": opt.get("beta2", np.nan) if opt.get("name") != "gd" else np.nan,
        "dataset": attrs.get("dataset", data.get("name", "")),
        "n": data.get("n", np.nan),
        "steps": config.get("steps", np.nan),
        "runs": " ".join(config.get("runs", [])),
        "n_params": attrs.get("n_params", np.nan),
        "status": attrs.get("status", ""),
        "device": attrs.get("device", ""),
        "slurm_job_id": job.get("slurm_job_id", ""),
        "wall_s": job.get("wall_s", np.nan),
        "steps_logged": int(table["step"].nunique()),
    }
    top_d = _effective_top(table, "discrete", lr)
    crossed = top_d[top_d >= 2.0]
    onset = int(crossed.index[0]) if len(crossed) else np.nan
    row["eos_onset_step"] = onset
    eos = onset if len(crossed) else None  # the onset for `_after` (None: the whole run)
    row["discrete_top_eff_eig_median_after_eos"] = (
        float(top_d[top_d.index >= onset].median()) if len(crossed) else np.nan
    )
    top_c = _effective_top(table, "central", lr)
    row["central_top_eff_eig_max"] = float(top_c.max()) if len(top_c) else np.nan

    loss = {p: series(table, p, "train_loss") for p in PROCESSES}
    for p in ("discrete", "central", "stable"):
        row[f"final_train_loss_{p}"] = _last(loss[p])
    smoothed = moving_average(loss["discrete"], smooth)
    row["smoothed_final_train_loss_discrete"] = _last(smoothed)
    predicted = series(table, "central", "predicted_loss")
    row["predicted_loss_rel_error"] = _prediction_rel_error(smoothed, predicted, eos)
    central = loss["central"]
    row["central_loss_max_rel_increase"] = (
        float(max(0.0, (central.diff() / central.shift().abs()).max())) if len(central) > 1 else np.nan
    )
    d_cd = series(table, "group", "distances/central-discrete")
    d_ds = series(table, "group", "distances/discrete-stable")
    d_cs = series(table, "group", "distances/central-stable")
    row["max_distance_central_discrete"] = float(d_cd.max()) if len(d_cd) else np.nan
    final_ds = _last(d_ds)
    row["final_distance_discrete_stable"] = final_ds
    row["central_vs_stable_distance_ratio"] = (
        row["max_distance_central_discrete"] / final_ds if final_ds > 0 else np.nan
    )
    before = d_cs[d_cs.index < onset] if len(crossed) else d_cs
    row["central_stable_distance_before_eos_rel"] = (
        float(before.max()) / final_ds if len(before) and final_ds > 0 else np.nan
    )
    row.update(_central_smoothness_metrics(table, attrs, top_c))
    row.update(_adaptive_metrics(table, top_d, eos, smooth))
    row.update(_part_one_metrics(table, lr, eos, smooth))
    row.update(_ablation_metrics(table))
    row.update(_stationary_metrics(table, top_c, smoothed, eos, row["predicted_loss_rel_error"]))
    return row


def _central_smoothness_metrics(table: pd.DataFrame, attrs: dict, top_c: pd.Series) -> dict:
    """Chatter at the edge and solver failures of the central flow (issue 15); NaN where not measurable.

    - `central_sigma_trace_roughness`: mean |second difference| of tr Σ over its mean, from the central
      flow's onset (top effective eigenvalue >= 1.999) on: ~0 for a smooth Σ, ~1 or more when Σ
      alternates from step to step.
    - `central_max_seff_after_onset`: largest effective eigenvalue of the central flow from onset on
      (the flow holds it at 2; an eigenvalue entering abruptly overshoots).
    - `central_sdcp_unconverged`: SDCP solves of the run that did not converge (root attribute).
    """
    out = dict.fromkeys(CENTRAL_SMOOTHNESS_COLUMNS, np.nan)
    out["central_sdcp_unconverged"] = float(attrs.get("central_sdcp_unconverged", np.nan))
    reached = top_c[top_c >= 1.999]
    if not len(reached):
        return out
    onset = reached.index[0]
    out["central_max_seff_after_onset"] = float(top_c[top_c.index >= onset].max())
    trace = series(table, "central", "sigma_trace")
    trace = trace[trace.index >= onset]
    if len(trace) > 2 and trace.abs().mean() > 0:
        out["central_sigma_trace_roughness"] = float(trace.diff().diff().abs().mean() / trace.abs().mean())
    return out


def _prediction_rel_error(smoothed: pd.Series, predicted: pd.Series, onset) -> float:
    """Mean |predicted - MA| / |MA| over the common steps >= onset (all when onset is None); NaN if none."""
    both = _after(pd.concat([smoothed, predicted], axis=1, keys=["ma", "pred"], join="inner").dropna(), onset)
    return float((both["pred"] - both["ma"]).abs().div(both["ma"].abs()).mean()) if len(both) else np.nan


def _stationary_metrics(
    table: pd.DataFrame, top_c: pd.Series, smoothed: pd.Series, onset, central_error: float
) -> dict:
    """The stationary EMA, the preconditioner speeds and the stationary flow (REFERENCE §4 items 14-16).

    The first three read the central flow's `stationary/*` probe, logged every
    `central.stationary_every` steps (NaN rows, the other steps, are not in the long table).

    - `stationary_nu_cosine_late_median`: median of cos(nu(t), nu_bar(w(t))) over the later half of
      its logged points (the middle one included) (item 14: rises to ~1).
    - `p_hat_faster_than_baseline_fraction`: share of the logged points where ||grad L||^2 in the
      P_hat^-1 norm exceeds the baseline 2 ||grad L||^2 / S (item 15), counted from the central flow's
      EOS onset (its top effective eigenvalue first >= CENTRAL_AT_EOS; all points if it never is).
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
    at_eos = top_c[top_c >= CENTRAL_AT_EOS]
    speeds = pd.concat(
        [series(table, "central", f"stationary/speed_{p}") for p in ("baseline", "p_hat", "p_bar")],
        axis=1,
        keys=["baseline", "p_hat", "p_bar"],
        join="inner",
    ).dropna()
    speeds = _after(speeds, int(at_eos.index[0]) if len(at_eos) else None)
    if len(speeds):
        out["p_hat_faster_than_baseline_fraction"] = float((speeds["p_hat"] > speeds["baseline"]).mean())
        out["p_bar_slower_than_p_hat_fraction"] = float((speeds["p_bar"] < speeds["p_hat"]).mean())
    error = _prediction_rel_error(smoothed, series(table, "stationary", "predicted_loss"), onset)
    out["stationary_predicted_loss_rel_error"] = error
    if central_error > 0:
        out["stationary_over_central_loss_error"] = error / central_error
    return out


def _ablation_metrics(table: pd.DataFrame) -> dict:
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


def _after(s, onset):
    return s if onset is None else s[s.index >= onset]


def _outputs(table: pd.DataFrame, process: str) -> pd.DataFrame:
    """test_outputs of one process as a (step x (example, unit)) frame."""
    rows = table[(table["process"] == process) & table["quantity"].str.startswith("test_outputs/")]
    if rows.empty:
        return pd.DataFrame()
    return rows.pivot_table(index="step", columns=["quantity", "index"], values="value").sort_index()


def _part_one_metrics(table: pd.DataFrame, lr: float, onset, smooth: int) -> dict:
    """REFERENCE §4 items 2, 6, 7, 9 (NaN where the run lacks the quantities or never reaches EOS).

    - `n_eigs_reached_eos`: tracked discrete eigenvalues whose effective value ever reaches 2 (item 2).
    - `predicted_grad_norm_sq_rel_error`: mean |MA(GD ||grad||^2) - predicted_grad_norm_sq| / MA after
      onset (item 6); `grad_norm_sq_oscillation_fraction`: mean of 1 - central ||grad L(w(t))||^2 /
      predicted after onset, the share of the predicted norm that comes from the oscillations.
    - `predicted_variance_rel_error`: top direction, mean |MA(deltas_0^2) - x_0| / mean x_0 over the
      steps after onset where x_0 > 0 (item 7).
    - `outputs_rel_error`: mean ||central test outputs - MA(GD test outputs)|| / mean ||MA(GD outputs)||
      after onset (item 9); `central_outputs_roughness_ratio`: mean |second difference| of the central
      flow's outputs / that of GD's, over the whole run (smoothness, item 9).
    - `central_over_smoothed_final_loss`: final central L(w(t)) / final MA(GD loss) (item 5: below GD).
    """
    names = [
        "n_eigs_reached_eos",
        "predicted_grad_norm_sq_rel_error",
        "grad_norm_sq_oscillation_fraction",
        "predicted_variance_rel_error",
        "outputs_rel_error",
        "central_outputs_roughness_ratio",
        "central_over_smoothed_final_loss",
    ]
    out = dict.fromkeys(names, np.nan)
    central_loss = series(table, "central", "train_loss")
    gd_loss = moving_average(series(table, "discrete", "train_loss"), smooth)
    if len(central_loss) and len(gd_loss) and gd_loss.iloc[-1] > 0:
        out["central_over_smoothed_final_loss"] = float(central_loss.iloc[-1] / gd_loss.iloc[-1])
    eff = table[(table["process"] == "discrete") & (table["quantity"] == "effective_hessian_eigs")]
    if eff.empty:
        eff = table[(table["process"] == "discrete") & (table["quantity"] == "hessian_eigs")]
        eff = eff.assign(value=eff["value"] * lr)
    if len(eff):
        out["n_eigs_reached_eos"] = int(eff.groupby("index")["value"].max().ge(2.0).sum())
    if onset is None:
        return out
    gd_norm = moving_average(series(table, "discrete", "grad_norm_sq"), smooth)
    predicted = series(table, "central", "predicted_grad_norm_sq")
    own = series(table, "central", "grad_norm_sq")
    both = pd.concat([gd_norm, predicted, own], axis=1, keys=["ma", "pred", "own"], join="inner")
    both = _after(both, onset)
    if len(both):
        error = (both["pred"] - both["ma"]).abs().div(both["ma"])
        out["predicted_grad_norm_sq_rel_error"] = float(error.mean())
        out["grad_norm_sq_oscillation_fraction"] = float((1 - both["own"] / both["pred"]).mean())
    d2 = moving_average(series(table, "group", "deltas", 0) ** 2, smooth)
    x0 = series(table, "central", "predicted_variances", 0)
    both = _after(pd.concat([d2, x0], axis=1, keys=["ma", "x"], join="inner"), onset)
    both = both[both["x"] > 0]
    if len(both):
        out["predicted_variance_rel_error"] = float((both["ma"] - both["x"]).abs().mean() / both["x"].mean())
    gd, central = _outputs(table, "discrete"), _outputs(table, "central")
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


def _per_coordinate(table: pd.DataFrame, process: str, quantity: str) -> pd.DataFrame:
    """A (step x coordinate) frame of a logged per-coordinate quantity (empty if not logged)."""
    rows = table[(table["process"] == process) & (table["quantity"] == quantity)]
    return rows.pivot_table(index="step", columns="index", values="value").sort_index()


def _adaptive_metrics(table: pd.DataFrame, top_d: pd.Series, onset, smooth: int) -> dict:
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
      |predicted g^2 - MA(g^2)| / MA(g^2) (item 13).
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
        _per_coordinate(table, "discrete", "opt.nu_selected_idx"),
        _per_coordinate(table, "central", "opt.nu_selected_idx"),
    )
    if not nu_dc.empty and not nu_cc.empty:
        ma = nu_dc.apply(lambda c: moving_average(c, smooth))
        err = ((nu_cc - ma).abs() / ma.abs()).loc[lambda f: f.index >= start]
        out["nu_tracking_rel_error"] = float(np.nanmean(err.to_numpy())) if err.size else nan
    g2_d = _per_coordinate(table, "discrete", "grad_sq_selected_idx")
    g2_c = _per_coordinate(table, "central", "grad_sq_selected_idx")
    pred = _per_coordinate(table, "central", "predicted_grad_sq_selected_idx")
    if not g2_d.empty and not pred.empty:
        ma = g2_d.apply(lambda c: moving_average(c, smooth))
        err = ((pred - ma).abs() / ma.abs()).loc[lambda f: f.index >= start]
        out["predicted_grad_sq_rel_error"] = float(err.mean().median()) if err.size else nan
    if not g2_c.empty and not pred.empty:
        share = (1 - g2_c / pred).loc[lambda f: f.index >= start]
        out["grad_sq_oscillation_share"] = float(np.nanmedian(share.to_numpy())) if share.size else nan
    return out


# --- claims and reference checks -----------------------------------------------------------------------


def evaluate_claims(
    summary: pd.DataFrame, claims: dict, cells_by_claim: dict[str, list[str]]
) -> pd.DataFrame:
    """One row per (claim, cell): the measured summary metric against the claim's [min, max].

    `pass` is True/False, or NA (status `no-data`) when the metric is NaN or the cell did not run.
    """
    rows = []
    by_cell = summary.set_index("cell")
    for claim_id, claim in claims.items():
        lo, hi = claim["min"], claim["max"]
        threshold = " and ".join(
            t for t in ([f">= {lo:g}"] if lo is not None else []) + ([f"<= {hi:g}"] if hi is not None else [])
        )
        measured = {
            cell: float(by_cell.at[cell, claim["metric"]]) if cell in by_cell.index else np.nan
            for cell in cells_by_claim[claim_id]
        }
        if claim.get("order"):
            # One row for the whole cell list: the smallest relative step along the claimed order
            # (> 0: ordered), e.g. sharpness at equal loss decreasing as eta grows.
            sign = 1.0 if claim["order"] == "increasing" else -1.0
            v = list(measured.values())
            steps = [sign * (b - a) / max(abs(a), abs(b), 1e-30) for a, b in zip(v, v[1:], strict=False)]
            measured = {
                " < ".join(measured) if sign > 0 else " > ".join(measured): min(steps, default=np.nan)
            }
        for cell, value in measured.items():
            ok = (
                pd.NA
                if np.isnan(value)
                else bool((lo is None or value >= lo) and (hi is None or value <= hi))
            )
            status = "no-data" if ok is pd.NA else ("pass" if ok else "fail")
            rows.append(
                {
                    "claim": claim_id,
                    "reference": f"REFERENCE §4.{claim['reference']}",
                    "description": claim["description"],
                    "cell": cell,
                    "metric": claim["metric"],
                    "value": value,
                    "threshold": threshold,
                    "pass": ok,
                    "status": status,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "claim",
            "reference",
            "description",
            "cell",
            "metric",
            "value",
            "threshold",
            "pass",
            "status",
        ],
    )


HOLDS = "holds"


def claim_expectation(claim: dict, scale: str, cell: str) -> str:
    """`holds`, or the reason `claim` is not evaluable on `cell` at `scale` (its `expect:` entry).

    `expect: {<scale>: holds | <reason> | {<cell>: holds | <reason>}}`; whatever is not listed holds.
    """
    expect = claim.get("expect", {}).get(scale, HOLDS)
    return expect.get(cell, HOLDS) if isinstance(expect, dict) else expect


def apply_expectations(claims_table: pd.DataFrame, claims: dict, scale: str) -> pd.DataFrame:
    """Adds `expected` (holds / not evaluable) and `reason`; a claim not evaluable at this scale gets the
    status `not-evaluable` whatever it measured (the value stays in the table)."""
    reasons = [
        claim_expectation(claims[c], scale, cell)
        for c, cell in zip(claims_table["claim"], claims_table["cell"], strict=True)
    ]
    holds = [r == HOLDS for r in reasons]
    out = claims_table.assign(
        expected=["holds" if h else "not evaluable" for h in holds],
        reason=["" if h else r for h, r in zip(holds, reasons, strict=True)],
    )
    out.loc[~pd.Series(holds, index=out.index, dtype=bool), "status"] = "not-evaluable"
    return out


def claim_failures(claims_table: pd.DataFrame) -> list[str]:
    """The claims expected to hold that did not pass (a fail, or no data), one line each."""
    bad = claims_table[(claims_table["expected"] == "holds") & (claims_table["status"] != "pass")]
    return [
        f"claim {r.claim} on {r.cell}: {r.status} ({r.metric} = {r.value:g}, expected {r.threshold})"
        for r in bad.itertuples()
    ]


def compare_to_reference(summary: pd.DataFrame, reference: pd.DataFrame, tolerances: dict) -> list[str]:
    """Differences between a summary and its reference beyond `tolerances` ({column: {rtol, atol}}).

    Rows are matched by cell; a cell missing on either side and a NaN on one side only are drifts.

    Returns:
        Human-readable lines, one per drift (empty = no drift).
    """
    problems = []
    mine, ref = summary.set_index("cell"), reference.set_index("cell")
    for cell in sorted(set(mine.index) ^ set(ref.index)):
        problems.append(f"cell {cell}: present in {'summary' if cell in mine.index else 'reference'} only")
    for cell in sorted(set(mine.index) & set(ref.index)):
        for column, tol in tolerances.items():
            if column not in ref.columns or column not in mine.columns:
                problems.append(
                    f"column {column}: missing from {'reference' if column not in ref.columns else 'summary'}"
                )
                continue
            got, want = float(mine.at[cell, column]), float(ref.at[cell, column])
            if np.isnan(got) and np.isnan(want):
                continue
            limit = tol["atol"] + tol["rtol"] * abs(want)
            if np.isnan(got) != np.isnan(want) or abs(got - want) > limit:
                problems.append(
                    f"cell {cell}, {column}: {got:.6g} vs reference {want:.6g} (allowed +-{limit:.3g})"
                )
    return sorted(set(problems), key=problems.index)
