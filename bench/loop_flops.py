"""The true FLOPs of the paper sequence models' derivative programs.

XLA's cost analysis counts the body of a loop once, whatever its trip count, so the FLOP rate of a
program built on `lax.scan` (the LSTM's and Mamba's time loops, the Transformer's scanned layers) is
understated by it. This lowers each program twice, as written and with every `lax.scan` fully unrolled
(lowered only, never compiled: the unrolled programs take minutes to compile), and reports both counts
in GFLOP: the unrolled one is the work the program does.

    python bench/loop_flops.py [--arch lstm mamba transformer] [--json bench/results/loop_flops.json]
"""

import argparse
import json

import jax
from derivative_speed import unrolled_gflop  # bench/ is the script's folder

from centralflows.engine import derivatives
from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

PAPER_N = {"lstm": 1000, "transformer": 1000, "mamba": 250}


def programs(loss_fn):
    return {
        "gradient": lambda w, V: jax.grad(loss_fn)(w),
        "hvp_1_vector": lambda w, V: derivatives.batched_hvp(loss_fn, w, V[:, :1]),
        "hvp_3_vectors": lambda w, V: derivatives.batched_hvp(loss_fn, w, V),
        "third_derivatives_6_pairs": lambda w, V: derivatives.third_derivative_pairs(loss_fn, w, V),
    }


def counted_gflop(fn, *args) -> float:
    cost = jax.jit(lambda *a: fn(*a)).lower(*args).cost_analysis()  # a new function: no trace cache
    cost = cost[0] if isinstance(cost, list) else cost
    return round(cost["flops"] / 1e9, 3)


def measure(arch: str) -> dict:
    config = resolve_config(
        {
            "data": {"name": "sorting", "criterion": "mse", "n": PAPER_N[arch]},
            "arch": {"name": arch},
            "opt": {"name": "gd", "lr": 0.1},
            "steps": 1,
        }
    )
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init)
    w = problem.w0
    V = jax.random.normal(jax.random.PRNGKey(0), (w.shape[0], 3), w.dtype)
    looped = {name: counted_gflop(fn, w, V) for name, fn in programs(problem.loss_fn).items()}
    unrolled = {name: round(unrolled_gflop(fn, w, V), 3) for name, fn in programs(problem.loss_fn).items()}
    return {
        "n": PAPER_N[arch],
        "gflop_as_counted": looped,
        "gflop_unrolled": unrolled,
        "undercount": {k: round(unrolled[k] / looped[k], 2) for k in looped},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", nargs="+", default=list(PAPER_N), choices=list(PAPER_N))
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {}
    for arch in args.arch:
        results[arch] = measure(arch)
        print(arch, json.dumps(results[arch]), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"jax": jax.__version__, "archs": results}, f, indent=1)


if __name__ == "__main__":
    main()
