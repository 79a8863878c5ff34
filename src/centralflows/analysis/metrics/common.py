"""Helpers the metric families share: effective top eigenvalues, windows after the onset, frames."""

from __future__ import annotations

import numpy as np
import pandas as pd

from centralflows.analysis.read import top_eigenvalue


def effective_top(table: pd.DataFrame, process: str, lr: float) -> pd.Series:
    """The top effective eigenvalue per step of `process`."""
    top = top_eigenvalue(table, process)
    if top.empty:  # only raw eigenvalues logged: GD's effective eigenvalue is eta * lambda
        top = lr * top_eigenvalue(table, process, "hessian_eigs")
    return top


def last(s: pd.Series) -> float:
    return float(s.iloc[-1]) if len(s) else np.nan


def after(s, onset):
    """The rows at steps >= `onset` (all when onset is None)."""
    return s if onset is None else s[s.index >= onset]


def prediction_rel_error(smoothed: pd.Series, predicted: pd.Series, onset) -> float:
    """Mean |predicted - MA| / |MA| over the common steps >= onset (all when onset is None); NaN if none."""
    both = after(pd.concat([smoothed, predicted], axis=1, keys=["ma", "pred"], join="inner").dropna(), onset)
    return float((both["pred"] - both["ma"]).abs().div(both["ma"].abs()).mean()) if len(both) else np.nan


def outputs(table: pd.DataFrame, process: str) -> pd.DataFrame:
    """test_outputs of one process as a (step x (example, unit)) frame."""
    rows = table[(table["process"] == process) & table["quantity"].str.startswith("test_outputs/")]
    if rows.empty:
        return pd.DataFrame()
    return rows.pivot_table(index="step", columns=["quantity", "index"], values="value").sort_index()


def per_coordinate(table: pd.DataFrame, process: str, quantity: str) -> pd.DataFrame:
    """A (step x coordinate) frame of a logged per-coordinate quantity (empty if not logged)."""
    rows = table[(table["process"] == process) & (table["quantity"] == quantity)]
    return rows.pivot_table(index="step", columns="index", values="value").sort_index()
