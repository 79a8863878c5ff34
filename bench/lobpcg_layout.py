"""Why LOBPCG stores its blocks as rows ([k, d]) and keeps the operator a program of its own.

Times, on XLA:CPU, the small dense products of a LOBPCG iteration for d parameters and k vectors in
the two layouts: the Gram product of two blocks (k x d by d x k) and the projection of a block onto
another (its k x k coefficients times a block). Then one whole iteration of the engine's solver on
the ci MLP (d = 99,524, k = 3): its residual, its Rayleigh-Ritz update and the Hessian-vector
products, each timed alone.

    python bench/lobpcg_layout.py [--json bench/results/lobpcg_layout.json]
"""

import argparse
import json
import platform
from functools import partial

import hvp_loops
import jax

from centralflows.engine import eigs
from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

# bench/ is on sys.path when this script runs: share the timing helper of its sibling benchmark
median_ms = partial(hvp_loops.median_ms, repeats=21)


def layouts(d: int, k: int) -> dict:
    """The same products with the vectors as columns ([d, k]) and as rows ([k, d])."""
    A = jax.random.normal(jax.random.PRNGKey(0), (d, k))
    B = jax.random.normal(jax.random.PRNGKey(1), (d, k))
    columns = {
        "gram": median_ms(jax.jit(lambda A, B: A.T @ B), A, B),
        "project": median_ms(jax.jit(lambda A, B: A @ (A.T @ B)), A, B),
    }
    At, Bt = A.T.copy(), B.T.copy()
    rows = {
        "gram": median_ms(jax.jit(lambda A, B: A @ B.T), At, Bt),
        "project": median_ms(jax.jit(lambda A, B: (B @ A.T) @ A), At, Bt),
    }
    return {"d": d, "k": k, "columns_ms": columns, "rows_ms": rows}


def iteration_on_the_ci_mlp() -> dict:
    config = resolve_config(
        {
            "opt": {"name": "gd", "lr": 0.06},
            "data": {"name": "synthetic-cifar10", "n": 64, "n_test": 64},
            "arch": {"name": "mlp", "width": 32},
            "steps": 1,
        }
    ).to_dict()  # the dict form: the benchmark reads its keys
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    w = problem.w0
    operator = jax.jit(lambda V: eigs.apply_operator_rows(problem.loss_fn, w, 1.0, V, chunk_size=None))
    X = eigs._jit_orthonormalize(jax.random.normal(jax.random.PRNGKey(2), (3, w.shape[0])))
    state = eigs._jit_lobpcg_start(X, operator(X), 1e-10)
    R = eigs._jit_residual(state)
    AR = operator(R)
    return {
        "d": int(w.shape[0]),
        "k": 3,
        "hvps_ms": median_ms(operator, R),
        "residual_ms": median_ms(eigs._jit_residual, state),
        "update_ms": median_ms(lambda: eigs._jit_update(state, R, AR, 1e-10)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {jax.default_backend()}",
        "layouts": [layouts(d, k) for d, k in ((99_524, 3), (99_524, 9), (1_000_000, 3))],
        "iteration_ci_mlp": iteration_on_the_ci_mlp(),
    }
    for row in result["layouts"]:
        for name in ("gram", "project"):
            columns, rows = row["columns_ms"][name], row["rows_ms"][name]
            print(
                f"d={row['d']:>9,} k={row['k']} {name:8s} columns {columns:7.3f} ms"
                f"  rows {rows:7.3f} ms  ({columns / rows:.1f}x)"
            )
    it = result["iteration_ci_mlp"]
    print(
        f"ci MLP iteration: HVPs {it['hvps_ms']:.2f} ms, residual {it['residual_ms']:.2f} ms, "
        f"update {it['update_ms']:.2f} ms"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
