"""Derivative programs of the paper-size sequence models: today's code against a baseline commit.

For each architecture at its paper size (sorting task, MSE; n = 1000, Mamba n = 250) this builds the
problem once and two losses on the same flat parameters: one from the model code of this checkout and
one from the model and derivative code of `--baseline` (read from git). It times, alternating the
two versions `--rounds` times in one process, the gradient, the 1- and 3-vector Hessian-vector
products (the eigen-solver's operator) and the 6 third-derivative pairs of k = 3, and reports XLA's
FLOP count, the median wall time, the process CPU time per call, the ratios of medians and the
share of `--peak` GFLOP/s. It also checks that the two versions agree (relative max difference,
float32). `--baseline none` times today's programs alone (their rates on another machine).

XLA's `cost_analysis` of the compiled program counts a loop body once, so it undercounts models whose
layers or time steps run in `lax.scan` (the Transformer's 4 layers, Mamba's 15 steps, the LSTM's
steps): `gflop` is that count, `gflop_unrolled` counts the same program lowered with every scan
unrolled (before XLA's optimisations; not compiled), and the GFLOP/s and share of peak use the latter.

    python bench/derivative_speed.py [--arch lstm mamba transformer] \
        [--json bench/results/derivative_speed.json]
"""

import argparse
import json
import resource
import statistics
import subprocess
import time
import types

import jax
import jax.numpy as jnp

from centralflows.problem.build import build_problem
from centralflows.runner.config import resolve_config

BASELINE = "4e9c83d"  # the commit before the speed work
PAPER_N = {"lstm": 1000, "transformer": 1000, "mamba": 250}
K = 3
PEAK = 333.0  # GFLOP/s, float32, the 2 AVX-512 cores these tables were first measured on


def unrolled_gflop(fn, *args) -> float:
    """XLA's FLOP count of `fn` lowered with every lax.scan unrolled (loop bodies counted per trip)."""
    scan = jax.lax.scan
    jax.lax.scan = lambda *a, **k: scan(*a, **{**k, "unroll": True})  # over Flax's explicit unroll=1
    try:
        cost = jax.jit(lambda *a: fn(*a)).lower(*args).cost_analysis()  # a new function: no trace cache
    finally:
        jax.lax.scan = scan
    cost = cost[0] if isinstance(cost, list) else cost
    return cost.get("flops", 0) / 1e9


def matmul_rate(n: int = 2048) -> float:
    """GFLOP/s of a large float32 matmul on this machine: what its dense kernels reach in practice."""
    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    jax.block_until_ready(f(a))
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(f(a))
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / statistics.median(times) / 1e9


def git_module(commit: str, path: str, name: str):
    """The module at `path` as of `commit` (imports resolve against this checkout)."""
    src = subprocess.run(
        ["git", "show", f"{commit}:{path}"], capture_output=True, text=True, check=True
    ).stdout
    mod = types.ModuleType(name)
    exec(compile(src, f"{commit}:{path}", "exec"), mod.__dict__)
    return mod


def programs(loss_fn, deriv):
    return {
        "grad": jax.grad(loss_fn),
        "hvp1": lambda w, V: deriv.batched_hvp(loss_fn, w, V[:, :1]),
        "hvp": lambda w, V: deriv.batched_hvp(loss_fn, w, V),
        "third": lambda w, V: deriv.third_derivative_pairs(loss_fn, w, V),
    }


def cpu_s():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def paper_problem(arch: str):
    """(config dict, problem, V): the paper-size problem of `arch` (sorting, MSE, the default init) as the
    CLI builds it, and K random unit vectors [d, K] for its derivative programs."""
    config = resolve_config(
        {
            "data": {"name": "sorting", "criterion": "mse", "n": PAPER_N[arch]},
            "arch": {"name": arch},
            "opt": {"name": "gd", "lr": 0.1},
            "steps": 1,
        }
    ).to_dict()  # the dict form: the benchmarks read its keys
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    V = jax.random.normal(jax.random.PRNGKey(0), (problem.w0.shape[0], K), problem.w0.dtype)
    return config, problem, V / jnp.linalg.norm(V, axis=0)


def measure(arch: str, baseline: str, rounds: int, repeats: int, names, peak: float) -> dict:
    config, problem, V = paper_problem(arch)
    w = problem.w0

    # the baseline: its model module (same parameters, same data) and its derivative code
    import centralflows.problem.models as models
    from centralflows.engine import derivatives
    from centralflows.problem import data, losses

    versions = {"after": programs(problem.loss_fn, derivatives)}
    if baseline != "none":
        old_model = git_module(baseline, f"src/centralflows/problem/models/{arch}.py", f"old_{arch}")
        old_deriv = git_module(baseline, "src/centralflows/engine/derivatives.py", "old_derivatives")
        ds = data.get_dataset("sorting").load(
            {**data.get_dataset("sorting").DEFAULTS, "n": PAPER_N[arch], "criterion": "mse"}
        )
        from centralflows.problem.build import arch_options

        _, options = arch_options(config["arch"])
        model_old = old_model.build(options, ds.spec)
        model_new = models.get_architecture(arch).build(options, ds.spec)
        from jax.flatten_util import ravel_pytree

        x1 = jnp.asarray(ds.x_train[:1])
        template = jax.eval_shape(model_new.init, jax.random.PRNGKey(0), x1)["params"]
        _, unravel = ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template))
        x, y = jnp.asarray(ds.x_train, jnp.int32), jnp.asarray(ds.y_train, jnp.int32)
        crit = losses.get_criterion("mse")
        loss_old = lambda w: crit.loss(model_old.apply({"params": unravel(w)}, x), y)  # noqa: E731
        assert abs(float(loss_old(w)) - float(problem.loss_fn(w))) < 1e-5, "baseline loss differs"
        versions = {"before": programs(loss_old, old_deriv), **versions}
    out = {"n_params": int(w.shape[0]), "n": PAPER_N[arch]}
    for name in names:
        args = (w,) if name == "grad" else (w, V)
        row, results = {}, {}
        for version, progs in versions.items():
            t0 = time.perf_counter()
            compiled = jax.jit(progs[name]).lower(*args).compile()
            cost = compiled.cost_analysis()
            cost = cost[0] if isinstance(cost, list) else cost
            row[version] = {
                "compile_s": time.perf_counter() - t0,
                "gflop": cost.get("flops", 0) / 1e9,
                "gflop_unrolled": unrolled_gflop(progs[name], *args),
                "wall": [],
                "cpu": [],
            }
            results[version] = jax.block_until_ready(compiled(*args))
            progs[name] = compiled
        for _ in range(rounds):
            for version, progs in versions.items():
                for _ in range(repeats):
                    t0, c0 = time.perf_counter(), cpu_s()
                    jax.block_until_ready(progs[name](*args))
                    row[version]["wall"].append(time.perf_counter() - t0)
                    row[version]["cpu"].append(cpu_s() - c0)
        for version in versions:
            r = row[version]
            r["wall_s"], r["cpu_s"] = statistics.median(r.pop("wall")), statistics.median(r.pop("cpu"))
            r["gflop_per_s"] = r["gflop_unrolled"] / r["wall_s"]
            r["share_of_peak"] = r["gflop_per_s"] / peak
        out[name] = row
        a = row["after"]
        line = (
            f"{arch:11s} {name:5s} {a['wall_s'] * 1e3:8.1f} ms wall, {a['cpu_s'] * 1e3:8.1f} ms CPU"
            f" ({a['gflop_unrolled']:6.2f} GFLOP, {a['gflop_per_s']:5.1f} GFLOP/s, {a['share_of_peak']:.1%})"
        )
        if "before" in versions:
            b = results["before"]
            row["rel_diff"] = float(jnp.max(jnp.abs(results["after"] - b)) / jnp.max(jnp.abs(b)))
            row["wall_ratio"] = row["before"]["wall_s"] / a["wall_s"]
            row["cpu_ratio"] = row["before"]["cpu_s"] / a["cpu_s"]
            line += (
                f"; before {row['before']['wall_s'] * 1e3:8.1f} ms wall: x{row['wall_ratio']:.2f} wall,"
                f" x{row['cpu_ratio']:.2f} CPU, rel diff {row['rel_diff']:.1e}"
            )
        print(line, flush=True)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", nargs="+", default=["lstm", "mamba", "transformer"])
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--programs", nargs="+", default=["grad", "hvp1", "hvp", "third"])
    parser.add_argument("--peak", type=float, default=PEAK, help="GFLOP/s the share of peak is taken of")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    results = {"baseline": args.baseline, "peak_gflop_per_s": args.peak, "matmul_gflop_per_s": matmul_rate()}
    print(f"float32 matmul 2048^2: {results['matmul_gflop_per_s']:.1f} GFLOP/s (peak taken: {args.peak})")
    for arch in args.arch:
        results[arch] = measure(arch, args.baseline, args.rounds, args.repeats, args.programs, args.peak)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
