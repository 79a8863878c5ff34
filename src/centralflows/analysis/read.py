"""Run tables: one run's HDF5 file -> its long table, stored as one Parquet file with the run's info.

The long table of a run has one row per logged number, NaN (= not logged) rows dropped:

    process, step, quantity, index, value

- `process`: discrete | midpoint | stable | central | ablated | stationary, or `group` for
  cross-process datasets (`distances/<a>-<b>`, `deltas`, `midpoint_deltas`).
- `quantity`: the dataset path inside the process group (`train_loss`, `opt.nu`, `hessian_eigs`);
  a (steps, examples, outputs) dataset such as `test_outputs` becomes one quantity per example,
  `test_outputs/<example>`, indexed by output unit; a sequence model's (steps, examples, positions,
  classes) the same, its outputs flattened row-major (unit = position * classes + class).
- `index`: -1 for a scalar per step, else the position in the trailing axis (eigenvalue i, selected
  coordinate i, output unit i).

On disk (`tables/runs/<run_id>.parquet`) `process` and `quantity` are categorical, and the file's
metadata holds the run's info, `{"attrs": root attributes of the HDF5 file, "job": the job record}`,
from which `cell_metadata` makes the small per-cell table (cell, run_id, arch, opt, lr, ...).
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from centralflows.engine.registry import PROCESSES
from centralflows.runner.io import open_for_reading

LONG_COLUMNS = ["process", "step", "quantity", "index", "value"]
# Diagnostics that no figure reads (timings, solver logs, the central flow's internal tensors).
SKIPPED_PREFIXES = ("times/", "eig_logs/", "flow_aux/")
INFO_KEY = b"centralflows.run"  # the Parquet metadata key of the run's info

# The per-cell metadata table: what the plan and the run's file say about a cell's run.
METADATA_COLUMNS = [
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
]


def _long_rows(process: str, quantity: str, step: np.ndarray, values: np.ndarray) -> list:
    values = np.asarray(values, dtype=float)
    if values.ndim == 1:
        blocks = [(quantity, values[:, None], np.array([-1]))]
    elif values.ndim == 2:
        blocks = [(quantity, values, np.arange(values.shape[1]))]
    else:  # (steps, examples, outputs...): a sequence's (positions, classes) flattened row-major
        values = values.reshape(*values.shape[:2], -1)
        blocks = [
            (f"{quantity}/{i}", values[:, i, :], np.arange(values.shape[2])) for i in range(values.shape[1])
        ]
    frames = []
    for name, block, index in blocks:
        steps = np.repeat(step, block.shape[1])
        flat, idx = block.reshape(-1), np.tile(index, block.shape[0])
        keep = np.isfinite(flat)
        frames.append(
            pd.DataFrame(
                {
                    "process": process,
                    "step": steps[keep],
                    "quantity": name,
                    "index": idx[keep],
                    "value": flat[keep],
                }
            )
        )
    return frames


def logged_rows(f: h5py.File, datasets: list[h5py.Dataset]) -> int:
    """The rows of an open run file to read: all of a finished file's; of a file still being written
    (or left by a stopped run), those every dataset already holds, with increasing steps (a row the
    writer has begun may show in some datasets, or as a step not yet written).

    Raises:
        ValueError: a finished file whose datasets are not all one row per step.
    """
    step = np.asarray(f["step"][()])
    lengths = {d.shape[0] for d in datasets}
    if f.attrs.get("status") not in ("running", "stopped"):
        if lengths - {len(step)}:
            raise ValueError(f"{f.filename}: datasets of {sorted(lengths)} rows for {len(step)} steps")
        return len(step)
    rows = min([len(step), *lengths])
    falls = np.flatnonzero(np.diff(step[:rows]) <= 0)
    return int(falls[0]) + 1 if len(falls) else rows


def read_run(path) -> tuple[pd.DataFrame, dict]:
    """Reads one run file (REFERENCE §3.9 layout) into the long table and its root attributes; a
    `data.partial.hdf5` of a run in progress up to its last complete row (`logged_rows`).

    Returns:
        (long table with LONG_COLUMNS, categorical process and quantity; attrs) where
        attrs["config"] is the parsed run config.
    """
    frames = []
    with open_for_reading(path) as f:
        attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
        datasets = {}

        def collect(name, obj):
            if isinstance(obj, h5py.Dataset) and obj.ndim and name != "step":
                datasets[name] = obj

        f.visititems(collect)
        rows = logged_rows(f, list(datasets.values()))
        step = np.asarray(f["step"][:rows], dtype=np.int64)
        for name, obj in datasets.items():
            head, _, rest = name.partition("/")
            process, quantity = (head, rest) if head in PROCESSES else ("group", name)
            if quantity and not quantity.startswith(SKIPPED_PREFIXES):
                frames.extend(_long_rows(process, quantity, step, obj[:rows]))
    for key, value in attrs.items():
        if isinstance(value, bytes):
            attrs[key] = value.decode()
    if isinstance(attrs.get("config"), str):
        attrs["config"] = json.loads(attrs["config"])
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LONG_COLUMNS)
    return _typed(table[LONG_COLUMNS]), attrs


def _typed(table: pd.DataFrame) -> pd.DataFrame:
    return table.astype(
        {"process": "category", "step": "int64", "quantity": "category", "index": "int64", "value": "float64"}
    )


def write_run_table(table: pd.DataFrame, info: dict, path) -> None:
    """Writes a run's long table to Parquet with `info` ({"attrs", "job"}) in the file's metadata."""
    arrow = pa.Table.from_pandas(_typed(table), preserve_index=False)
    meta = {**(arrow.schema.metadata or {}), INFO_KEY: json.dumps(info, default=str).encode()}
    pq.write_table(arrow.replace_schema_metadata(meta), path)


def read_run_info(path) -> dict:
    """The info ({"attrs", "job"}) of a run table, read from its Parquet footer only."""
    return json.loads(pq.read_schema(path).metadata[INFO_KEY])


def read_run_table(path, reads: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """A run's long table from Parquet; with `reads` ({process: [quantity, ...]}) only those rows are read.

    Returns:
        The long table (LONG_COLUMNS; categorical process and quantity, whose categories are those of
        the whole file).
    """
    filters = None
    if reads is not None:
        filters = [[("process", "==", p), ("quantity", "in", list(q))] for p, q in reads.items() if q]
        if not filters:
            return _typed(pd.DataFrame(columns=LONG_COLUMNS))
    return pd.read_parquet(path, columns=LONG_COLUMNS, filters=filters)


def cell_metadata(cells: dict[str, str], infos: dict[str, dict]) -> pd.DataFrame:
    """The per-cell metadata table (METADATA_COLUMNS) of `cells` ({cell: run_id}), from the runs' infos.

    `beta2` is NaN for gradient descent (it has none); a value the run does not record is NaN or empty.
    """
    rows = []
    for cell, run_id in cells.items():
        attrs, job = infos[run_id].get("attrs", {}), infos[run_id].get("job", {})
        config = attrs.get("config", {})
        opt, data = config.get("opt", {}), config.get("data", {})
        rows.append(
            {
                "cell": cell,
                "run_id": job.get("run_id", run_id),
                "arch": config.get("arch", {}).get("name", ""),
                "opt": opt.get("name", ""),
                "lr": float(opt.get("lr", np.nan)),
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
            }
        )
    return pd.DataFrame(rows, columns=METADATA_COLUMNS)


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
