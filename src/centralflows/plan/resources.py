"""Runtime and memory of one run job, from the measured table of bench/paper_cost.py (or a fallback)."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from centralflows.plan.tree import get_path


def load_table(path: str | Path | None, device: str | None = None) -> dict:
    """The `cells` of a resources table written by `bench/paper_cost.py --resources` ({} if none).

    With `device`, the table must have been measured there: CPU seconds would size a GPU job ~10x
    too long, and GPU seconds a CPU job far too short.
    """
    if not path or not Path(path).exists():
        return {}
    table = yaml.safe_load(Path(path).read_text()) or {}
    if device is not None and table.get("measured_on") != device:
        raise ValueError(
            f"resources table {path} was measured on '{table.get('measured_on')}' but sizes {device} "
            f"jobs: point config.yaml resources.tables.{device} at a table measured on {device}, or null"
        )
    return table.get("cells", {})


def job_table(resources: dict) -> dict:
    """The measured table for this config's run jobs: `resources.tables[device]`."""
    device = resources["device"]
    return load_table(resources["tables"][device], device)


def cell_key(run: dict) -> str:
    """`arch/optimizer/n`: the key of a run's entry in the table (one per paper cell)."""
    return f"{get_path(run, 'arch.name')}/{get_path(run, 'opt.name')}/{get_path(run, 'data.n', 1000)}"


def measured(run: dict, table: dict) -> dict | None:
    """The table entry of the run's cell, or None where the benchmark has not measured it."""
    return table.get(cell_key(run))


def run_seconds(run: dict, resources: dict, table: dict) -> tuple[float, bool]:
    """A run's expected seconds on the table's device, and whether they were measured.

    Measured: compile + steps x the seconds per step of its processes (CPU seconds in a cpu table,
    wall seconds in a gpu one). Otherwise the `per_kstep` guess: steps/1000 x per_kstep[arch] x the sum
    of the process weights, in minutes. Neither includes a job's margins (runtime.base, safety).
    """
    r, processes, steps = resources["runtime"], run.get("runs", ["discrete"]), run.get("steps", 1000)
    entry = measured(run, table)
    if entry is not None:
        return entry["compile_s"] + steps * sum(entry["step_s"][p] for p in processes), True
    weight = sum(r["process_weight"].get(p, 1) for p in processes)
    per_kstep = r["per_kstep"].get(get_path(run, "arch.name"), max(r["per_kstep"].values()))
    return 60 * steps / 1000 * per_kstep * weight, False


def runtime_minutes(run: dict, resources: dict, table: dict, attempt: int = 1) -> int:
    """Minutes: base + safety x run_seconds / 60 where measured, base + the guess where not; times
    `attempt`, so a retried job gets more."""
    seconds, was_measured = run_seconds(run, resources, table)
    safety = resources["safety"] if was_measured else 1.0
    return math.ceil((resources["runtime"]["base"] + safety * seconds / 60) * attempt)


def mem_mb(run: dict, resources: dict, table: dict, attempt: int = 1) -> int:
    """MB: safety x the measured peak resident memory, or base + per_kexample x n/1000; x attempt."""
    m, entry = resources["mem_mb"], measured(run, table)
    if entry is not None:
        return math.ceil(resources["safety"] * entry["peak_mb"] * attempt)
    return math.ceil((m["base"] + m["per_kexample"] * get_path(run, "data.n", 1000) / 1000) * attempt)
