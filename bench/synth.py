"""The `synth` benchmark of shared/BENCHMARK.md: cost and accuracy of the engine on one CPU run.

    python bench/synth.py --json bench/results/synth.json [--steps 200]

Runs GD (η = 0.2) with discrete (eigen-tracking every step), stable and central processes in
lockstep on the synthetic CIFAR-shaped problem, and reports per-step wall time, Hessian-vector
products, SDCP solve time, prediction accuracy, peak memory and compile time.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.processes import CentralFlow, Discrete, StableFlow
from centralflows.engine.sdcp import solve_sdcp


def synth_problem():
    """Data, model and loss exactly as BENCHMARK.md (numpy PCG64 draws in float64, cast to float32)."""
    rng = np.random.default_rng(0)
    Z = rng.standard_normal((1000, 32))
    M = rng.standard_normal((32, 3072)) / np.sqrt(32)
    N = rng.standard_normal((1000, 3072))
    X = (Z @ M + 0.1 * N).astype(np.float32)
    T = rng.standard_normal((32, 4))
    Y = np.eye(4)[np.argmax(Z @ T, axis=1)].astype(np.float32)
    sizes = [(3072, 32), (32, 32), (32, 4)]
    init = np.random.default_rng(1)
    parts = []
    for fan_in, fan_out in sizes:
        bound = 1 / np.sqrt(fan_in)
        parts.append(init.uniform(-bound, bound, size=(fan_in, fan_out)).ravel())
        parts.append(init.uniform(-bound, bound, size=fan_out))
    w0 = jnp.asarray(np.concatenate(parts).astype(np.float32))
    X, Y = jnp.asarray(X), jnp.asarray(Y)

    def forward(w):
        z, offset = X, 0
        for layer, (a, b) in enumerate(sizes):
            W = w[offset : offset + a * b].reshape(a, b)
            bias = w[offset + a * b : offset + a * b + b]
            offset += a * b + b
            z = z @ W + bias
            if layer < 2:
                z = jax.nn.gelu(z, approximate=False)
        return z

    def loss_fn(w):
        return 0.5 * jnp.mean(jnp.sum((forward(w) - Y) ** 2, axis=1))

    zero = lambda w: jnp.zeros((), w.dtype)
    checks = {
        "sum_X": float(np.sum(np.asarray(X, np.float64))),
        "sum_w0": float(np.sum(np.asarray(w0, np.float64))),
    }
    problem = SimpleNamespace(
        dataset="synth", arch="mlp-32", w0=w0, loss_fn=loss_fn, n_params=int(w0.shape[0]),
        train_metrics=lambda w: {"loss": loss_fn(w), "acc": zero(w)},
        test_metrics=lambda w: {"loss": loss_fn(w), "acc": zero(w)},
        train_outputs=lambda w: forward(w)[:10], test_outputs=lambda w: forward(w)[:10],
    )  # fmt: skip
    return problem, checks


def moving_average(x, window=21):
    """Centred moving average; NaN where the window does not fit."""
    out = np.full(len(x), np.nan)
    half = window // 2
    c = np.convolve(x, np.ones(window) / window, mode="valid")
    out[half : half + len(c)] = c
    return out


def sdcp_timings(repeats=50, solver=solve_sdcp):
    """Median wall time (ms) of solve_sdcp for k = 1..8 on random instances with active constraints."""
    rng = np.random.default_rng(0)
    solve = jax.jit(solver)
    out = {}
    for k in range(1, 9):
        times = []
        for r in range(repeats + 1):
            A = rng.standard_normal((k, k))
            alpha = jnp.asarray((A + A.T) / 2, jnp.float32)
            G = rng.standard_normal((k * k, 3 * k * k))
            B = (G @ G.T / (3 * k * k)).reshape(k, k, k, k)
            B = (B + B.transpose(1, 0, 2, 3)) / 2
            B = (B + B.transpose(0, 1, 3, 2)) / 2
            beta = jnp.asarray(B, jnp.float32)
            t0 = time.perf_counter()
            solve(alpha, beta).block_until_ready()
            if r:  # the first call compiles
                times.append(time.perf_counter() - t0)
        out[str(k)] = 1e3 * float(np.median(times))
    return out


def sdcp_statistics(sdcp: dict) -> dict:
    """Iterations and residuals of the central flow's SDCP solves that needed Newton iterations.

    (k_c = 0 solves nothing; k_c = 1 is often solved exactly by the warm start, 0 Newton iterations.)
    """
    its, res = np.array(sdcp["iterations"]), np.array(sdcp["residual"])
    active = its > 0
    out = {
        "solves": len(its),
        "newton": int(active.sum()),
        "unconverged": int(np.sum(~np.array(sdcp["converged"], bool))),
    }
    if active.any():
        out.update(
            iterations_mean=float(its[active].mean()), iterations_max=int(its[active].max()),
            residual_median=float(np.median(res[active])), residual_max=float(res[active].max()),
        )  # fmt: skip
    return out


def _load_solver(path: Path):
    spec = importlib.util.spec_from_file_location("sdcp_compared", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.solve_sdcp


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", type=Path, help="write the results to this JSON file")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--compare-sdcp", type=Path, help="also time the solve_sdcp of this sdcp.py file")
    parser.add_argument("--between-solves", default="lobpcg", choices=("lobpcg", "quotients", "extrapolate"),
                        help="the eigen-tracker's update between solves (eig.between_solves)")  # fmt: skip
    parser.add_argument("--third-every", default="substep", choices=("substep", "step", "extrapolate"),
                        help="the central flow's third derivatives (central.third_every)")  # fmt: skip
    parser.add_argument("--lock", action=argparse.BooleanOptionalAction, default=False,
                        help="LOBPCG's soft locking (eig.lock)")  # fmt: skip
    args = parser.parse_args(argv)

    problem, checks = synth_problem()
    opt = make_optimizer("gd", 0.2)
    kern = Compiled(problem, opt)
    s0 = opt.init_state(problem.w0)
    eig = EigConfig(
        frequency=1,
        track_threshold=1.5,
        initial_k=1,
        max_k=10,
        between_solves=args.between_solves,
        lock=args.lock,
    )
    procs = {
        "discrete": Discrete(kern, problem.w0, s0, eig),
        "stable": StableFlow(kern, problem.w0, s0, eig),
        "central": CentralFlow(kern, problem.w0, s0, eig, third_every=args.third_every),
    }
    times = {name: [] for name in procs}
    hvps = {name: [] for name in procs}
    third = []
    sdcp = {"iterations": [], "residual": [], "converged": []}  # per central substep
    logs = {"disc_loss": [], "pred_loss": [], "central_top": [], "disc_top": [], "k_c": []}
    t_start = time.perf_counter()
    first_step = None
    for step in range(args.steps):
        for name, p in procs.items():
            h0, t0_third = p.eigs.hvps, getattr(p, "third_derivatives", 0)
            t0 = time.perf_counter()
            measured = p.measure()
            out = measured.logs
            step_logs = p.step(measured)
            jax.block_until_ready(p.w)
            times[name].append(time.perf_counter() - t0)
            hvps[name].append(p.eigs.hvps - h0)
            if name == "central":
                third.append(p.third_derivatives - t0_third)
                for key, value in step_logs.items():
                    sdcp[key.removeprefix("flow_aux/sdcp_")].extend(np.asarray(value).tolist())
            if name == "discrete":
                logs["disc_loss"].append(float(out["train_loss"]))
                logs["disc_top"].append(float(out["effective_hessian_eigs"][0]))
            elif name == "central":
                logs["pred_loss"].append(float(out["predicted_loss"]))
                logs["central_top"].append(float(out["effective_hessian_eigs"][0]))
                logs["k_c"].append(int(np.asarray(out["flow_aux/X"]).shape[0]))
        if first_step is None:
            first_step = time.perf_counter() - t_start
        if step % 20 == 0:
            print(f"step {step:4d}  loss {logs['disc_loss'][-1]:.5f}  S_eff disc {logs['disc_top'][-1]:.3f}"
                  f"  central {logs['central_top'][-1]:.4f}", file=sys.stderr, flush=True)  # fmt: skip

    disc_top = np.array(logs["disc_top"])
    central_top = np.array(logs["central_top"])
    onset = int(np.argmax(central_top >= 1.999)) if np.any(central_top >= 1.999) else None
    edge = [i for i in range(args.steps) if onset is not None and i >= onset]
    ma = moving_average(np.array(logs["disc_loss"]))
    pred = np.array(logs["pred_loss"])
    sel = np.arange(len(ma)) >= 150
    sel &= ~np.isnan(ma)
    result = {
        "problem": {"n_params": problem.n_params, **checks, "initial_loss": logs["disc_loss"][0]},
        "median_step_ms": {name: 1e3 * float(np.median(t[1:])) for name, t in times.items()},
        "hvp_per_step_edge": {
            name: float(np.mean([hvps[name][i] for i in edge])) if edge else None
            for name in ("discrete", "central")
        },  # fmt: skip
        "third_derivatives_per_central_step_edge": float(np.mean([third[i] for i in edge])) if edge else None,
        "sdcp_median_ms": sdcp_timings(),
        "sdcp_solves": sdcp_statistics(sdcp),
        "prediction_error_from_150": float(np.mean(np.abs(pred[sel] - ma[sel]) / ma[sel]))
        if sel.any()
        else None,
        "central_onset_step": onset,
        "discrete_crosses_2_step": int(np.argmax(disc_top >= 2)) if np.any(disc_top >= 2) else None,
        "central_top_eig_range_after_onset": [float(central_top[edge].min()), float(central_top[edge].max())]
        if edge
        else None,
        "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "compile_and_first_step_s": first_step,
        "total_s": time.perf_counter() - t_start,
        "central_third_derivatives_total": procs["central"].third_derivatives,
        "device": str(jax.devices()[0]),
        "between_solves": args.between_solves,
        "third_every": args.third_every,
        "lock": args.lock,
        "per_step": {  # the central top effective eigenvalue and k_c, the discrete and predicted losses
            "central_top": central_top.tolist(),
            "k_c": logs["k_c"],
            "discrete_loss": logs["disc_loss"],
            "predicted_loss": logs["pred_loss"],
        },
    }
    if args.compare_sdcp:  # the same instances, same process and load: a ratio robust to a busy machine
        before = sdcp_timings(solver=_load_solver(args.compare_sdcp))
        result["sdcp_median_ms_before"] = before
        result["sdcp_median_ms_ratio_after_before"] = {
            k: result["sdcp_median_ms"][k] / before[k] for k in before
        }
    result["median_step_ms"]["central/discrete"] = (
        result["median_step_ms"]["central"] / result["median_step_ms"]["discrete"]
    )
    for key, value in result.items():
        print(f"{key:40s} {json.dumps(value)}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
