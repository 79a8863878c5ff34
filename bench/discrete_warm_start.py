"""The discrete process's eigen-solves at the edge, warm-started from the last solve or from the one before.

    python bench/discrete_warm_start.py --json bench/results/discrete_warm_start.json [--steps 200]

GD (η = 0.2) on the `synth` problem (bench/synth.py), eigen-tracking every step, once with
`eig.warm_start: last` (the authors') and once with `two_back`, alternating nothing else: the
trajectories are identical (GD does not read its eigenpairs), so the two differ only in the solver.
Reports HVPs and LOBPCG iterations per step after the discrete process reaches the edge, and the
largest difference between the two runs' eigenvalues.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from synth import synth_problem  # noqa: E402

from centralflows.engine.compiled import Compiled  # noqa: E402
from centralflows.engine.eigs import EigConfig  # noqa: E402
from centralflows.engine.optimizers import make_optimizer  # noqa: E402
from centralflows.engine.processes import Discrete  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)
    problem, _ = synth_problem()
    opt = make_optimizer("gd", 0.2)
    kernels = Compiled(problem, opt)
    runs = {}
    for warm_start in ("last", "two_back"):
        p = Discrete(
            kernels, problem.w0, opt.init_state(problem.w0), EigConfig(frequency=1, warm_start=warm_start)
        )
        hvps, ks, tops, times = [], [], [], []
        for _ in range(args.steps):
            h0, t0 = p.eigs.hvps, time.perf_counter()
            measured = p.measure()
            out = measured.logs
            p.step(measured)
            jax.block_until_ready(p.w)
            times.append(time.perf_counter() - t0)
            hvps.append(p.eigs.hvps - h0)
            ks.append(p.eigs.k)
            tops.append(np.asarray(out["effective_hessian_eigs"]))
        runs[warm_start] = dict(hvps=np.array(hvps), k=np.array(ks), tops=tops, times=np.array(times))
    last = runs["last"]
    edge = int(np.argmax([t[0] >= 2 for t in last["tops"]]))  # first step at the edge
    result = {"steps": args.steps, "edge_step": edge}
    for name, r in runs.items():
        k = r["k"][edge:]
        result[name] = {
            "hvps_per_step_edge": float(r["hvps"][edge:].mean()),
            # a full solve costs k(1 + iterations) HVPs (k constant within a step here)
            "lobpcg_iterations_per_step_edge": float((r["hvps"][edge:] / k - 1).mean()),
            "median_step_ms_edge": 1e3 * float(np.median(r["times"][edge:])),
        }
    result["hvp_ratio_two_back_over_last"] = (
        result["two_back"]["hvps_per_step_edge"] / result["last"]["hvps_per_step_edge"]
    )
    result["max_abs_eig_difference"] = float(
        max(
            np.max(np.abs(a - b))
            for a, b in zip(last["tops"], runs["two_back"]["tops"], strict=True)
            if a.shape == b.shape
        )
    )
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
