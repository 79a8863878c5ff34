"""Progress of a workflow scale: every cell with its run's state, step, rate and ETA.

    python -m centralflows status --scale ci            # once
    watch -n 10 python -m centralflows status --scale ci  # while `snakemake ... --config scale=ci` runs

Read from each run's HDF5 file (`data.partial.hdf5` while it runs, SWMR-readable; `data.hdf5` once it
ended). States: pending (no file yet), running, stopped (a partial file that has not grown for
`--stale` seconds: killed or preempted; rerunning the workflow resumes it from its checkpoint),
completed, diverged, failed. The rate is the engine's own per-step time (`<process>/times/*`, summed
over the processes) over the last logged steps, so it excludes compilation and start-up.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from centralflows.plan.grid import plan
from centralflows.plan.table import aligned, load_scale, scale_parser
from centralflows.plan.workflow import WorkflowConfigError
from centralflows.runner.io import FINAL, PARTIAL, open_for_reading

RECENT = 20  # logged steps the rate is averaged over (the first, which includes compilation, never)


@dataclass
class RunStatus:
    state: str
    step: int = 0  # steps done
    steps: int | None = None  # steps in total
    seconds_per_step: float | None = None
    reason: str = ""

    @property
    def eta_s(self) -> float | None:
        if self.state != "running" or self.seconds_per_step is None or self.steps is None:
            return None
        return max(0, self.steps - self.step) * self.seconds_per_step


def _seconds_per_step(f: h5py.File) -> float | None:
    """Mean over the last RECENT logged rows of the summed `<process>/times/*` of one row."""
    total, found = None, False
    for group in f.values():
        if isinstance(group, h5py.Group) and isinstance(group.get("times"), h5py.Group):
            for d in group["times"].values():
                rows = np.asarray(d[()], dtype=float)
                recent = rows[max(1, len(rows) - RECENT) :] if len(rows) > 1 else rows  # row 0 compiles
                total = recent if total is None else total[-len(recent) :] + recent[-len(total) :]
                found = True
    if not found or total is None or not np.isfinite(total).any():
        return None
    return float(np.nanmean(total))


def read_status(run_dir: Path, planned_steps: int | None, stale_s: float, now: float) -> RunStatus:
    """The state of one run from its directory (see the module docstring)."""
    final, partial = run_dir / FINAL, run_dir / PARTIAL
    path = final if final.exists() else partial if partial.exists() else None
    if path is None:
        return RunStatus("pending", steps=planned_steps)
    try:
        with open_for_reading(path) as f:
            step = f["step"]
            step.refresh()  # SWMR: see the rows flushed since the file was opened
            done = int(step[-1]) + 1 if len(step) else int(f.attrs.get("start_step", 0))
            config = json.loads(f.attrs.get("config", "{}"))
            state = str(f.attrs.get("status", "running"))
            reason = str(f.attrs.get("status_reason", ""))
            rate = _seconds_per_step(f)
    except (OSError, KeyError) as error:  # being replaced by the writer at this instant, or no rows yet
        return RunStatus("running", steps=planned_steps, reason=f"unreadable just now ({error})")
    steps = config.get("steps", planned_steps)
    if path == partial and state == "running" and now - path.stat().st_mtime > stale_s:
        state, reason = (
            "stopped",
            f"no progress for {now - path.stat().st_mtime:.0f} s (killed or preempted?)",
        )
    return RunStatus(state, done, steps, rate, reason)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def status_table(config: dict, scale: str, results: Path, stale_s: float = 300.0) -> list[dict]:
    """One row per cell of the scale: cell, run id, state, step, steps, rate, ETA, reason."""
    from centralflows.runner.config import resolve_config

    p = plan(config, scale)
    now = time.time()
    by_run = {}
    for run_id, run in p.runs.items():
        planned = resolve_config(run).steps
        by_run[run_id] = read_status(results / scale / "runs" / run_id, planned, stale_s, now)
    rows = []
    for cell, run_id in p.cells.items():
        s = by_run[run_id]
        rows.append(
            {
                "cell": cell,
                "run": run_id,
                "state": s.state,
                "step": s.step,
                "steps": s.steps,
                "rate": f"{1 / s.seconds_per_step:.2f} steps/s" if s.seconds_per_step else "-",
                "eta": _duration(s.eta_s),
                "reason": s.reason,
            }
        )
    return rows


def render(rows: list[dict]) -> str:
    """A fixed-width table and a one-line tally of the runs by state."""
    lines = aligned(["cell", "state", "step", "steps", "rate", "eta", "run", "reason"], rows)
    runs = {r["run"]: r["state"] for r in rows}
    tally = {state: list(runs.values()).count(state) for state in dict.fromkeys(runs.values())}
    lines.append(f"{len(runs)} runs ({len(rows)} cells): " + ", ".join(f"{n} {s}" for s, n in tally.items()))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = scale_parser("status", __doc__)
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument("--stale", type=float, default=300.0, help="seconds without progress = stopped")
    args = parser.parse_args(argv)
    try:
        config, scale = load_scale(args)
    except WorkflowConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(render(status_table(config, scale, Path(args.results), args.stale)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
