"""Claims of REFERENCE §4 on the per-cell summary: measured value, threshold, pass, and the expectation."""

from __future__ import annotations

import numpy as np
import pandas as pd


def evaluate_claims(
    summary: pd.DataFrame, claims: dict, cells_by_claim: dict[str, list[str]]
) -> pd.DataFrame:
    """One row per (claim, cell): the measured summary metric against the claim's [min, max].

    `pass` is True/False, or NA with the status `not-run` when the cell is not in the summary (a part
    of the scale that does not compute it; an ordered claim: one of its cells) or `no-data` when the
    cell ran but its metric is NaN.
    """
    rows = []
    by_cell = summary.set_index("cell")
    ran = set(by_cell.index)
    for claim_id, claim in claims.items():
        lo, hi = claim["min"], claim["max"]
        threshold = " and ".join(
            t for t in ([f">= {lo:g}"] if lo is not None else []) + ([f"<= {hi:g}"] if hi is not None else [])
        )
        measured = {
            cell: float(by_cell.at[cell, claim["metric"]]) if cell in by_cell.index else np.nan
            for cell in cells_by_claim[claim_id]
        }
        not_run = {cell for cell in measured if cell not in ran}
        if claim.get("order"):
            # One row for the whole cell list: the smallest relative step along the claimed order
            # (> 0: ordered), e.g. sharpness at equal loss decreasing as eta grows.
            sign = 1.0 if claim["order"] == "increasing" else -1.0
            v = list(measured.values())
            steps = [sign * (b - a) / max(abs(a), abs(b), 1e-30) for a, b in zip(v, v[1:], strict=False)]
            # NaN (a cell without the metric) makes the order unknown; min() alone would skip or keep
            # it depending on its position
            worst = np.nan if any(np.isnan(steps)) else min(steps, default=np.nan)
            row = " < ".join(measured) if sign > 0 else " > ".join(measured)
            not_run = {row} if not_run else set()
            measured = {row: worst}
        for cell, value in measured.items():
            ok = (
                pd.NA
                if np.isnan(value)
                else bool((lo is None or value >= lo) and (hi is None or value <= hi))
            )
            status = "no-data" if ok is pd.NA else ("pass" if ok else "fail")
            status = "not-run" if cell in not_run else status
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


def claim_expectation(claim: dict, scales: str | list[str], cell: str) -> str:
    """`holds`, or the reason `claim` is not evaluable on `cell` at a scale (its `expect:` entry).

    `expect: {<scale>: holds | <reason> | {<cell>: holds | <reason>}}`; whatever is not listed holds.
    `scales` is a scale or its chain of bases (plan.grid.scale_chain): the first one listed in
    `expect` decides, so a scale built on ci inherits ci's reasons unless it states its own.
    """
    expect = claim.get("expect", {})
    chain = [scales] if isinstance(scales, str) else scales
    entry = next((expect[s] for s in chain if s in expect), HOLDS)
    return entry.get(cell, HOLDS) if isinstance(entry, dict) else entry


def apply_expectations(claims_table: pd.DataFrame, claims: dict, scale: str | list[str]) -> pd.DataFrame:
    """Adds `expected` (holds / not evaluable) and `reason`; a claim not evaluable at this scale gets the
    status `not-evaluable` whatever it measured (the value stays in the table). `scale`: a scale or its
    chain of bases (claim_expectation)."""
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
    """The claims expected to hold that did not pass (a fail, or no data), one line each; a claim on a
    cell that did not run (`not-run`, a part of the scale) is no failure."""
    expected = claims_table["expected"] == "holds"
    bad = claims_table[expected & ~claims_table["status"].isin(["pass", "not-run"])]
    return [
        f"claim {r.claim} on {r.cell}: {r.status} ({r.metric} = {r.value:g}, expected {r.threshold})"
        for r in bad.itertuples()
    ]
