"""The eigenvalues a paper run logged, checked by an independent solver at its checkpoints.

For each checkpoint of a run (the state at the start of step N) and each of its processes, the top
Hessian eigenvalues at the process's weights by ARPACK's Lanczos (scipy `eigsh`, from a random start,
no warm start, two more than the run tracked, the Hessian-vector product in float32 as the run's),
against the eigenvalues the run logged at step N (its `hessian_eigs` row, from its LOBPCG warm-started
at the tracked eigenvectors). It answers two questions the run cannot answer about itself: are the
logged eigenvalues the Hessian's (relative difference), and are they its top ones (an eigenvalue
that rose outside the tracked span would show as an ARPACK eigenvalue above the smallest logged one
with no logged partner).

    python bench/eigs_paper_check.py results/paper/runs/lstm-gd-lr0.35-sorting-597bb36c \\
        --steps 250 302 --json bench/results/eigs_paper_check_lstm_lr0.35.json
"""

import argparse
import json
import resource
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.sparse.linalg import LinearOperator, eigsh

from centralflows.analysis.long_run import run_file
from centralflows.engine.derivatives import hvp
from centralflows.problem.build import build_problem
from centralflows.runner.checkpoint import load_checkpoint
from centralflows.runner.config import resolve_config
from centralflows.runner.io import open_for_reading

PROCESSES = ("discrete", "central", "stable")


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def top_eigenvalues(loss_fn, w: np.ndarray, k: int, tol: float, seed: int = 0) -> tuple[np.ndarray, int]:
    """The k largest Hessian eigenvalues at w (descending) and the Hessian-vector products spent."""
    product = jax.jit(lambda v: hvp(loss_fn, jnp.asarray(w), v))
    calls = 0

    def matvec(v):
        nonlocal calls
        calls += 1
        return np.asarray(product(jnp.asarray(np.ravel(v), dtype=jnp.float32)), dtype=np.float64)

    op = LinearOperator((w.size, w.size), matvec=matvec, dtype=np.float64)
    v0 = np.random.default_rng(seed).standard_normal(w.size)
    values = eigsh(op, k=k, which="LA", tol=tol, v0=v0, ncv=max(2 * k + 1, 24), return_eigenvectors=False)
    return np.sort(values)[::-1], calls


def logged_row(run: Path, step: int) -> dict[str, np.ndarray]:
    """The run's logged `hessian_eigs` of each process at `step` (NaN-free, descending)."""
    with open_for_reading(run_file(run)) as f:
        rows = np.flatnonzero(np.asarray(f["step"][()]) == step)
        if not len(rows):
            raise SystemExit(f"{run}: no logged row at step {step}")
        out = {}
        for process in PROCESSES:
            key = f"{process}/hessian_eigs"
            if key in f:
                values = np.asarray(f[key][rows[0]])
                out[process] = np.sort(values[np.isfinite(values)])[::-1]
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", type=Path, help="a run folder with checkpoints and its HDF5 file")
    ap.add_argument("--steps", type=int, nargs="+", required=True, help="checkpoint steps to check")
    ap.add_argument("--processes", nargs="+", default=["discrete", "central"], choices=PROCESSES)
    ap.add_argument("--tol", type=float, default=1e-6, help="ARPACK's relative tolerance")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rows, problem = [], None
    for step in args.steps:
        tree, meta = load_checkpoint(args.run / "checkpoints" / f"checkpoint_{step}.npz")
        config = resolve_config(meta["config"])
        if problem is None:
            problem = build_problem(
                config.data.component(), config.arch.component(), config.seed, config.init
            )
        logged = logged_row(args.run, step)
        for process in args.processes:
            w = np.asarray(tree["processes"][process]["w"], dtype=np.float32)
            mine = logged[process]
            c0 = cpu_s()
            values, calls = top_eigenvalues(problem.loss_fn, w, len(mine) + 2, args.tol)
            matched = values[: len(mine)]
            row = {
                "step": step,
                "process": process,
                "logged": mine.tolist(),
                "arpack": values.tolist(),
                "max_rel_diff": float(np.max(np.abs(matched - mine)) / abs(values[0])),
                # eigenvalues at or above the smallest logged one beyond the run's count: not tracked
                "missed_above_tracked": int(np.sum(values >= mine[-1] - 1e-4 * values[0]) - len(mine)),
                "eta_top": float(config.opt.lr * values[0]),
                "hvps": calls,
                "cpu_s": cpu_s() - c0,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        out = {"run": str(args.run), "tol": args.tol, "rows": rows}
        args.json.write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
