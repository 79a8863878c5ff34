"""Short GD runs of a paper sequence network at several learning rates: when does the sharpness reach 2/eta?

    nice -n 5 python bench/sequence_lr.py --arch lstm --rule [--lrs 0.3] [--criterion ce] [--steps 500]

Builds the paper problem through the package exactly as the CLI does (the run config of
`opt:gd data:sorting arch:<arch> --data.n <n> --data.criterion <criterion> --opt.lr <eta>`, resolved by
`centralflows.runner.cli.parse_args`, then `build_problem`; n = 1000, 250 for Mamba, REFERENCE §2.5;
paper widths, the authors' torch init, float32), takes plain GD steps w <- w - eta * grad L(w) with the
jitted gradient, and every `--every` steps computes the top Hessian eigenvalue lambda_1 with the
project's warm-started LOBPCG (centralflows.engine.eigs.EigTracker, k = `--k`). lambda_1 at the
initial weights is solved once per network and its vectors warm-start every eta's run. `--rule` runs
the pair the sequence learning-rate rule picks from lambda_1(0) (`rule_pair`; docs/design.md).

A run stops at `--steps`, on divergence (a non-finite loss, or a loss above 10x the initial one), or
`--hold` checks after S_eff = eta * lambda_1 first reaches 2. Each (network, criterion, eta) is written
to the JSON file as soon as a check is made (a lock file serialises two processes writing it):
lambda_1(0), S_eff(0), the step at which S_eff first reaches 2 (null if not by the last step run), the
checks (step, loss, lambda_1, S_eff, LOBPCG HVPs, wall seconds), divergence, the loss at start/end and
the wall time, with the machine's load average.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER_N = {"lstm": 1000, "transformer": 1000, "mamba": 250}  # REFERENCE §2.5


def record(path: Path, key: str, entry: dict):
    """Writes `entry` under `key` of the JSON file at `path`, read-modify-write under a lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = json.loads(path.read_text()) if path.exists() else {}
        results.setdefault("runs", {})[key] = entry
        results["runs"] = dict(sorted(results["runs"].items()))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(results, indent=1) + "\n")
        tmp.replace(path)


def rule_pair(lambda1_0: float, s_max: float = 1.5) -> tuple[float, float]:
    """The sequence learning-rate rule (docs/design.md): eta_hi is the largest rate of one significant
    digit (d * 10^k) that starts at S_eff(0) = eta * lambda_1(0) <= s_max; eta_lo = eta_hi / 2."""
    x = s_max / lambda1_0
    k = math.floor(math.log10(x))
    d = math.floor(round(x / 10**k, 9))
    if d == 10:
        d, k = 1, k + 1
    eta_hi = float(f"{d}e{k}")
    return eta_hi / 2, eta_hi


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", required=True, choices=sorted(PAPER_N))
    parser.add_argument("--lrs", type=float, nargs="*", default=[], help="learning rates to run")
    parser.add_argument("--rule", action="store_true", help="also run the pair of rule_pair(lambda_1(0))")
    parser.add_argument("--criterion", default="mse", choices=["mse", "ce"])
    parser.add_argument("--n", type=int, help="training examples (default: the paper's)")
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--every", type=int, default=20, help="steps between eigen-solves")
    parser.add_argument("--hold", type=int, default=3, help="checks to continue after S_eff first reaches 2")
    parser.add_argument("--k", type=int, default=1, help="eigenpairs LOBPCG tracks")
    parser.add_argument("--tol", type=float, default=1e-8, help="LOBPCG tolerance (engine default 1e-10)")
    parser.add_argument("--max-wall", type=float, default=1e9, help="stop one eta's run after this many s")
    parser.add_argument("--json", type=Path, default=ROOT / "bench/results/sequence_lr.json")
    args = parser.parse_args()

    import jax
    import jax.numpy as jnp

    from centralflows.engine.eigs import EigConfig, EigTracker
    from centralflows.problem.build import build_problem
    from centralflows.runner.cli import parse_args

    n = args.n or PAPER_N[args.arch]

    def run_config(lr):
        argv = ["opt:gd", "data:sorting", f"arch:{args.arch}", "--data.n", str(n)]
        return parse_args([*argv, "--data.criterion", args.criterion, "--opt.lr", str(lr)])

    config = run_config(0.1)
    t0 = time.perf_counter()
    problem = build_problem(
        config.data.component(), config.arch.component(), config.seed, config.init, jnp.float32
    )  # the data and weights do not depend on eta
    value_and_grad = jax.jit(jax.value_and_grad(problem.loss_fn))
    eig_config = EigConfig(frequency=1, track_threshold=None, initial_k=args.k, tol=args.tol, max_iter=200)
    tracker = EigTracker(problem.loss_fn, eig_config, problem.n_params, jnp.float32, seed=config["seed"])

    def solve(w):
        start, hvps = time.perf_counter(), tracker.hvps
        theta, _ = tracker.update(w, 1.0, full=True)
        return float(theta[0]), tracker.hvps - hvps, time.perf_counter() - start

    w0 = problem.w0
    loss0, g = value_and_grad(w0)
    loss0 = float(loss0)
    t_grad = time.perf_counter()
    for _ in range(3):
        jax.block_until_ready(value_and_grad(w0))
    grad_s = (time.perf_counter() - t_grad) / 3
    lam0, hvps0, solve0_s = solve(w0)  # cold: from random vectors (compiles the HVP too)
    V0, theta0, key0 = tracker.V, tracker.theta, tracker.key
    t_hvp = time.perf_counter()
    lam0_again, hvps_again, _ = solve(w0)  # warm: a measure of one HVP's cost
    hvp_s = (time.perf_counter() - t_hvp) / max(hvps_again, 1)
    setup = {
        "build_and_first_solve_s": time.perf_counter() - t0,
        "grad_s": grad_s,
        "hvp_s_warm_solve": hvp_s,
        "cold_solve": {"hvps": hvps0, "s": solve0_s},
        "lambda1_0_warm_resolve": lam0_again,
    }
    print(f"{args.arch} {args.criterion} n={n}: lambda1(0)={lam0:.4f} loss0={loss0:.5f} {setup}", flush=True)

    lrs = [*(rule_pair(lam0) if args.rule else ()), *args.lrs]
    setup["rule_pair"] = list(rule_pair(lam0))
    print(f"rule pair {setup['rule_pair']}; running {lrs}", flush=True)
    for lr in lrs:
        assert run_config(lr)["arch"] == config["arch"] and run_config(lr)["data"] == config["data"]
        key = f"{args.arch}/{args.criterion}/lr{lr:g}"
        tracker.V, tracker.theta, tracker.key = V0, theta0, key0
        entry = {
            "arch": args.arch,
            "criterion": args.criterion,
            "n": n,
            "lr": lr,
            "n_params": int(problem.n_params),
            "config": {k: run_config(lr)[k] for k in ("opt", "data", "arch", "seed", "init", "dtype")},
            "eig": {"k": args.k, "tol": args.tol, "every": args.every},
            "setup": setup,
            "lambda1_0": lam0,
            "s_eff_0": lr * lam0,
            "edge_step": None,
            "diverged": False,
            "loss_start": loss0,
            "checks": [{"step": 0, "loss": loss0, "lambda1": lam0, "s_eff": lr * lam0, "hvps": hvps0}],
            "loadavg_start": list(os.getloadavg()),
        }
        start, w, after_edge, step = time.perf_counter(), w0, 0, 0
        stop = None
        while stop is None:
            loss, g = value_and_grad(w)
            loss = float(loss)
            if not math.isfinite(loss) or loss > 10 * loss0:
                entry["diverged"], stop = True, f"diverged at step {step} (loss {loss})"
                entry["checks"].append({"step": step, "loss": loss})
                break
            if step > 0 and step % args.every == 0:
                lam, hvps, secs = solve(w)
                s_eff = lr * lam
                entry["checks"].append(
                    {"step": step, "loss": loss, "lambda1": lam, "s_eff": s_eff, "hvps": hvps, "s": secs}
                )
                if entry["edge_step"] is None and s_eff >= 2:
                    entry["edge_step"] = step
                after_edge += entry["edge_step"] is not None
                entry.update(
                    loss_end=loss, steps_run=step, wall_s=time.perf_counter() - start,
                    loadavg_end=list(os.getloadavg()),
                )  # fmt: skip
                record(args.json, key, entry)
                print(f"{key} step {step}: loss {loss:.5f} S_eff {s_eff:.3f} ({hvps} HVPs, {secs:.1f} s)")
                if after_edge > args.hold:
                    stop = f"S_eff reached 2 at step {entry['edge_step']}, then {args.hold} more checks"
                elif time.perf_counter() - start > args.max_wall:
                    stop = f"wall budget {args.max_wall:g} s spent"
            if step >= args.steps:
                stop = stop or f"{args.steps} steps"
            if stop is None:
                w = w - lr * g
                step += 1
        post = [c["s_eff"] for c in entry["checks"] if entry["edge_step"] and c["step"] > entry["edge_step"]]
        entry.update(
            stop=stop, loss_end=loss, steps_run=step, wall_s=time.perf_counter() - start,
            s_eff_after_edge=post, s_eff_max=max(c.get("s_eff", 0) for c in entry["checks"]),
            loadavg_end=list(os.getloadavg()),
        )  # fmt: skip
        record(args.json, key, entry)
        print(f"{key}: {stop}; {entry['wall_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
