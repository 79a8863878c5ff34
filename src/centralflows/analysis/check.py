"""The reference check: a summary against its committed reference, within per-column tolerances."""

from __future__ import annotations

import numpy as np
import pandas as pd


def compare_to_reference(
    summary: pd.DataFrame, reference: pd.DataFrame, tolerances: dict, part: list[str] | None = None
) -> list[str]:
    """Differences between a summary and its reference beyond `tolerances` ({column: {rtol, atol}}).

    Rows are matched by cell; a cell missing on either side and a NaN on one side only are drifts.
    With `part` (the cells a part of the scale computes, config `only`), the reference's rows of other
    cells are left out: those cells did not run, which is no drift.

    Returns:
        Human-readable lines, one per drift (empty = no drift).
    """
    problems = []
    mine, ref = summary.set_index("cell"), reference.set_index("cell")
    if part is not None:
        ref = ref[ref.index.isin(part)]
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
