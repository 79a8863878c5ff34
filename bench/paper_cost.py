"""Cost of the paper grid: each cell's step cost per process in CPU seconds, fitted in n, extrapolated.

    nice -n 19 python bench/paper_cost.py [--json bench/results/paper_cost.json] [--archs mlp,cnn,...]
        [--opts gd,rmsprop] [--fit-ns 64,250] [--paper-n] [--steps 2] [--jobs 1] [--label cpu]
        [--resources workflow/resources.yaml] [--tables-only] [--markdown] [--hvp-growth [--no-cells]]

One subprocess per cell and n (architecture x optimizer at the paper grid's settings; CIFAR-10 replaced
by the CIFAR-shaped `synthetic-cifar10`, which costs the same), so each peak RSS is that cell's own. In
it, the processes run one after another from the initial point: discrete with eigen-tracking every
step, stable, and central with k = 1, 2, 3 critical eigenvalues (forced: k tracked pairs and an SDCP
threshold below every eigenvalue, so each step pays k(k+1)/2 third-derivative vectors and the SDCP).
The first step of each process is its compile time plus a cold eigen-solve; the next `--steps` are
timed (median), in wall time and in the worker's own CPU time (user + sys of all its threads), which
a loaded machine does not inflate, with the HVP-equivalents they did (HVPs + 2 x third derivatives).

Each cell is measured at the small `--fit-ns` (the paper n does not fit a CPU budget): a step's cost
is its HVP-equivalents times CPU seconds per HVP-equivalent fitted as a + b*n, and the compile time
and peak RSS are fitted as a + b*n, then evaluated at the cell's n; `--paper-n` measures cells at
their own n instead, which are then used as measured and the fit's relative error recorded
(`fit_check`). The grid's CPU core-hours follow from every run's steps and processes (wall hours
are kept, labelled with the load they were measured at), and `--resources` writes the table the
workflow's `run` rule sizes its jobs from (CPU seconds on CPU, wall seconds on a GPU).
"""

from __future__ import annotations

import argparse
import json
import math
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
    return resolve_config({**keep, "data": data, "steps": 1}).to_dict()  # the benchmarks read its keys


def timed(fn) -> float:
    import jax

    start = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - start


def measure_process(make, steps: int) -> dict:
    """Compile (first measure + step) and median step time of one process, wall and CPU, and the RSS.

    CPU seconds are this process's own user + sys time (every XLA thread): on a shared machine they
    stay what the work costs while the wall time grows with the load.
    """
    import jax

    def one(p):
        measured = p.measure()
        jax.block_until_ready(list(measured.logs.values()))
        p.step(measured)
        jax.block_until_ready(p.w)

    def work(p):  # HVP-equivalents done so far: a third-derivative vector costs about two HVPs
        raw = getattr(p, "raw_eigs", None)  # RMSProp: the raw Hessian's tracker as well
        return p.eigs.hvps + (raw.hvps if raw else 0) + 2 * getattr(p, "third_derivatives", 0)

    wall, cpu = time.perf_counter(), time.process_time()
    p = make()
    one(p)
    first, first_cpu = time.perf_counter() - wall, time.process_time() - cpu
    times, cpus, hvps = [], [], []
    for _ in range(steps):
        wall, cpu, done = time.perf_counter(), time.process_time(), work(p)
        one(p)
        times.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        hvps.append(work(p) - done)
    step, step_cpu = statistics.median(times), statistics.median(cpus)
    return {
        "first_step_s": first, "compile_s": max(first - step, 0.0), "step_s": step,
        "first_step_cpu_s": first_cpu, "compile_cpu_s": max(first_cpu - step_cpu, 0.0),
        "step_cpu_s": step_cpu, "peak_mb": peak_mb(),
        "hvp_equivalents_per_step": statistics.fmean(hvps),
        "cpu_s_per_hvp_equivalent": sum(cpus) / max(sum(hvps), 1),
        "stopped": p.stopped,  # a flow that stopped (left the edge) did no work: its times mean nothing
    }  # fmt: skip


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
    from centralflows.runner.experiment import resolve_hvp_batching
    from centralflows.runner.sections import RunConfig

    config = bench_config(run, n)
    start = time.perf_counter()
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    opt = make_optimizer(**config["opt"])
    run_config = resolve_hvp_batching(RunConfig.from_dict(config))  # eig.hvp_batching as a run resolves it
    unroll = run_config.eig.hvp_batching == "unroll"
    kernels = Compiled(problem, opt, config["eig"]["chunk_size"], unroll)
    w, s = problem.w0, opt.init_state(problem.w0)
    warm = max(run.get("warm_start") or 0, 0)  # as the run does: RMSProp's flows start above the edge
    for _ in range(warm):
        w, s = opt.step(w, s, kernels.grad(w))
    out = {"n_params": int(problem.n_params), "build_s": time.perf_counter() - start, "steps": steps,
           "warm_start": warm, "hvp_batching": run_config.eig.hvp_batching, "processes": {}}  # fmt: skip
    eig = run_config.process_eig("discrete")
    procs = out["processes"]
    makers = {"discrete": lambda: Discrete(kernels, w, s, eig, 10),
              "stable": lambda: StableFlow(kernels, w, s, eig, 20, 4)}  # fmt: skip
    for k in CENTRAL_KS:
        fixed = EigConfig.from_dict({**eig.__dict__, "initial_k": k, "max_k": k, "track_threshold": None})
        makers[f"central_k{k}"] = lambda fixed=fixed: CentralFlow(
            kernels, w, s, fixed, 30, 4, sdcp_threshold=-1e30
        )
    for name, make in makers.items():
        procs[name] = measure_process(make, steps)
        # each process as it finishes: a worker that times out still leaves the ones it measured
        print(json.dumps({"partial": {name: procs[name]}}), flush=True)
    out["hvp_ms"] = hvp_ms(problem)
    out["peak_mb"] = peak_mb()
    out["jax_device"] = str(jax.devices()[0])
    return out


def hvp_growth(run: dict, n: int, ks=(1, 3)) -> dict:
    """HVP ms with 1 and 3 vectors at n (in this process), wall and CPU, and XLA's FLOP counts.

    Wall is the fastest of three calls (one where a call takes over 5 s); CPU is this process's user +
    sys time over the same call, which counts every XLA thread and stays what the HVP costs on a loaded
    machine. `gflop` is XLA's count for the forward pass and a 1-vector HVP: their ratio and the
    GFLOP/s reached say whether a slow HVP is its arithmetic or its implementation.
    """
    import jax

    from centralflows.engine.derivatives import batched_hvp
    from centralflows.problem.build import build_problem

    classes = run["data"].get("classes")
    n -= n % classes if classes else 0  # a class-balanced set: 250 -> 248 with 4 classes
    config = bench_config(run, n)
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    f = jax.jit(lambda w, V: batched_hvp(problem.loss_fn, w, V))
    out, gflop = {}, {}
    for k in ks:
        V = jax.random.normal(jax.random.PRNGKey(0), (problem.w0.shape[0], k), problem.w0.dtype)
        if k == 1:
            gflop = {"forward": xla_gflop(problem.loss_fn, problem.w0), "hvp_1": xla_gflop(f, problem.w0, V)}
        jax.block_until_ready(f(problem.w0, V))  # compile
        calls = []
        while len(calls) < (3 if not calls or calls[0][0] < 5 else 1):
            wall, cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(f(problem.w0, V))
            calls.append((time.perf_counter() - wall, time.process_time() - cpu))
        out[str(k)] = {"wall_ms": 1000 * min(c[0] for c in calls), "cpu_ms": 1000 * min(c[1] for c in calls)}
    return {"n": n, "n_params": int(problem.n_params), "hvp": out, "gflop": gflop, "peak_mb": peak_mb()}


def xla_gflop(fn, *args) -> float | None:
    """XLA's FLOP count of fn(*args) in GFLOP (its cost analysis of the compiled program)."""
    import jax

    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost  # older JAX: one dict per device
    flops = (cost or {}).get("flops")
    return None if flops is None else flops / 1e9


def subprocess_json(args: list[str], timeout: float, script: str = __file__) -> dict:
    """One worker's JSON (`script` run with `args`), with the machine's load average before and after
    it and the CPU it got."""
    from centralflows.runner.allocator import allocator_env

    # the engine's allocator settings, as every run gets them (python -m centralflows, the Snakefile)
    env = {**os.environ, **allocator_env(), "PYTHONPATH": str(ROOT / "src")}
    start, load = time.perf_counter(), [round(x, 2) for x in os.getloadavg()]
    cpu = children_cpu_s()
    try:
        proc = subprocess.run(
            [sys.executable, script, *args], capture_output=True, text=True, env=env, timeout=timeout
        )
    except subprocess.TimeoutExpired as stopped:
        result = {"error": f"timed out after {timeout:.0f} s", **partial(stopped.stdout)}
    else:
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"
            result = {"error": last, **partial(proc.stdout)}
        else:
            result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = time.perf_counter() - start
    result["malloc_env"] = {k: v for k, v in env.items() if k.startswith("MALLOC_")}
    # a killed worker is reaped too, so this says how much CPU a timed-out cell had had (--jobs 1)
    result["worker_cpu_s"] = children_cpu_s() - cpu
    result["loadavg_before_after"] = [load, [round(x, 2) for x in os.getloadavg()]]
    return result


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def partial(stdout: str | bytes | None) -> dict:
    """The processes a worker finished before it stopped (kept in the JSON; a fit needs whole cells)."""
    text = stdout.decode(errors="replace") if isinstance(stdout, bytes) else stdout or ""
    done = {}
    for line in text.splitlines():
        if line.startswith('{"partial"'):
            done.update(json.loads(line)["partial"])
    return {"partial_processes": done} if done else {}


FIELDS = ("step_cpu_s", "step_s", "compile_cpu_s", "compile_s")


def linear_fit(points: list[tuple[float, float]]) -> dict:
    """Least-squares a + b*n through (n, y) points (two points: the line through them)."""
    ns, ys = [x for x, _ in points], [y for _, y in points]
    mn, my = statistics.fmean(ns), statistics.fmean(ys)
    b = sum((x - mn) * (y - my) for x, y in points) / sum((x - mn) ** 2 for x in ns)
    return {"a": my - b * mn, "b": b}


def at_n(fit: dict, n: int, largest: float) -> float:
    """The fit at n, never below the value measured at the largest n (noise can tilt a 2-point line)."""
    return max(fit["a"] + fit["b"] * n, largest)


def fit_cell(by_n: dict, n: int, growth: dict | None = None) -> dict:
    """Per process a + b*n of the step times, and of the peak RSS, from the measured ns; evaluated at n.

    A cell measured at one n only (the ViT and ResNet, whose steps at n = 32 do not fit a CPU budget)
    is scaled by its architecture's HVP `growth` instead, when that was measured at both ns.
    """
    ok = dict(sorted((int(m), r) for m, r in by_n.items() if "processes" in r))
    stopped = sorted(
        f"{name} at n = {m}: {why}" for m, r in ok.items() for name, why in stopped_processes(r).items()
    )
    if stopped:
        return {"error": "stopped during its measurement, so its times mean nothing: " + "; ".join(stopped)}
    if len(ok) == 1 and growth:
        return scale_by_hvp_growth(*next(iter(ok.items())), n, growth)
    if len(ok) < 2:
        return {"error": f"needs two measured n, has {sorted(ok) or 'none'}"}
    top = ok[max(ok)]
    fits, processes = {}, {}
    for name in top["processes"]:
        fits[name] = {
            f: linear_fit([(m, r["processes"][name][f]) for m, r in ok.items()]) for f in FIELDS[:2]
        }
        processes[name] = {f: at_n(fits[name][f], n, top["processes"][name][f]) for f in FIELDS[:2]}
        # compilation does not grow with n (the cold first eigen-solve in it a little): a line through
        # two noisy points would extrapolate the noise 8x, so the largest n's figure is kept
        processes[name].update({f: top["processes"][name][f] for f in FIELDS[2:]})
        per_step = [r["processes"][name].get("hvp_equivalents_per_step", 0) for r in ok.values()]
        if min(per_step) > 0:
            # The eigen-solver's iterations in the first steps vary from step to step far more than
            # the cost per HVP varies with n; so a step's seconds are extrapolated as its mean number
            # of HVP-equivalents times the fitted seconds per HVP-equivalent (a + b*n).
            work = statistics.fmean(per_step)
            for f in ("step_cpu_s", "step_s"):
                fit = linear_fit(
                    [(m, r["processes"][name][f] / e) for (m, r), e in zip(ok.items(), per_step, strict=True)]
                )
                fits[name][f] = {**fit, "hvp_equivalents_per_step": work}
                processes[name][f] = work * at_n(fit, n, top["processes"][name][f] / per_step[-1])
    fits["peak_mb"] = linear_fit([(m, r["peak_mb"]) for m, r in ok.items()])
    return {
        "n": n, "n_measured": sorted(ok), "fit": fits, "processes": processes,
        "peak_mb": at_n(fits["peak_mb"], n, top["peak_mb"]), "n_params": top["n_params"],
        "jax_device": top["jax_device"], "source": f"a + b*n fit of n = {sorted(ok)}",
    }  # fmt: skip


def stopped_processes(cell: dict) -> dict:
    """{process: why} for the processes of a measured cell that stopped (measurements from before the
    field was recorded: those that did no HVP in their steps)."""
    out = {}
    for name, p in cell["processes"].items():
        if p.get("stopped"):
            out[name] = p["stopped"]
        elif p.get("hvp_equivalents_per_step", 1) == 0:
            out[name] = "no Hessian-vector product in its steps"
    return out


def hvp_point(growth: dict, n: int) -> tuple[dict | None, str]:
    """The 3-vector HVP (CPU and wall ms) and the worker's peak RSS at n, and how it was obtained.

    Where it did not run at n (a ViT or ResNet HVP of the whole n = 1000 batch needs more memory than
    a 24 GB machine has), the line through the two largest measured n below it: an HVP is a sum over
    the examples, so its cost grows linearly once the batch fills the cores.
    """
    point = growth.get(str(n), {})
    if "hvp" in point:
        three = point["hvp"]["3"]
        return {
            "cpu_ms": three["cpu_ms"],
            "wall_ms": three["wall_ms"],
            "peak_mb": point.get("peak_mb", 0),
        }, ""
    below = sorted(int(x) for x, r in growth.items() if "hvp" in r and int(x) < n)[-2:]
    if len(below) < 2:
        return None, f"no HVP growth measured at n = {n}"
    at = {m: hvp_point(growth, m)[0] for m in below}
    fits = {f: linear_fit([(m, q[f]) for m, q in at.items()]) for f in ("cpu_ms", "wall_ms", "peak_mb")}
    why = point.get("error", "not measured")
    return {f: fit["a"] + fit["b"] * n for f, fit in fits.items()}, (
        f"the HVP at n = {n} extrapolated linearly from n = {below[0]}, {below[1]} (at n = {n}: {why})"
    )


def scale_by_hvp_growth(m: int, measured: dict, n: int, growth: dict) -> dict:
    """A cell measured at n = m, extrapolated to n by its architecture's HVP growth from m to n.

    A step is its HVP-equivalents, each costing a third of a 3-vector HVP (the eigen-solver's blocks,
    the batched third derivatives), plus the rest (gradients, the solver's dense algebra, dispatch):
    the HVPs are scaled by the HVP's growth from m to n and the rest is kept, CPU and wall alike.
    (Scaling the whole step overstates it: at small n the rest is a large part; `growth_check`.)
    The peak RSS adds the HVP worker's growth in RSS from m to n; compilation is kept as measured
    at m, as in `fit_cell`.
    """
    (lo, lo_why), (hi, hi_why) = hvp_point(growth, m), hvp_point(growth, n)
    if lo is None or hi is None or lo_why:
        return {"error": f"one measured n ({m}) and {lo_why or hi_why}"}
    per_hvp = {f: (lo[u] / 3000, hi[u] / 3000) for f, u in (("step_cpu_s", "cpu_ms"), ("step_s", "wall_ms"))}

    def scaled(p: dict) -> dict:
        out = dict(p)
        for f, (at_m, at_n) in per_hvp.items():
            hvps = min(p["hvp_equivalents_per_step"] * at_m, p[f])
            out[f] = p[f] - hvps + hvps * at_n / at_m
        return out

    extra_mb = max(hi["peak_mb"] - lo["peak_mb"], 0)
    source = f"measured at n = {m}, its HVPs scaled by the 3-vector HVP's growth from n = {m} to {n}"
    processes = {name: scaled(p) for name, p in measured["processes"].items()}
    return {
        "n": n, "n_measured": [m], "processes": processes, "peak_mb": measured["peak_mb"] + extra_mb,
        "n_params": measured["n_params"], "jax_device": measured["jax_device"],
        "hvp_growth": {f: at_n / at_m for f, (at_m, at_n) in per_hvp.items()},
        "source": source + (f"; {hi_why}" if hi_why else ""),
    }  # fmt: skip


def process_step_s(cell: dict, process: str, k: int = 2, field: str = "step_cpu_s") -> float | None:
    """Seconds per step of `process` in a cell (central at k critical eigenvalues), CPU or wall."""
    base, factor = ALIASES.get(process, (process, 1.0))
    name = f"central_k{k}" if base == "central" else base
    p = cell.get("processes", {}).get(name)
    return None if p is None else factor * p[field]


def run_seconds(cell: dict, run: dict, k: int, wall: bool = False) -> float:
    """One run's seconds: compile (incl. the cold first eigen-solve) + steps x its processes' steps."""
    step, comp = ("step_s", "compile_s") if wall else ("step_cpu_s", "compile_cpu_s")
    compile_s = max(p[comp] for p in cell["processes"].values())
    names = run.get("runs", ["discrete"])
    return compile_s + run.get("steps", 1000) * sum(process_step_s(cell, p, k, step) for p in names)


def extrapolate(cells: dict, fitted: dict, k: int) -> dict:
    """The paper grid: CPU core-hours (from CPU seconds) and wall hours at the measured loads."""
    core, wall, per_cell, missing = 0.0, 0.0, {}, []
    for key, (_, runs) in cells.items():
        m = fitted.get(key)
        if not m or "processes" not in m:
            missing.append(key)
            continue
        c = sum(run_seconds(m, run, k) for run in runs) / 3600
        w = sum(run_seconds(m, run, k, wall=True) for run in runs) / 3600
        per_cell[key] = {"runs": len(runs), "steps": sum(r.get("steps", 1000) for r in runs),
                         "core_hours": c, "wall_hours_at_measured_load": w}  # fmt: skip
        core, wall = core + c, wall + w
    return {"core_hours": core, "wall_hours_at_measured_load": wall, "cells": per_cell,
            "not_measured": missing}  # fmt: skip


def resources_table(cells: dict, fitted: dict, label: str) -> dict:
    """The `run` rule's table: per cell key, seconds per step of each process and the peak MB.

    On CPU the seconds are CPU seconds (a job's wall time on one dedicated core; less with more cores,
    and independent of the load the measuring machine had); on a GPU they are wall seconds.
    """
    table = {}
    for key in cells:
        m = fitted.get(key)
        if not m or "processes" not in m:
            continue
        cpu = m.get("jax_device", "cpu").startswith(("cpu", "TFRT_CPU"))
        step, comp = ("step_cpu_s", "compile_cpu_s") if cpu else ("step_s", "compile_s")
        procs = ("discrete", "stable", "central", *ALIASES)
        table[key] = {
            "step_s": {p: round(process_step_s(m, p, 3, step), 3) for p in procs},
            "compile_s": round(max(p[comp] for p in m["processes"].values()), 1),
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


def fit_check(fitted: dict, direct: dict, cells: dict) -> dict:
    """Relative error of the fit's extrapolation against cells measured at their own n."""
    out = {}
    for key, d in direct.items():
        m = fitted.get(key)
        if not m or "processes" not in m or "processes" not in d:
            continue
        rel = {name: {f: m["processes"][name][f] / p[f] - 1 for f in ("step_cpu_s", "compile_cpu_s")}
               for name, p in d["processes"].items() if name in m["processes"]}  # fmt: skip
        rel["peak_mb"] = m["peak_mb"] / d["peak_mb"] - 1
        runs = cells[key][1]  # what the grid total sees: the cell's runs, central at k = 2
        rel["runs_core_hours_k2"] = (
            sum(run_seconds(m, r, 2) for r in runs) / sum(run_seconds(d, r, 2) for r in runs) - 1
        )
        out[key] = {"n": m["n"], "from_n": m["n_measured"], "relative_error": rel}
    return out


def growth_check(by_n: dict, growth: dict) -> dict:
    """How well HVP-growth scaling predicts a measured cell: for each architecture x optimizer measured
    at two n (and at its own n), the relative error of each process's step CPU seconds when the
    smallest n is scaled to each larger one (`scale_by_hvp_growth`)."""
    out = {}
    for pair, measured in by_n.items():
        ok = dict(sorted((int(m), r) for m, r in measured.items() if "processes" in r))
        arch = growth.get(pair.split("/")[0], {})
        if len(ok) < 2 or not arch:
            continue
        m, small = next(iter(ok.items()))
        for n, big in list(ok.items())[1:]:
            scaled = scale_by_hvp_growth(m, small, n, arch)
            if "processes" in scaled:
                out[f"{pair}: {m} -> {n}"] = {
                    name: scaled["processes"][name]["step_cpu_s"] / q["step_cpu_s"] - 1
                    for name, q in big["processes"].items()
                }
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=str(ROOT / "bench/results/paper_cost.json"))
    parser.add_argument("--resources", help="also write the workflow's resources table here")
    parser.add_argument("--archs", default=",".join(ARCHS))
    parser.add_argument("--opts", default=",".join(OPTS))
    parser.add_argument("--steps", type=int, default=2, help="timed steps per process after the first")
    parser.add_argument("--label", default="cpu", help="device label of these figures (cpu, gpu)")
    parser.add_argument("--fit-ns", default="64,250", help="the n each cell is measured at (a + b*n fit)")
    parser.add_argument(
        "--paper-n", action="store_true", help="measure the cells at their own n instead (checks the fit)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="workers at once")
    parser.add_argument("--cell-timeout", type=float, default=1800.0)
    parser.add_argument(
        "--hvp-growth", action="store_true", help="also 1- and 3-vector HVPs of --archs at n 64-1000"
    )
    parser.add_argument("--growth-ns", default=",".join(map(str, HVP_NS)), help="the n of --hvp-growth")
    parser.add_argument("--no-cells", action="store_true", help="measure no cell (--hvp-growth: HVPs only)")
    parser.add_argument(
        "--tables-only", action="store_true", help="measure nothing: fits, totals and tables from --json"
    )
    parser.add_argument("--markdown", action="store_true", help="print the README's table of the entry")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: one cell key, JSON on stdout
    parser.add_argument("--worker-n", type=int, help=argparse.SUPPRESS)
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
        result = run_cell(run, args.steps, args.worker_n) if args.worker else hvp_growth(run, args.worker_n)
        print(json.dumps(result))
        return

    archs, opts = args.archs.split(","), args.opts.split(",")
    fit_ns = [int(x) for x in args.fit_ns.split(",")]
    path = Path(args.json)
    results = json.loads(path.read_text()) if path.exists() else {}
    # cells measured by earlier invocations with the same label are kept (one architecture at a time
    # fits a loaded machine); a cell measured again replaces its old figures
    old = results.get(args.label, {})
    # each worker's result records its own --steps (invocations may differ)
    entry = {**old, "machine": old.get("machine", machine_load())}
    entry.pop("steps", None)
    for part in ("by_n", "paper_n", "hvp_ms_vs_n"):
        entry[part] = old.get(part, {})
    todo = [key for key in cells if key.split("/")[0] in archs and key.split("/")[1] in opts]
    # one fit per architecture x optimizer: cells differing only in n (Mamba) share the measurement
    pairs = list(dict.fromkeys(key.rsplit("/", 1)[0] for key in todo))
    if args.tables_only:
        pairs, args.hvp_growth = [], False
    if args.no_cells:
        pairs = []
    jobs = []
    for pair in pairs:
        key = next(k for k in cells if k.startswith(f"{pair}/"))
        if args.paper_n:
            jobs += [(pair, key, None) for key in todo if key.startswith(f"{pair}/")]
        else:
            jobs += [(pair, key, n) for n in fit_ns]
    if jobs:
        entry["machine"] = machine_load()
    start = time.perf_counter()

    def work(job):
        pair, key, n = job
        extra = [] if n is None else ["--worker-n", str(n)]
        print(f"{key} n={n or 'paper'}: ...", flush=True)
        result = subprocess_json(["--worker", key, "--steps", str(args.steps), *extra], args.cell_timeout)
        print(f"{key} n={n or 'paper'}: {json.dumps(result)}", flush=True)
        return job, result

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max(args.jobs, 1)) as pool:
        for (pair, key, n), result in pool.map(work, jobs):
            if n is None:
                entry["paper_n"][key] = result
            else:
                entry["by_n"].setdefault(pair, {})[str(n)] = result
            path.write_text(json.dumps({**results, args.label: entry}, indent=1) + "\n")  # partial
    if args.hvp_growth:
        for arch in archs:
            key = next((k for k in cells if k.startswith(f"{arch}/gd/")), None)
            for n in map(int, args.growth_ns.split(",")) if key else ():  # a timeout loses that n only
                result = subprocess_json(["--growth", key, "--worker-n", str(n)], args.cell_timeout)
                entry["hvp_ms_vs_n"].setdefault(arch, {})[str(n)] = result
                print(f"{arch} HVP n={n}: {json.dumps(result)}", flush=True)
                path.write_text(json.dumps({**results, args.label: entry}, indent=1) + "\n")  # partial
    if jobs:
        entry["machine_after"] = machine_load()
        entry["wall_s"] = time.perf_counter() - start
    fitted = {}
    for key in cells:
        pair, n = key.rsplit("/", 1)
        fitted[key] = fit_cell(
            entry["by_n"].get(pair, {}), int(n), entry["hvp_ms_vs_n"].get(pair.split("/")[0])
        )
    entry["fit_check"] = fit_check(fitted, entry["paper_n"], cells)
    by_n_and_paper = {pair: dict(m) for pair, m in entry["by_n"].items()}
    for key, d in entry["paper_n"].items():  # a cell measured at its own n is one more point
        by_n_and_paper.setdefault(key.rsplit("/", 1)[0], {})[key.rsplit("/", 1)[1]] = d
    entry["growth_check"] = growth_check(by_n_and_paper, entry["hvp_ms_vs_n"])
    errors = [e for check in entry["growth_check"].values() for e in check.values()]
    if errors:  # the typical factor: exp of the mean |log(scaled / measured)|
        entry["growth_check_summary"] = {
            "processes": len(errors), "median_relative_error": statistics.median(errors),
            "typical_factor": math.exp(statistics.fmean(abs(math.log1p(e)) for e in errors)),
        }  # fmt: skip
    # a cell measured at its own n is used as measured (the fit only where it was not)
    for key, d in entry["paper_n"].items():
        if "processes" in d:
            fitted[key] = {**d, "n": int(key.rsplit("/", 1)[1]), "source": "measured at this n"}
    entry["cells"] = fitted
    entry["paper_grid"] = {f"central_k{k}": extrapolate(cells, fitted, k) for k in CENTRAL_KS}
    results[args.label] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
    if args.resources:
        write_resources(Path(args.resources), resources_table(cells, fitted, args.label))
    if args.markdown:
        print(markdown(entry))
        if entry["hvp_ms_vs_n"]:
            print("\n" + hvp_markdown(entry["hvp_ms_vs_n"]))


def markdown(entry: dict) -> str:
    """The per-cell table of bench/README.md and README.md: CPU seconds, from the fit unless measured."""
    grid = entry["paper_grid"]["central_k2"]["cells"]
    rows = [
        "| cell | from n | compile + cold solve, CPU s | step CPU s: discrete / stable / central k = 1, 2, 3"
        " | peak RSS | its runs (k = 2) |",
        "|---|---|---|---|---|---|",
    ]
    for key, m in entry["cells"].items():
        if "processes" not in m:
            rows.append(unfinished_row(key, entry["by_n"].get(key.rsplit("/", 1)[0], {}), m.get("error")))
            continue
        p = {name: f"{q['step_cpu_s']:.2f}" for name, q in m["processes"].items()}
        central = ", ".join(p[f"central_k{k}"] for k in CENTRAL_KS)
        source = "measured" if "n_measured" not in m else "/".join(map(str, m["n_measured"]))
        source += ", HVP-scaled" if "hvp_growth" in m else ""
        compile_s = max(q["compile_cpu_s"] for q in m["processes"].values())
        rows.append(
            f"| {key} | {source} | {compile_s:.0f} | {p['discrete']} / {p['stable']} / {central}"
            f" | {m['peak_mb'] / 1024:.2f} GB | {grid[key]['core_hours']:.1f} core-h |"
        )
    return "\n".join(rows)


def unfinished_row(key: str, by_n: dict, error: str | None = None) -> str:
    """A cell without a fit: what stopped each n, and the step CPU s of the processes it did finish;
    `error`, the fit's refusal, where every n it needs was measured."""
    if not by_n:
        return f"| {key} | not measured | | | | |"
    why, steps = [], []
    for n, r in sorted(by_n.items(), key=lambda item: int(item[0])):
        done = r.get("processes") or r.get("partial_processes", {})
        why.append(f"n = {n}: " + ("measured" if "processes" in r else r.get("error", "failed")))
        if done:
            names = ("discrete", "stable", *(f"central_k{k}" for k in CENTRAL_KS))
            p = [f"{done[q]['step_cpu_s']:.2f}" if q in done else "-" for q in names]
            steps.append(f"at n = {n}: {p[0]} / {p[1]} / {', '.join(p[2:])}")
    if error and any("processes" in r for r in by_n.values()):
        why.append(f"not fitted: {error}")
    return f"| {key} | {'; '.join(why)} | | {'; '.join(steps)} | | |"


def hvp_markdown(growth: dict) -> str:
    """The README's HVP table: CPU ms of a 1- and a 3-vector HVP per n, the growth 64 -> 1000, and at
    the largest n XLA's GFLOP of one HVP, its ratio to the forward pass and the GFLOP/s reached."""
    rows = [
        "| arch | parameters | " + " | ".join(f"n = {n}: 1 / 3 vectors, CPU ms" for n in HVP_NS)
        + f" | 1 vector, n = {HVP_NS[-1]} / n = {HVP_NS[0]} | 3 / 1 vectors at n = {HVP_NS[-1]} "
        + f"| n = {HVP_NS[-1]}: HVP GFLOP (x forward), GFLOP/s |",
        "|---" * (len(HVP_NS) + 5) + "|",
    ]  # fmt: skip
    for arch, by_n in growth.items():
        ok = {int(n): r for n, r in by_n.items() if "hvp" in r}
        cols = [
            f"{ok[n]['hvp']['1']['cpu_ms']:.0f} / {ok[n]['hvp']['3']['cpu_ms']:.0f}" if n in ok
            else by_n.get(str(n), {}).get("error", "not measured") for n in HVP_NS
        ]  # fmt: skip
        lo, hi = ok.get(HVP_NS[0]), ok.get(HVP_NS[-1])
        growth_n = f"{hi['hvp']['1']['cpu_ms'] / lo['hvp']['1']['cpu_ms']:.1f}x" if lo and hi else ""
        growth_k = f"{hi['hvp']['3']['cpu_ms'] / hi['hvp']['1']['cpu_ms']:.1f}x" if hi else ""
        params = f"{next(iter(ok.values()))['n_params']:,}" if ok else ""
        flops = (hi or {}).get("gflop", {})
        rate = ""
        if flops.get("hvp_1") and flops.get("forward"):
            hvp, ratio = flops["hvp_1"], flops["hvp_1"] / flops["forward"]
            rate = f"{hvp:.1f} ({ratio:.1f}x), {hvp / (hi['hvp']['1']['cpu_ms'] / 1000):.0f}"
        rows.append(f"| {arch} | {params} | " + " | ".join(cols) + f" | {growth_n} | {growth_k} | {rate} |")
    return "\n".join(rows)


def write_resources(path: Path, table: dict):
    import yaml

    header = (
        "# Generated by `python bench/paper_cost.py --resources workflow/resources.yaml` (do not edit by\n"
        "# hand): per paper cell arch/optimizer/n, seconds per step of each process (central: at k = 3\n"
        "# critical eigenvalues), the compile time and the peak resident memory of one run, at the cell's\n"
        "# n (fitted from two small n unless measured there; bench/README.md). Measured on CPU they are\n"
        "# CPU seconds (one core's wall time), on a GPU wall seconds. The `run` rule sizes runtime and\n"
        "# mem_mb from it when config.yaml `resources.tables` names it for `resources.device` (which must\n"
        "# be `measured_on`); cells missing here fall back to the per_kstep formula.\n"
    )
    path.write_text(header + yaml.safe_dump(table, sort_keys=True))


if __name__ == "__main__":
    main()
