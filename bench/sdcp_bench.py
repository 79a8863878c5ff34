"""Median wall time of `solve_sdcp` per k after compilation, float32 and float64.

python bench/sdcp_bench.py [--repeats 50]
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.sdcp import beta_tensor, sdcp_residuals, solve_sdcp, solve_sdcp_with_info


def random_instance(rng, k):
    """α indefinite (some unstable directions), β a well-conditioned Gram operator, as in the GD flow."""
    m = k * (k + 1) // 2
    A = rng.standard_normal((k, k))
    G = rng.standard_normal((m, 3 * m))
    return (A + A.T) / 2 - 0.3 * np.eye(k), np.asarray(beta_tensor(jnp.asarray(G @ G.T / (3 * m))))


def sdcp_timings(ks=range(1, 9), repeats=50, dtype=jnp.float32, seed=0):
    """{k: (median ms, mean Newton iterations, worst KKT residual)} over `repeats` random instances."""
    rng = np.random.default_rng(seed)
    solve = jax.jit(solve_sdcp)
    info_fn = jax.jit(solve_sdcp_with_info)
    out = {}
    for k in ks:
        cases = [tuple(jnp.asarray(z, dtype) for z in random_instance(rng, k)) for _ in range(repeats)]
        solve(*cases[0]).block_until_ready()  # compile
        times = []
        for alpha, beta in cases:
            t0 = time.perf_counter()
            solve(alpha, beta).block_until_ready()
            times.append(time.perf_counter() - t0)
        iters = [int(info_fn(a, b)[1]["iterations"]) for a, b in cases]
        kkt = max(float(v) for a, b in cases for v in sdcp_residuals(a, b, solve(a, b)).values())
        out[k] = (1e3 * float(np.median(times)), float(np.mean(iters)), kkt)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    for dtype in (jnp.float32, jnp.float64):
        print(f"{jnp.dtype(dtype).name}:  k  median ms  Newton its  worst KKT")
        for k, (ms, its, kkt) in sdcp_timings(repeats=args.repeats, dtype=dtype).items():
            print(f"          {k:2d}  {ms:9.3f}  {its:10.2f}  {kkt:9.1e}")


if __name__ == "__main__":
    main()
