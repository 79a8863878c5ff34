"""LOBPCG with and without soft locking (`eig.lock`) on a paper run's discrete iterates at the edge.

Restores the discrete process of a run's checkpoint twice, once per setting, and advances both copies
`--steps` steps alternately in one process. GD does not read its eigenpairs, so both copies visit the
same iterates and differ only in their eigen-solves: per step it reports the HVPs, LOBPCG's CPU
seconds (the step's, which is mostly the solve) and the largest difference of the effective
eigenvalues between the two settings, relative to the top one.

    python bench/lobpcg_lock_paper.py results/paper/runs/lstm-gd-lr0.7-sorting-b802965b \\
        --steps 10 --json bench/results/lobpcg_lock_paper_lstm_lr0.7.json
"""

import argparse
import dataclasses
import json
import resource
from pathlib import Path

import numpy as np

from centralflows.engine.compiled import Compiled
from centralflows.problem.build import build_problem
from centralflows.runner.checkpoint import latest_checkpoint, load_checkpoint
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import build_optimizer, make_processes


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder with checkpoints (its newest is used)")
    ap.add_argument("--checkpoint", type=Path, help="this checkpoint instead of the newest")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    path = args.checkpoint or latest_checkpoint(args.run)
    tree, meta = load_checkpoint(path)
    config = resolve_config(meta["config"])
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init)
    kernels = Compiled(problem, build_optimizer(config.opt), config.eig.chunk_size)
    w0 = kernels.problem.w0
    copies = {}
    for lock in (False, True):
        setting = dataclasses.replace(config, eig=dataclasses.replace(config.eig, lock=lock))
        process = make_processes(setting, kernels, w0, kernels.opt.init_state(w0), initialize=False)
        copies[lock] = process["discrete"]
        copies[lock].load_state_dict(tree["processes"]["discrete"])
    rows = []
    for step in range(int(meta["step"]), int(meta["step"]) + args.steps):
        row = {"step": step}
        for lock, process in copies.items():
            c0, h0 = cpu_s(), process.eigs.hvps
            measured = process.measure()
            process.step(measured)
            row[f"lock={lock}"] = {
                "hvps": process.eigs.hvps - h0,
                "cpu_s": cpu_s() - c0,
                "theta": [float(t) for t in measured.logs["effective_hessian_eigs"]],
            }
        a, b = (np.array(row[f"lock={lock}"]["theta"]) for lock in (False, True))
        row["max_rel_theta_diff"] = float(np.max(np.abs(a - b)) / abs(a[0])) if a.shape == b.shape else None
        rows.append(row)
        print(step, {k: (v["hvps"], round(v["cpu_s"], 1)) for k, v in row.items() if k.startswith("lock")},
              row["max_rel_theta_diff"], flush=True)  # fmt: skip
    out = {"run": str(args.run), "checkpoint": str(path), "steps": args.steps, "rows": rows}
    for lock in (False, True):
        key = f"lock={lock}"
        out[key] = {
            "hvps_per_step": float(np.mean([r[key]["hvps"] for r in rows])),
            "cpu_s_per_step": float(np.mean([r[key]["cpu_s"] for r in rows[1:]])),  # after compiling
        }
    out["max_rel_theta_diff"] = max(r["max_rel_theta_diff"] or 0 for r in rows)
    print({k: v for k, v in out.items() if k != "rows"})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
