"""The central flow's cheaper modes from a paper run's checkpoint at the edge of stability.

Restores the central flow of a run's checkpoint (its own config: problem, optimizer, eig and central
options) once per mode and advances each copy `--steps` steps in the same process, alternating, so the
modes start from the same state at the edge and differ only in how the third-derivative vectors
(`central.third_every`) and the eigenpairs between full solves (`eig.between_solves`) are obtained:
`substep`, `step`, `extrapolate` set the first and keep the run's second; `extrapolate-span` sets both
to `extrapolate`, and `extrapolate-span-lock` also turns on LOBPCG's soft locking (`eig.lock`).
Reports per mode the top effective eigenvalue, the guard's miss per step (extrapolate: how far the
last step's trend missed the step's first third derivatives), the train loss, third-derivative
vectors, HVPs and CPU seconds per step, the distance of its parameters from the authors' mode
(`substep`, when run) and the largest relative gap of its train loss from the run's own log over the
same steps (0 for the mode the run used: the engine is deterministic on CPU).

    python bench/third_every_paper.py results/paper/runs/lstm-gd-lr0.35-sorting-597bb36c \
        --steps 20 --json bench/results/third_every_paper_lstm_lr0.35.json
"""

import argparse
import dataclasses
import json
import resource
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from centralflows.analysis.long_run import read_long_run, run_file
from centralflows.engine.compiled import Compiled
from centralflows.problem.build import build_problem
from centralflows.runner.checkpoint import latest_checkpoint, load_checkpoint
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import build_optimizer, make_processes

# mode: (central.third_every, eig.between_solves or None for the run's own, eig.lock)
MODES = {
    "substep": ("substep", None, False),
    "step": ("step", None, False),
    "extrapolate": ("extrapolate", None, False),
    "extrapolate-span": ("extrapolate", "extrapolate", False),
    "extrapolate-span-lock": ("extrapolate", "extrapolate", True),
}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def restore(config, kernels, tree, mode: str):
    """The run's central flow at the checkpoint, with its options set as `mode` says (MODES)."""
    third_every, between_solves, lock = MODES[mode]
    replace = dataclasses.replace
    config = replace(config, central=replace(config.central, third_every=third_every))
    between_solves = between_solves or config.eig.between_solves
    config = replace(config, eig=replace(config.eig, between_solves=between_solves, lock=lock))
    w0 = kernels.problem.w0
    flow = make_processes(config, kernels, w0, kernels.opt.init_state(w0), initialize=False)["central"]
    flow.load_state_dict(tree["processes"]["central"])
    return flow


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder with checkpoints (its newest is used)")
    ap.add_argument("--checkpoint", type=Path, help="this checkpoint instead of the newest")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--modes", nargs="+", default=list(MODES)[:3], choices=list(MODES))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    path = args.checkpoint or latest_checkpoint(args.run)
    tree, meta = load_checkpoint(path)
    config = resolve_config(meta["config"])
    start = int(meta["step"])
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init)
    kernels = Compiled(problem, build_optimizer(config.opt), config.eig.chunk_size)
    flows = {mode: restore(config, kernels, tree, mode) for mode in args.modes}
    rows = {mode: [] for mode in flows}
    cpu = {mode: 0.0 for mode in flows}
    for step in range(start, start + args.steps):
        for mode, flow in flows.items():
            c0, t0 = cpu_s(), time.perf_counter()
            third0, hvps0 = flow.third_derivatives, flow.eigs.hvps
            measured = flow.measure()
            flow.step(measured)
            logs = measured.logs
            rows[mode].append(
                {
                    "step": step,
                    "top_seff": float(logs["effective_hessian_eigs"][0]),
                    "k_c": int(np.asarray(logs["flow_aux/X"]).shape[0]),
                    "train_loss": float(logs["train_loss"]),
                    "third": flow.third_derivatives - third0,
                    "hvps": flow.eigs.hvps - hvps0,
                    "cpu_s": cpu_s() - c0,
                    "wall_s": time.perf_counter() - t0,
                    "distance_to_substep": None,
                    # how far the last step's trend missed this step's first vectors (extrapolate's guard)
                    "third_miss": flow.third_miss if np.isfinite(flow.third_miss) else None,
                }
            )
            cpu[mode] += rows[mode][-1]["cpu_s"]
        if "substep" in flows:
            ref = flows["substep"].w
            for mode, flow in flows.items():
                gap = jnp.linalg.norm(flow.w - ref) / jnp.linalg.norm(ref)
                rows[mode][-1]["distance_to_substep"] = float(gap)
        line = (f"{m} S_eff {r[-1]['top_seff']:.7f} loss {r[-1]['train_loss']:.6f}" for m, r in rows.items())
        print(f"step {step}: " + "  ".join(line), flush=True)

    logged, steps, _ = read_long_run(run_file(args.run))
    out = {"run": str(args.run), "checkpoint": str(path), "start_step": start, "steps": args.steps}
    out["modes"] = {}
    # the run's own log over these steps (written by the authors' mode, unless the run used another)
    at = np.searchsorted(steps, np.arange(start, start + args.steps))
    in_log = at[(at < len(steps))]
    in_log = in_log[steps[in_log] == np.arange(start, start + len(in_log))]
    logged_loss = logged["central"]["loss"][in_log]

    def gap_to_log(r) -> float | None:  # largest relative difference of the train loss from the log's
        loss = np.array([x["train_loss"] for x in r[: len(in_log)]])
        return float(np.max(np.abs(loss - logged_loss) / logged_loss)) if len(in_log) else None

    for mode, r in rows.items():
        top = np.array([x["top_seff"] for x in r])
        out["modes"][mode] = {
            "top_seff_range": [float(top.min()), float(top.max())],
            "max_excess_over_2": float(np.max(top - 2)),
            "third_per_step": float(np.mean([x["third"] for x in r])),
            "hvps_per_step": float(np.mean([x["hvps"] for x in r])),
            "cpu_s_per_step": cpu[mode] / len(r),
            "final_distance_to_substep": r[-1]["distance_to_substep"],
            "final_loss": r[-1]["train_loss"],
            "steps_in_run_log": len(in_log),
            "max_rel_loss_gap_to_run_log": gap_to_log(r),
            "rows": r,
        }
        print(mode, {k: v for k, v in out["modes"][mode].items() if k != "rows"})
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
