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

With `--json` an existing file gains the architectures measured (one process per architecture keeps
the heap of one: the engine's allocator settings keep what XLA:CPU frees).
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from derivative_speed import PAPER_N, cpu_s, matmul_rate

from centralflows.engine.derivatives import batched_hvp, third_derivative_pairs
from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

K = 3
BATCHINGS = ("vmap", "unroll")


def problem_of(arch: str, n: int, ghost: int = -1):
    """The problem of `arch` at `n` examples (the sequence models at their paper n), its loss in ghost
    batches of `ghost` examples (-1: all at once), K unit vectors."""
    if arch in PAPER_N:
        data = {"name": "sorting", "criterion": "mse", "n": PAPER_N[arch], "ghost_batch_size": ghost}
    else:
        data = {"name": "synthetic-cifar10", "n": n, "ghost_batch_size": ghost}
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


def measure(arch: str, n: int, names, rounds: int, repeats: int, ghost: int = -1) -> dict:
    problem, n, V = problem_of(arch, n, ghost)
    w = problem.w0
    out = {"n": n, "n_params": int(w.shape[0]), "ghost_batch_size": ghost}
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


def operator_blocks(arch: str, n: int, sizes, rounds: int) -> dict:
    """Compile time (wall and CPU) and call time of LOBPCG's operator block (`apply_operator_rows`) for
    `sizes` vectors, both ways: unrolled, the program grows with the vectors."""
    from centralflows.engine.eigs import apply_operator_rows

    problem, n, _ = problem_of(arch, n)
    w = problem.w0
    P = jnp.ones_like(w)
    out = {"n": n}
    for size in sizes:
        V = jax.random.normal(jax.random.PRNGKey(size), (size, w.shape[0]), w.dtype)
        row = {}
        for batching in BATCHINGS:
            t0, c0 = time.perf_counter(), cpu_s()
            lowered = apply_operator_rows.lower(
                problem.loss_fn, w, P, V, chunk_size=None, unroll=batching == "unroll"
            )
            fn = lowered.compile()
            row[batching] = {"compile_s": time.perf_counter() - t0, "compile_cpu_s": cpu_s() - c0}
            jax.block_until_ready(fn(w, P, V))
            calls = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(w, P, V))
                calls.append(time.perf_counter() - t0)
            row[batching]["call_s"] = statistics.median(calls)
        out[str(size)] = row
        v, u = row["vmap"], row["unroll"]
        print(
            f"{arch:11s} n={n:<4d} block of {size:2d}: compile vmap {v['compile_s']:5.1f} s,"
            f" unroll {u['compile_s']:5.1f} s; call vmap {v['call_s'] * 1e3:6.0f} ms,"
            f" unroll {u['call_s'] * 1e3:6.0f} ms",
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
    parser.add_argument("--ghost-batch-size", type=int, default=-1, help="the loss in chunks (data option)")
    parser.add_argument("--json", help="write the results here (after every architecture)")
    parser.add_argument(
        "--operator-blocks", nargs="+", type=int, help="instead: compile times of these block sizes"
    )
    args = parser.parse_args()
    results = {"archs": {}}
    if args.json and Path(args.json).exists():  # one architecture per process keeps the memory of one
        results = json.loads(Path(args.json).read_text())
    results.setdefault("runs", []).append(
        {
            "archs": args.arch,
            "machine": {"processor": platform.processor(), "matmul_gflop_per_s": matmul_rate()},
            "backend": jax.default_backend(),
            "rounds": args.rounds,
            "repeats": args.repeats,
        }
    )
    for arch in args.arch:
        if args.operator_blocks:
            blocks = operator_blocks(arch, args.n, args.operator_blocks, args.rounds)
            results.setdefault("operator_blocks", {})[arch] = blocks
        else:
            key = arch if args.ghost_batch_size < 0 else f"{arch}_ghost{args.ghost_batch_size}"
            results["archs"][key] = measure(
                arch, args.n, args.programs, args.rounds, args.repeats, args.ghost_batch_size
            )
        if args.json:
            with open(args.json, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
