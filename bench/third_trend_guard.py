"""The guard of `central.third_every: extrapolate` on whole runs of ci cells, against the authors' mode.

For each named cell of a scale, runs its central flow alone (the workflow's run config, `runs:
[central]`) twice through the engine, with `central.third_every` substep (the authors') and
extrapolate, and reports per step the guard's miss (how far the last step's trend missed the step's
first third-derivative vectors, relative; `THIRD_TREND_TOLERANCE` decides), the third-derivative
vectors computed, and the largest and mean relative gaps of the train loss, the squared gradient norm,
the predicted loss and the top effective eigenvalue from the authors' mode.

    python bench/third_trend_guard.py gd_example srmsprop_example_b0.999 \
        --json bench/results/third_trend_guard.json
"""

import argparse
import json
import tempfile
from pathlib import Path

import h5py
import numpy as np

import centralflows.engine.processes as processes
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import run

ROOT = Path(__file__).resolve().parents[1]
QUANTITIES = ("train_loss", "grad_norm_sq", "predicted_loss")


def record_misses(misses: list):
    """Appends each step's guard miss (None where no trend was known) as the flow computes it."""
    start = processes.CentralFlow._start_third_trend

    def recording(self, U, gradH, P):
        start(self, U, gradH, P)
        misses.append(self.third_miss if np.isfinite(self.third_miss) else None)

    processes.CentralFlow._start_third_trend = recording


def central_series(path: Path) -> dict:
    with h5py.File(path) as f:
        c = f["central"]
        out = {key: c[key][:] for key in QUANTITIES}
        out["top_seff"] = c["effective_hessian_eigs"][:, 0]
        out["third"] = c["eig_logs/third_derivatives"][:]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cells", nargs="+")
    ap.add_argument("--scale", default="ci")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    p = plan(load_config(ROOT / "config.yaml"), args.scale)
    misses: list = []
    record_misses(misses)
    out = {"tolerance": processes.THIRD_TREND_TOLERANCE, "scale": args.scale, "cells": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells:
            series = {}
            for mode in ("substep", "extrapolate"):
                config = dict(p.runs[p.cells[cell]])
                config |= {"runs": ["central"], "out": f"{tmp}/{cell}-{mode}"}
                config["central"] = {**config.get("central", {}), "third_every": mode}
                misses.clear()
                series[mode] = central_series(run(resolve_config(config), progress=False))
                series[mode]["misses"] = list(misses)
            ref, new = series["substep"], series["extrapolate"]
            result = {"steps": len(ref["train_loss"]), "misses": new["misses"]}
            result["third_derivatives"] = {m: float(series[m]["third"][-1]) for m in series}
            for key in (*QUANTITIES, "top_seff"):
                gap = np.abs(new[key] - ref[key]) / np.abs(ref[key])
                result[key] = {"max_rel_gap": float(np.nanmax(gap)), "mean_rel_gap": float(np.nanmean(gap))}
            finite = [m for m in new["misses"] if m is not None]
            result["steps_over_tolerance"] = sum(m > out["tolerance"] for m in finite)
            out["cells"][cell] = result
            print(cell, {k: v for k, v in result.items() if k != "misses"}, flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
