"""Vectors one by one: a block's Hessian-vector products and third-derivative pairs vmapped or unrolled.

`eig.hvp_batching` says how the products of a block of vectors run in one program: "vmap" (the vectors
as a batch axis) or "unroll" (one product per vector; XLA merges the primal pass they share). For each
architecture this builds one problem (the offline CIFAR-10 stand-in for the vision networks, the
sorting task for the sequence models) and times, alternating the two ways `--rounds` times in one
process, the 3-vector HVP and the 6 third-derivative pairs of k = 3: XLA's FLOP count and temporary
memory of each compiled program, the median wall and process CPU time per call, their ratios (vmap /
unroll) and the largest difference between the two results relative to the largest entry.

    python bench/hvp_batching.py [--arch resnet vit cnn mlp lstm mamba transformer] [--n 64] \
        [--json bench/results/hvp_batching.json]
"""

import argparse
import json
import platform
import statistics
import time

import jax
import jax.numpy as jnp
from derivative_speed import PAPER_N, cpu_s, matmul_rate

from centralflows.engine.derivatives import batched_hvp, third_derivative_pairs
from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

K = 3
BATCHINGS = ("vmap", "unroll")


def problem_of(arch: str, n: int):
    """The problem of `arch` at `n` examples (the sequence models at their paper n), K unit vectors."""
    if arch in PAPER_N:
        data = {"name": "sorting", "criterion": "mse", "n": PAPER_N[arch]}
    else:
        data = {"name": "synthetic-cifar10", "n": n}
    config = resolve_config(
        {"data": data, "arch": {"name": arch}, "opt": {"name": "gd", "lr": 0.1}, "steps": 1}
    )
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init)
    V = jax.random.normal(jax.random.PRNGKey(0), (problem.w0.shape[0], K), problem.w0.dtype)
    return problem, data["n"], V / jnp.linalg.norm(V, axis=0)


def programs(loss_fn, unroll: bool) -> dict:
    return {
        "hvp": lambda w, V: batched_hvp(loss_fn, w, V, unroll=unroll),
        "third": lambda w, V: third_derivative_pairs(loss_fn, w, V, unroll=unroll),
    }


def measure(arch: str, n: int, names, rounds: int, repeats: int) -> dict:
    problem, n, V = problem_of(arch, n)
    w = problem.w0
    out = {"n": n, "n_params": int(w.shape[0])}
    for name in names:
        row, results, compiled = {}, {}, {}
        for batching in BATCHINGS:
            t0 = time.perf_counter()
            fn = jax.jit(programs(problem.loss_fn, batching == "unroll")[name]).lower(w, V).compile()
            cost = fn.cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            row[batching] = {
                "compile_s": time.perf_counter() - t0,
                "gflop": cost.get("flops", 0) / 1e9,  # a scan's body counted once (derivative_speed.py)
                "temp_mb": fn.memory_analysis().temp_size_in_bytes / 1e6,
                "wall": [],
                "cpu": [],
            }
            results[batching] = jax.block_until_ready(fn(w, V))
            compiled[batching] = fn
        for _ in range(rounds):
            for batching in BATCHINGS:
                for _ in range(repeats):
                    t0, c0 = time.perf_counter(), cpu_s()
                    jax.block_until_ready(compiled[batching](w, V))
                    row[batching]["wall"].append(time.perf_counter() - t0)
                    row[batching]["cpu"].append(cpu_s() - c0)
        for batching in BATCHINGS:
            r = row[batching]
            r["wall_s"], r["cpu_s"] = statistics.median(r.pop("wall")), statistics.median(r.pop("cpu"))
        ref = results["vmap"]
        row["rel_diff"] = float(jnp.max(jnp.abs(results["unroll"] - ref)) / jnp.max(jnp.abs(ref)))
        row["wall_ratio"] = row["vmap"]["wall_s"] / row["unroll"]["wall_s"]
        row["cpu_ratio"] = row["vmap"]["cpu_s"] / row["unroll"]["cpu_s"]
        out[name] = row
        v, u = row["vmap"], row["unroll"]
        print(
            f"{arch:11s} n={n:<4d} {name:5s} vmap"
            f" {v['wall_s'] * 1e3:7.0f} ms wall {v['cpu_s'] * 1e3:7.0f} CPU"
            f" {v['temp_mb']:6.0f} MB | unroll {u['wall_s'] * 1e3:7.0f} ms wall {u['cpu_s'] * 1e3:7.0f} CPU"
            f" {u['temp_mb']:7.0f} MB | x{row['wall_ratio']:.2f} wall x{row['cpu_ratio']:.2f} CPU,"
            f" rel diff {row['rel_diff']:.1e}",
            flush=True,
        )
    return out


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arch", nargs="+", default=["resnet", "vit", "cnn", "mlp", "lstm", "mamba", "transformer"]
    )
    parser.add_argument(
        "--n", type=int, default=64, help="examples of the vision networks (sequence: paper n)"
    )
    parser.add_argument("--programs", nargs="+", default=["hvp", "third"], choices=["hvp", "third"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", help="write the results here (after every architecture)")
    args = parser.parse_args()
    results = {
        "machine": {"processor": platform.processor(), "matmul_gflop_per_s": matmul_rate()},
        "backend": jax.default_backend(),
        "rounds": args.rounds,
        "repeats": args.repeats,
        "archs": {},
    }
    for arch in args.arch:
        results["archs"][arch] = measure(arch, args.n, args.programs, args.rounds, args.repeats)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
