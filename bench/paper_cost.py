"""Cost of the paper grid: each architecture's step cost per process, HVP scaling, grid extrapolation.

    python bench/paper_cost.py [--json bench/results/paper_cost.json] [--resources workflow/resources.yaml]
        [--archs mlp,cnn,...] [--opts gd,rmsprop] [--steps 2] [--label cpu] [--tables-only] [--n 64]

One subprocess per cell (architecture x optimizer x n, at the paper grid's settings; CIFAR-10 replaced
by the CIFAR-shaped `synthetic-cifar10`, which costs the same), so each peak RSS is that cell's own. In
it, the processes run one after another from the initial point: discrete with eigen-tracking every
step, stable, and central with k = 1, 2, 3 critical eigenvalues (forced: k tracked pairs and an SDCP
threshold below every eigenvalue, so each step pays k(k+1)/2 third-derivative vectors and the SDCP).
The first step of each process is its compile time; the next `--steps` are timed (median). The
cell's HVP time is measured for 1 and 3 vectors, and at n = 64, 250, 1000 for one vector.

The paper grid's cost is then extrapolated from every run's step count and processes, and
`--resources` writes the table the workflow's `run` rule sizes its jobs from (runtime, mem_mb).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ARCHS = ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba")
OPTS = ("gd", "rmsprop", "scalar_rmsprop")
CENTRAL_KS = (1, 2, 3)
HVP_NS = (64, 250, 1000)
# processes not measured here, as multiples of a measured one (their extra work per step)
ALIASES = {"midpoint": ("discrete", 1.0), "ablated": ("central", 1.0), "stationary": ("central", 5.0)}


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def paper_cells(config: dict, scale: str = "paper") -> dict:
    """{cell key "arch/opt/n": (representative run config, runs using it)} of one scale's plan."""
    from centralflows.plan.grid import plan
    from centralflows.plan.resources import cell_key

    cells = {}
    for run in plan(config, scale).runs.values():
        key = cell_key(run)
        if key not in cells:
            cells[key] = (run, [])
        cells[key][1].append(run)
    return cells


def bench_config(run: dict, n: int | None = None) -> dict:
    """The run config with CIFAR-10 swapped for its CIFAR-shaped synthetic stand-in, no output."""
    from centralflows.runner.config import resolve_config

    data = dict(run["data"])
    if data["name"] == "cifar10":
        data["name"] = "synthetic-cifar10"
    data.pop("root", None)
    if n is not None:
        data["n"] = n
    keep = {k: v for k, v in run.items() if k not in ("data", "load", "checkpoint", "out", "warm_start")}
    return resolve_config({**keep, "data": data, "steps": 1})


def timed(fn) -> float:
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def measure_process(make, steps: int) -> dict:
    """Compile (first measure + step) and median step time of one process, and the RSS after it."""
    import jax

    def one(p):
        jax.block_until_ready(list(p.measure().values()))
        p.step()
        jax.block_until_ready(p.w)

    start = time.perf_counter()
    p = make()
    one(p)
    first = time.perf_counter() - start
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        one(p)
        times.append(time.perf_counter() - start)
    step = statistics.median(times)
    return {"first_step_s": first, "compile_s": max(first - step, 0.0), "step_s": step, "peak_mb": peak_mb()}


def hvp_ms(problem, ks=(1, 3)) -> dict:
    import jax

    from centralflows.engine.derivatives import batched_hvp

    out = {}
    f = jax.jit(lambda w, V: batched_hvp(problem.loss_fn, w, V))
    for k in ks:
        V = jax.random.normal(jax.random.PRNGKey(0), (problem.w0.shape[0], k), problem.w0.dtype)
        call = lambda V=V: f(problem.w0, V)
        timed(call)  # compile
        out[str(k)] = 1000 * min(timed(call) for _ in range(3))
    return out


def run_cell(run: dict, steps: int, n: int | None = None) -> dict:
    """Everything measured for one cell (in this process)."""
    import jax

    from centralflows.engine.compiled import Compiled
    from centralflows.engine.eigs import EigConfig
    from centralflows.engine.optimizers import make_optimizer
    from centralflows.engine.processes import CentralFlow, Discrete, StableFlow
    from centralflows.problem.build import build_problem
    from centralflows.runner.experiment import eig_config

    config = bench_config(run, n)
    start = time.perf_counter()
    problem = build_problem(config)
    opt = make_optimizer(**config["opt"])
    kernels = Compiled(problem, opt, config["eig"]["chunk_size"])
    w, s = problem.w0, opt.init_state(problem.w0)
    out = {"n_params": int(problem.n_params), "build_s": time.perf_counter() - start, "processes": {}}
    eig = eig_config(config, "discrete")
    procs = out["processes"]
    procs["discrete"] = measure_process(lambda: Discrete(kernels, w, s, eig, 10), steps)
    procs["stable"] = measure_process(lambda: StableFlow(kernels, w, s, eig, 20, 4), steps)
    for k in CENTRAL_KS:
        fixed = EigConfig.from_dict({**eig.__dict__, "initial_k": k, "max_k": k, "track_threshold": None})
        procs[f"central_k{k}"] = measure_process(
            lambda fixed=fixed: CentralFlow(kernels, w, s, fixed, 30, 4, sdcp_threshold=-1e30), steps
        )
    out["hvp_ms"] = hvp_ms(problem)
    out["peak_mb"] = peak_mb()
    out["jax_device"] = str(jax.devices()[0])
    return out


def hvp_growth(run: dict) -> dict:
    """One-vector HVP ms at n = 64, 250, 1000 (in this process)."""
    from centralflows.problem.build import build_problem

    return {str(n): hvp_ms(build_problem(bench_config(run, n)), ks=(1,))["1"] for n in HVP_NS}


def subprocess_json(args: list[str], timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, __file__, *args], capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    return result


def process_step_s(cell: dict, process: str, k: int = 2) -> float | None:
    """Seconds per step of `process` in a measured cell (central at k critical eigenvalues)."""
    base, factor = ALIASES.get(process, (process, 1.0))
    name = f"central_k{k}" if base == "central" else base
    p = cell.get("processes", {}).get(name)
    return None if p is None else factor * p["step_s"]


def extrapolate(cells: dict, measured: dict, k: int) -> dict:
    """Core-hours of every cell's runs (steps x per-step cost of its processes + compile)."""
    total, per_cell, missing = 0.0, {}, []
    for key, (_, runs) in cells.items():
        m = measured.get(key)
        if not m or "processes" not in m:
            missing.append(key)
            continue
        seconds = 0.0
        for run in runs:
            names = run.get("runs", ["discrete"])
            compile_s = max(p["compile_s"] for p in m["processes"].values())
            seconds += compile_s + run.get("steps", 1000) * sum(process_step_s(m, p, k) for p in names)
        per_cell[key] = {"runs": len(runs), "hours": seconds / 3600}
        total += seconds / 3600
    # wall hours on the measuring machine; CPU core-hours = that x its cores
    cores = os.cpu_count() or 1
    return {"hours": total, "core_hours": total * cores, "cells": per_cell, "not_measured": missing}


def resources_table(cells: dict, measured: dict, label: str) -> dict:
    """The `run` rule's table: per cell key, seconds per step of each process and the peak MB."""
    table = {}
    for key in cells:
        m = measured.get(key)
        if not m or "processes" not in m:
            continue
        steps = {p: round(process_step_s(m, p, k=3), 3) for p in ("discrete", "stable", "central", *ALIASES)}
        table[key] = {
            "step_s": steps,
            "compile_s": round(max(p["compile_s"] for p in m["processes"].values()), 1),
            "peak_mb": int(m["peak_mb"]),
        }
    return {"measured_on": label, "cells": table}


def machine_load() -> dict:
    load = os.getloadavg()
    return {
        "loadavg_1_5_15": [round(x, 2) for x in load],
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(ROOT / "bench/results/paper_cost.json"))
    parser.add_argument("--resources", help="also write the workflow's resources table here")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--opts", default=",".join(OPTS))
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process after the first")
    parser.add_argument("--label", default="cpu", help="device label of these figures (cpu, gpu)")
    parser.add_argument("--cell-timeout", type=float, default=900.0)
    parser.add_argument("--no-growth", action="store_true", help="skip HVP time vs n")
    parser.add_argument("--n", type=int, help="every cell at this n instead (a smoke test of the script)")
    parser.add_argument(
        "--tables-only", action="store_true", help="measure nothing: totals and tables from --json"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one cell key, JSON on stdout
    parser.add_argument("--growth", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from centralflows.plan.workflow import load_config

    config = load_config(ROOT / "config.yaml")
    cells = paper_cells(config)
    if args.worker or args.growth:
        import jax

        jax.config.update("jax_compilation_cache_dir", None)
        key = args.worker or args.growth
        run = cells[key][0]
        print(json.dumps(run_cell(run, args.steps, args.n) if args.worker else hvp_growth(run)))
        return

    archs, opts = args.archs.split(","), args.opts.split(",")
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    # cells measured by earlier invocations with the same label are kept (one architecture at a time
    # fits a loaded machine); a cell measured again replaces its old figures
    old = results.get(args.label, {})
    entry = {**old, "machine": machine_load(), "steps": args.steps, "n": args.n,
             "cells": old.get("cells", {}), "hvp_ms_vs_n": old.get("hvp_ms_vs_n", {})}  # fmt: skip
    todo = [key for key in cells if key.split("/")[0] in archs and key.split("/")[1] in opts]
    if args.tables_only:
        todo, args.no_growth, entry["machine"] = [], True, old.get("machine", entry["machine"])
    start = time.perf_counter()
    for key in todo:
        print(f"{key}: ...", flush=True)
        entry["cells"][key] = subprocess_json(
            ["--worker", key, "--steps", str(args.steps)], args.cell_timeout
        )
        print(f"{key}: {json.dumps(entry['cells'][key])}", flush=True)
    if not args.no_growth:
        for arch in archs:
            key = next((k for k in cells if k.startswith(f"{arch}/gd/")), None)
            if key:
                entry["hvp_ms_vs_n"][arch] = subprocess_json(["--growth", key], args.cell_timeout)
                print(f"{arch} HVP ms vs n: {entry['hvp_ms_vs_n'][arch]}", flush=True)
    if todo:
        entry["machine_after"] = machine_load()
        entry["wall_s"] = time.perf_counter() - start
    entry["paper_grid"] = {f"central_k{k}": extrapolate(cells, entry["cells"], k) for k in CENTRAL_KS}
    quick = paper_cells(config, "quick")
    entry["quick_scale_estimate"] = quick_estimate(quick, entry["cells"], entry["n"])
    results[args.label] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    if args.resources:
        label = args.label if args.n is None else f"{args.label}, smoke test at n = {args.n}: not for jobs"
        write_resources(Path(args.resources), resources_table(cells, entry["cells"], label))


def quick_estimate(quick: dict, measured: dict, measured_n: int | None = None) -> dict:
    """The quick scale's hours, from the paper cells' per-step costs scaled linearly to its n (200)."""
    total, missing = 0.0, []
    for key, (_, runs) in quick.items():
        arch, opt, n = key.split("/")
        same = [k for k, m in measured.items() if k.startswith(f"{arch}/{opt}/") and "processes" in m]
        paper = measured[same[-1]] if same else None
        if paper is None:
            missing.append(key)
            continue
        paper_n = measured_n or int(same[-1].split("/")[2])
        scale = int(n) / paper_n
        compile_s = max(p["compile_s"] for p in paper["processes"].values())
        for run in runs:
            names = run.get("runs", ["discrete"])
            total += compile_s + run.get("steps", 1000) * scale * sum(process_step_s(paper, p) for p in names)
    return {
        "hours": total / 3600,
        "not_measured": missing,
        "assumes": "step cost linear in n, central at k = 2",
    }


def write_resources(path: Path, table: dict):
    import yaml

    header = (
        "# Generated by `python bench/paper_cost.py --resources workflow/resources.yaml` (do not edit by\n"
        "# hand): per paper cell arch/optimizer/n, seconds per step of each process (central: at k = 3\n"
        "# critical eigenvalues), the compile time and the peak resident memory of one run. The `run` rule\n"
        "# sizes runtime and mem_mb from it (config.yaml `resources`); cells missing here fall back to\n"
        "# the per_kstep formula.\n"
    )
    path.write_text(header + yaml.safe_dump(table, sort_keys=True))


if __name__ == "__main__":
    main()
