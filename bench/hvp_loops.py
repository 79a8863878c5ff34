"""Why the engine keeps Hessian-vector products out of XLA loop bodies on CPU.

Times three HVPs (k = 3 vectors) of small networks three ways: one `vmap` (the engine's choice),
`lax.map` with one vector per iteration, and a `fori_loop` of three vmapped applications (the shape
of a LOBPCG `while_loop`) against the same three applications unrolled. XLA:CPU runs convolutions
inside a loop body much slower (jax-ml/jax#12868), so the engine drives LOBPCG from the host.

    python bench/hvp_loops.py [--json bench/results/hvp_loops.json]
"""

import argparse
import json
import time

import jax
import jax.numpy as jnp

from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

# the tiny networks of the old ci scale (CIFAR-shaped inputs, 64 examples)
NETWORKS = {
    "cnn": {"name": "cnn", "width": 4},
    "resnet": {"name": "resnet", "width": 4, "stage_sizes": [1, 1, 1]},
    "mlp": {"name": "mlp", "width": 32},
}


def median_ms(fn, *args, repeats: int = 7) -> float:
    jax.block_until_ready(fn(*args))  # compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def measure(arch: dict) -> dict:
    config = resolve_config(
        {
            "data": {"name": "synthetic-cifar10", "n": 64, "n_test": 64},
            "arch": arch,
            "opt": {"name": "gd", "lr": 0.1},
            "steps": 1,
        }
    ).to_dict()  # the dict form: the benchmark reads its keys
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    w = problem.w0
    V = jax.random.normal(jax.random.PRNGKey(0), (w.shape[0], 3), w.dtype)
    hvp = lambda v: jax.jvp(jax.grad(problem.loss_fn), (w,), (v,))[1]
    block = lambda V: jax.vmap(hvp, 1, 1)(V)
    step = lambda V: block(V) / jnp.linalg.norm(V)

    def unrolled(V):
        for _ in range(3):
            V = step(V)
        return V

    return {
        "n_params": int(w.shape[0]),
        "vmap_ms": median_ms(jax.jit(block), V),
        "lax_map_ms": median_ms(jax.jit(lambda V: jax.lax.map(hvp, V.T).T), V),
        "fori_loop_3_blocks_ms": median_ms(
            jax.jit(lambda V: jax.lax.fori_loop(0, 3, lambda i, V: step(V), V)), V
        ),
        "unrolled_3_blocks_ms": median_ms(jax.jit(unrolled), V),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {}
    for name, arch in NETWORKS.items():
        results[name] = measure(arch)
        r = results[name]
        loop, unrolled = r["fori_loop_3_blocks_ms"], r["unrolled_3_blocks_ms"]
        print(
            f"{name:7s} d={r['n_params']:6d}  3 HVPs: vmap {r['vmap_ms']:7.1f} ms,"
            f" lax.map {r['lax_map_ms']:7.1f} ms;  3 blocks: fori_loop {loop:7.1f} ms,"
            f" unrolled {unrolled:7.1f} ms (loop / unrolled {loop / unrolled:.1f}x)",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
