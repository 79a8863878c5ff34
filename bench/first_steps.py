"""One real run's first steps: compile, first-step and per-step CPU and wall time, peak RSS.

    nice -n 19 python bench/first_steps.py --json OUT.json -- opt:rmsprop data:sorting arch:mamba ...

Runs `python -m centralflows ARGS` in this process (the same command line, unchanged) and marks, with
the process's own CPU seconds (user + sys of every thread) and wall time: the start, the logger's
creation (data, model, warm start and the processes built) and each logged step. The HDF5 file's
`times/measure` and `times/step` (wall) are read back per process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

MARKS: list[dict] = []


def mark(what: str):
    MARKS.append({
        "at": what,
        "wall_s": time.perf_counter(),
        "cpu_s": time.process_time(),
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: kB
        "loadavg_1": os.getloadavg()[0],
    })  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True, help="write the marks and per-step figures here")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="-- then the centralflows command line")
    args = parser.parse_args()
    argv = args.args[1:] if args.args[:1] == ["--"] else args.args
    mark("start")
    import centralflows.runner.experiment as experiment
    from centralflows.runner.cli import main as cli_main

    class MarkingLogger(experiment.H5Logger):  # the run's logger, marking when each step is logged
        def __init__(self, *a, **k):
            mark("processes built")
            super().__init__(*a, **k)

        def log(self, step, values):
            mark(f"step {step} logged")
            return super().log(step, values)

    experiment.H5Logger = MarkingLogger
    load_before = os.getloadavg()
    rc = cli_main(argv)
    mark("end")
    result = {
        "argv": argv,
        "rc": rc,
        "loadavg_before_after": [list(load_before), list(os.getloadavg())],
        "cpus": os.cpu_count(),
        "marks": [
            {**m, "wall_s": m["wall_s"] - MARKS[0]["wall_s"], "cpu_s": m["cpu_s"] - MARKS[0]["cpu_s"]}
            for m in MARKS
        ],  # fmt: skip
    }
    steps = [m for m in result["marks"] if m["at"].endswith("logged")]
    built = next(m for m in result["marks"] if m["at"] == "processes built")
    # interval i: from the previous mark to step i's log (step 0: compile + the cold eigen-solves)
    prev = [built, *steps[:-1]]
    result["per_step"] = [
        {"step": s["at"], "wall_s": s["wall_s"] - p["wall_s"], "cpu_s": s["cpu_s"] - p["cpu_s"]}
        for s, p in zip(steps, prev, strict=True)
    ]
    out = next((argv[i + 1] for i, a in enumerate(argv) if a == "--out"), None)
    h5 = Path(out) / "data.hdf5" if out else None
    if h5 and h5.exists():
        import h5py

        with h5py.File(h5, "r") as f:
            result["hdf5_times_s"] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset) and "/times/" in f"/{name}":
                    result["hdf5_times_s"][name] = [float(x) for x in obj[()]]

            f.visititems(visit)
    Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result["per_step"]))
    return rc


if __name__ == "__main__":
    sys.exit(main())
