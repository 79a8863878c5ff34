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

PROCESSES = ("discrete", "midpoint", "stable", "central")
LONG_COLUMNS = ["run_id", "process", "step", "quantity", "index", "value"]
# Diagnostics that no figure reads (timings, solver logs, the central flow's internal tensors).
SKIPPED_PREFIXES = ("times/", "eig_logs/", "flow_aux/")

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
    both = pd.concat([smoothed, predicted], axis=1, keys=["ma", "pred"], join="inner").dropna()
    if len(crossed):
        both = both[both.index >= onset]
    row["predicted_loss_rel_error"] = (
        float((both["pred"] - both["ma"]).abs().div(both["ma"].abs()).mean()) if len(both) else np.nan
    )
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
    return row


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
        for cell in cells_by_claim[claim_id]:
            value = float(by_cell.at[cell, claim["metric"]]) if cell in by_cell.index else np.nan
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
