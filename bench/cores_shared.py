"""Two runs on one machine: each free on every core (XLA sizes its thread pool to the cores it may use),
or each pinned to its own share of them.

XLA:CPU runs a program's parallel parts on a pool of one thread per core the process may use
(`sched_getaffinity`), so two runs started side by side on 2 cores keep 4 busy threads on 2 cores.
This restores the processes of each run's checkpoint, advances them `--steps` steps in lockstep (as a
run does: every process measures, then steps) in two processes at once, first free, then each pinned
to one core (`taskset`), `--rounds` times alternating, and reports each process's wall and CPU seconds
per step after its first (compiling) step.

    python bench/cores_shared.py --checkpoints RUN_A/checkpoints/checkpoint_N.npz RUN_B/.../ckpt.npz \\
        --steps 3 --rounds 2 --json bench/results/cores_shared_lstm.json

With `--worker` it is one such process (what the driver starts).
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def worker(checkpoint: Path, steps: int) -> dict:
    """Advances every process of `checkpoint` `steps` steps; wall and CPU seconds of each step."""
    from centralflows.engine.compiled import Compiled
    from centralflows.problem.build import build_problem
    from centralflows.runner.checkpoint import load_checkpoint
    from centralflows.runner.config import resolve_config
    from centralflows.runner.experiment import build_optimizer, make_processes

    tree, meta = load_checkpoint(checkpoint)
    config = resolve_config(meta["config"])
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init)
    opt = build_optimizer(config.opt)
    kernels = Compiled(problem, opt, config.eig.chunk_size)
    processes = make_processes(config, kernels, problem.w0, opt.init_state(problem.w0), initialize=False)
    for name, process in processes.items():
        process.load_state_dict(tree["processes"][name])
    rows = []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), cpu_s()
        measured = {name: p.measure() for name, p in processes.items()}
        for name, p in processes.items():
            p.step(measured[name])
        rows.append({"wall_s": time.perf_counter() - t0, "cpu_s": cpu_s() - c0})
    return {"checkpoint": str(checkpoint), "affinity": sorted(os.sched_getaffinity(0)), "steps": rows}


def pair(checkpoints: list[Path], steps: int, pinned: bool) -> list[dict]:
    """Both workers at once, free or each on its own core."""
    procs = []
    for core, checkpoint in enumerate(checkpoints):
        cmd = [sys.executable, __file__, "--worker", str(checkpoint), "--steps", str(steps)]
        procs.append(
            subprocess.Popen((["taskset", "-c", str(core)] if pinned else []) + cmd, stdout=subprocess.PIPE)
        )
    return [json.loads(p.communicate()[0].decode().strip().splitlines()[-1]) for p in procs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--worker", type=Path, help="(internal) one process: this checkpoint")
    ap.add_argument("--checkpoints", type=Path, nargs=2, help="the two runs' checkpoints")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)), flush=True)
        return
    rounds = []
    for r in range(args.rounds):
        for pinned in (False, True):
            t0 = time.perf_counter()
            workers = pair(args.checkpoints, args.steps, pinned)
            summary = {
                "round": r,
                "pinned": pinned,
                "wall_s": time.perf_counter() - t0,
                # after the first step, which compiles
                "step_wall_s": [sum(s["wall_s"] for s in w["steps"][1:]) / (args.steps - 1) for w in workers],
                "step_cpu_s": [sum(s["cpu_s"] for s in w["steps"][1:]) / (args.steps - 1) for w in workers],
                "workers": workers,
            }
            rounds.append(summary)
            print(json.dumps({k: v for k, v in summary.items() if k != "workers"}), flush=True)
            if args.json:  # after every pair: a stopped benchmark keeps what it measured
                out = {"checkpoints": [str(c) for c in args.checkpoints], "rounds": rounds}
                args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
