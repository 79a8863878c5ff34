"""The per-cell summary: each cell's metadata and its run's metrics, one family per part of the paper.

Each family returns its columns for any run, NaN where the run lacks the quantities it needs.
"""

from __future__ import annotations

import pandas as pd

from centralflows.analysis.metrics.adaptive import (
    ABLATION_COLUMNS,
    ADAPTIVE_COLUMNS,
    ablation_metrics,
    adaptive_metrics,
)
from centralflows.analysis.metrics.common import effective_top
from centralflows.analysis.metrics.gd import (
    CENTRAL_SMOOTHNESS_COLUMNS,
    CORE_COLUMNS,
    PART_ONE_COLUMNS,
    central_smoothness_metrics,
    core_metrics,
    part_one_metrics,
)
from centralflows.analysis.metrics.stationary import STATIONARY_COLUMNS, stationary_metrics
from centralflows.analysis.onset import eos_onset
from centralflows.analysis.read import METADATA_COLUMNS, cell_metadata, moving_average, series

METRIC_COLUMNS = [
    "steps_logged",
    *CORE_COLUMNS,
    # smoothness of the central flow at the edge and its SDCP solves (issue 15)
    *CENTRAL_SMOOTHNESS_COLUMNS,
    # adaptive optimizers (REFERENCE §4 items 10, 11, 13, 17; NaN where the run lacks the quantity)
    *ADAPTIVE_COLUMNS,
    # gradient descent (REFERENCE §4 items 2, 6, 7, 9)
    *PART_ONE_COLUMNS,
    # ablated flows (REFERENCE §4 item 12)
    *ABLATION_COLUMNS,
    # stationary EMA, preconditioner speeds, stationary flow (REFERENCE §4 items 14-16)
    *STATIONARY_COLUMNS,
]
SUMMARY_COLUMNS = [*METADATA_COLUMNS, *METRIC_COLUMNS]


def summarize_run(table: pd.DataFrame, attrs: dict, smooth: int) -> dict:
    """The metrics of one run (METRIC_COLUMNS); NaN where not measurable.

    Args:
        table: the run's long table (`centralflows.analysis.read`).
        attrs: the root attributes of its HDF5 file (`attrs["config"]`: the run config).
        smooth: the moving-average window of the discrete curves.
    """
    lr = float(attrs.get("config", {}).get("opt", {}).get("lr", float("nan")))
    top_d = effective_top(table, "discrete", lr)
    top_c = effective_top(table, "central", lr)
    onset = eos_onset(top_d)  # None: the run never reaches EOS (metrics "after onset" use every step)
    smoothed = moving_average(series(table, "discrete", "train_loss"), smooth)
    row = {"steps_logged": int(table["step"].nunique())}
    row.update(core_metrics(table, top_d, top_c, onset, smoothed))
    row.update(central_smoothness_metrics(table, attrs, top_c))
    row.update(adaptive_metrics(table, top_d, onset, smooth))
    row.update(part_one_metrics(table, lr, onset, smooth))
    row.update(ablation_metrics(table))
    row.update(stationary_metrics(table, top_c, smoothed, onset, row["predicted_loss_rel_error"]))
    return row


def summary_table(cells: dict[str, str], infos: dict[str, dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per cell (SUMMARY_COLUMNS): its metadata (`cell_metadata`) and its run's metrics.

    Args:
        cells: cell -> run id; infos: run id -> {"attrs", "job"}; metrics: run id -> `summarize_run`.
    """
    meta = cell_metadata(cells, infos)
    records = zip(meta.to_dict("records"), cells.values(), strict=True)
    rows = [{**m, **metrics[run_id]} for m, run_id in records]
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
