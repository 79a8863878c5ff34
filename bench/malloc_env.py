"""glibc malloc settings against the system time of the LSTM's derivative programs.

Each variant runs in a fresh subprocess with its environment (glibc reads MALLOC_* at process start),
builds the paper LSTM (sorting, n = 1000), and times 5 calls each of the gradient and the 3-vector
Hessian-vector product after compilation: median wall time, and per call user and system CPU time and
minor page faults (getrusage). The variants alternate `--rounds` times; medians over rounds.

    python bench/malloc_env.py [--json bench/results/malloc_env.json]
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

BIG = "4294967296"
VARIANTS = {
    "default": {},
    "mmap_threshold+trim": {"MALLOC_MMAP_THRESHOLD_": BIG, "MALLOC_TRIM_THRESHOLD_": BIG},
    "arena_max=1": {"MALLOC_ARENA_MAX": "1"},
    "arena_max=1+trim": {"MALLOC_ARENA_MAX": "1", "MALLOC_TRIM_THRESHOLD_": BIG},
    "arena_max=1+mmap_max=0+trim": {
        "MALLOC_ARENA_MAX": "1",
        "MALLOC_MMAP_MAX_": "0",
        "MALLOC_TRIM_THRESHOLD_": BIG,
    },
}


def worker(arch: str):
    import jax

    from centralflows.engine.derivatives import batched_hvp
    from centralflows.problem.build import build_problem
    from centralflows.runner.config import resolve_config

    config = resolve_config(
        {
            "data": {"name": "sorting", "criterion": "mse", "n": 250 if arch == "mamba" else 1000},
            "arch": {"name": arch},
            "opt": {"name": "gd", "lr": 0.1},
            "steps": 1,
        }
    ).to_dict()  # the dict form: the benchmark reads its keys
    p = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    w = p.w0
    V = jax.random.normal(jax.random.PRNGKey(0), (w.shape[0], 3), w.dtype)
    out = {}
    for name, fn, args in (
        ("grad", jax.jit(jax.grad(p.loss_fn)), (w,)),
        ("hvp", jax.jit(lambda w, V: batched_hvp(p.loss_fn, w, V)), (w, V)),
    ):
        jax.block_until_ready(fn(*args))
        times, r0 = [], resource.getrusage(resource.RUSAGE_SELF)
        for _ in range(5):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(*args))
            times.append(time.perf_counter() - t0)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        out[name] = {
            "wall_s": statistics.median(times),
            "user_s": (r1.ru_utime - r0.ru_utime) / 5,
            "sys_s": (r1.ru_stime - r0.ru_stime) / 5,
            "minflt": (r1.ru_minflt - r0.ru_minflt) / 5,
        }
    print(json.dumps(out))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="lstm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.arch)
    runs = {k: [] for k in VARIANTS}
    for _ in range(args.rounds):
        for name, env in VARIANTS.items():
            proc = subprocess.run(
                [sys.executable, __file__, "--worker", "--arch", args.arch],
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                check=True,
            )
            runs[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
    results = {"arch": args.arch, "env": VARIANTS, "median_over_rounds": {}}
    for name, rs in runs.items():
        m = {p: {q: statistics.median(r[p][q] for r in rs) for q in rs[0][p]} for p in rs[0]}
        results["median_over_rounds"][name] = m
        print(
            f"{name:30s} "
            + "  ".join(
                f"{p}: wall {m[p]['wall_s']:.3f} s user {m[p]['user_s']:.3f} sys {m[p]['sys_s']:.3f}"
                f" minflt {m[p]['minflt']:.0f}"
                for p in m
            ),
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
