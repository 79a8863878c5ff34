"""An eigen-solve's Hessian-vector products with the gradient linearised once per solve.

LOBPCG applies H(w) to blocks of vectors several times at one w. Each application today
(`derivatives.batched_hvp`, forward-over-reverse) recomputes the gradient's primal pass; with
`jax.linearize` that pass runs once per solve and every application reuses its stored residuals.
For each paper-size sequence model (sorting, MSE; n = 1000, Mamba n = 250) this times, alternated
`--rounds` times in one process, one solve's worth of `--calls` 3-vector applications both ways
(the linearised way including its linearisation), and reports the ratio, the residuals' size and the
largest relative difference of the products.

    python bench/linearize_once.py [--arch lstm mamba transformer] [--calls 5] [--json FILE]
"""

import argparse
import json
import statistics
import time

import jax
import jax.numpy as jnp
from derivative_speed import PAPER_N, K, cpu_s, paper_problem

from centralflows.engine.derivatives import batched_hvp


def measure(arch: str, calls: int, rounds: int) -> dict:
    _, problem, V = paper_problem(arch)
    w, loss_fn = problem.w0, problem.loss_fn

    hvp = jax.jit(lambda w, V: batched_hvp(loss_fn, w, V))
    # the linear map comes back from jit as a pytree (its residuals the leaves): one compile per shape
    linearize = jax.jit(lambda w: jax.linearize(jax.grad(loss_fn), w)[1])
    apply = jax.jit(lambda lin, V: jax.vmap(lin, in_axes=1, out_axes=1)(V))

    direct = jax.block_until_ready(hvp(w, V))
    lin = linearize(w)
    reused = jax.block_until_ready(apply(lin, V))
    residual_mb = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(lin)) / 1e6

    def solve_direct():
        for _ in range(calls):
            jax.block_until_ready(hvp(w, V))

    def solve_linearized():
        lin = linearize(w)
        for _ in range(calls):
            jax.block_until_ready(apply(lin, V))

    times = {"direct": {"wall": [], "cpu": []}, "linearized": {"wall": [], "cpu": []}}
    for _ in range(rounds):
        for name, solve in (("direct", solve_direct), ("linearized", solve_linearized)):
            t0, c0 = time.perf_counter(), cpu_s()
            solve()
            times[name]["wall"].append(time.perf_counter() - t0)
            times[name]["cpu"].append(cpu_s() - c0)
    out = {"n": PAPER_N[arch], "calls": calls, "vectors": K, "residual_mb": residual_mb}
    for name, t in times.items():
        out[name] = {"wall_s": statistics.median(t["wall"]), "cpu_s": statistics.median(t["cpu"])}
    out["wall_ratio"] = out["direct"]["wall_s"] / out["linearized"]["wall_s"]
    out["cpu_ratio"] = out["direct"]["cpu_s"] / out["linearized"]["cpu_s"]
    out["rel_diff"] = float(jnp.max(jnp.abs(reused - direct)) / jnp.max(jnp.abs(direct)))
    print(
        f"{arch:11s} {calls} calls: direct {out['direct']['wall_s']:.2f} s, linearised "
        f"{out['linearized']['wall_s']:.2f} s wall (x{out['wall_ratio']:.2f} wall, "
        f"x{out['cpu_ratio']:.2f} CPU); "
        f"residuals {residual_mb:.0f} MB; rel diff {out['rel_diff']:.1e}",
        flush=True,
    )
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["lstm", "mamba", "transformer"])
    parser.add_argument("--calls", type=int, default=5, help="operator applications per solve")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {arch: measure(arch, args.calls, args.rounds) for arch in args.arch}
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
