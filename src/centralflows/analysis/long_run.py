"""What only a long run shows, read from its file while it runs or after: the onset, how many
eigenvalues reach the edge and when, how closely the central flow holds the edge, the prediction
error over time, and what the solvers spent (SDCP iterations, unconverged solves, substep splits,
Hessian-vector products per step).

    python -m centralflows.analysis.long_run results/paper/runs/*/ [--window 100] [--figure-dir DIR]
        [--scale paper [--figures W1.11 W1.29]]

prints a Markdown report (a table per run, one row per window of steps) and, with `--figure-dir`,
draws `<run id>.png` for each run. A run still in progress is read from its `data.partial.hdf5`.
With `--scale` (run from the repository root) it also evaluates the scale's claims on the cells
these runs compute and draws the named figures of the scale from them, on the steps logged so far
(`centralflows.analysis.in_progress`): provisional, until `check` and the workflow's figures read
the completed runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from centralflows.analysis import in_progress
from centralflows.analysis.contract import ContractError
from centralflows.analysis.onset import CENTRAL_AT_EOS, EOS, central_edge_entry, eos_onset
from centralflows.analysis.read import logged_rows, moving_average
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config
from centralflows.runner.attempts import attempt_totals, read_attempts
from centralflows.runner.io import open_for_reading

# the quantities read per process (dataset path -> column); missing ones are left out
_READS = {
    "train_loss": "loss",
    "predicted_loss": "predicted_loss",
    "grad_norm_sq": "grad_norm_sq",
    "predicted_grad_norm_sq": "predicted_grad_norm_sq",
    "effective_hessian_eigs": "eff_eigs",
    "substeps": "substeps",
    "eig_logs/hvps": "hvps",
    "eig_logs/third_derivatives": "third",
    "eig_logs/k": "k",
    "eig_logs/k_capped": "k_capped",
    "flow_aux/sdcp_iterations": "sdcp_iterations",
    "flow_aux/sdcp_converged": "sdcp_converged",
    "times/step": "step_s",
    "times/measure": "measure_s",
}
# counters logged as running totals (eig_logs/*)
_COUNTERS = ("hvps", "third")


def run_file(run: Path) -> Path:
    """The run's finished file, else the one it is writing."""
    run = Path(run)
    if run.is_file():
        return run
    for name in ("data.hdf5", "data.partial.hdf5"):
        if (run / name).exists():
            return run / name
    raise FileNotFoundError(f"{run}: no data.hdf5 or data.partial.hdf5")


def read_long_run(path: Path) -> tuple[dict[str, dict[str, np.ndarray]], np.ndarray, dict]:
    """({process: {column: array over steps}}, steps, root attributes) of one run file."""
    with open_for_reading(path) as f:
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        found = {
            (process, col): f[process][key]
            for process in ("discrete", "central", "stable") if process in f
            for key, col in _READS.items() if key in f[process]
        }  # fmt: skip
        n = logged_rows(f, list(found.values()))
        steps = np.asarray(f["step"][:n])
        data = {}
        for (process, col), dataset in found.items():
            data.setdefault(process, {})[col] = np.asarray(dataset[:n])
    for d in data.values():  # the solvers' counters are totals since the start: per step here
        for col in _COUNTERS:
            if col in d:
                d[col] = np.diff(d[col], prepend=0.0)
    return data, steps, attrs


def _top(eigs: np.ndarray) -> np.ndarray:
    return np.nanmax(eigs, axis=1) if eigs.ndim == 2 and eigs.shape[1] else np.full(len(eigs), np.nan)


def summary(data: dict, steps: np.ndarray, attrs: dict, smooth: int = 50) -> dict:
    """One run's long-run facts (NaN / None where the run has not logged them yet)."""
    disc, cent = data.get("discrete", {}), data.get("central", {})
    out = {"steps_logged": int(len(steps)), "last_step": int(steps[-1]) if len(steps) else None}
    out["status"] = attrs.get("status", "running")
    top_d = pd.Series(_top(disc["eff_eigs"]), index=steps) if "eff_eigs" in disc else pd.Series(dtype=float)
    out["onset_step"] = eos_onset(top_d.dropna()) if len(top_d) else None
    if "eff_eigs" in cent:
        eigs = cent["eff_eigs"]
        top_c = pd.Series(_top(eigs), index=steps).dropna()
        entry, above = central_edge_entry(top_c)
        out["central_entry_step"], out["central_started_above"] = entry, above
        # the step at which the i-th eigenvalue (by count) first reaches the edge: how many, and when
        k_c = np.sum(eigs >= CENTRAL_AT_EOS, axis=1)
        out["k_c_first_step"] = {
            int(i): int(steps[np.argmax(k_c >= i)]) for i in range(1, int(k_c.max(initial=0)) + 1)
        }
        held = top_c[top_c.index >= entry] if entry is not None else top_c.iloc[:0]
        out["central_top_max_dev_from_2"] = float((held - EOS).abs().max()) if len(held) else np.nan
        out["central_steps_beyond_1e-3"] = int(((held - EOS).abs() > 1e-3).sum())
        if "predicted_loss" in cent and "loss" in disc:
            ma = moving_average(pd.Series(disc["loss"], index=steps), smooth)
            pred = pd.Series(cent["predicted_loss"], index=steps)
            err = ((pred - ma).abs() / ma.abs())[steps >= (out["onset_step"] or 0)]  # all before an onset
            out["predicted_loss_rel_error_mean"] = float(err.mean()) if len(err) else np.nan
        if "sdcp_converged" in cent:
            conv = cent["sdcp_converged"]
            out["sdcp_solves"] = int(np.isfinite(conv).sum())
            out["sdcp_unconverged"] = int((conv == 0).sum())
    for key in ("central_sdcp_unconverged", "peak_host_rss_bytes", "backend", "device"):
        if key in attrs:
            out[key] = attrs[key].item() if hasattr(attrs[key], "item") else attrs[key]
    times = [d["step_s"] + d.get("measure_s", 0) for d in data.values() if "step_s" in d]
    out["logged_wall_s"] = float(np.nansum(times)) if times else np.nan
    return out


def windows(data: dict, steps: np.ndarray, window: int = 100, smooth: int = 50) -> pd.DataFrame:
    """Per window of `window` steps: the discrete and central eigenvalues, k_c, the prediction errors
    (loss: mean relative error; squared gradient norm: mean error / mean of GD's moving average), the
    solvers' work (means per step; maxima where a single bad step matters)."""
    disc, cent = data.get("discrete", {}), data.get("central", {})
    frame = pd.DataFrame(index=pd.Index(steps, name="step"))
    if "eff_eigs" in disc:
        frame["disc_top"] = _top(disc["eff_eigs"])
    for col in ("hvps", "k"):
        if col in disc:
            frame[f"disc_{col}"] = disc[col]
    if "eff_eigs" in cent:
        top_c = pd.Series(_top(cent["eff_eigs"]), index=steps)
        entry, _ = central_edge_entry(top_c.dropna())
        frame["cent_top"] = top_c.to_numpy()
        # |top - 2| once the flow holds the edge (NaN before: it is still rising to it)
        frame["cent_top_dev"] = np.where(
            steps >= (np.inf if entry is None else entry), np.abs(top_c - EOS), np.nan
        )
        frame["k_c"] = np.sum(cent["eff_eigs"] >= CENTRAL_AT_EOS, axis=1)
    for col in ("hvps", "third", "substeps"):
        if col in cent:
            frame[f"cent_{col}"] = cent[col]
    for proc, d in (("disc", disc), ("cent", cent)):
        if "step_s" in d:  # wall seconds of the process's step, its measurements included
            frame[f"{proc}_s"] = d["step_s"] + d.get("measure_s", 0)
    if "sdcp_iterations" in cent:
        frame["sdcp_iter_max"] = np.nanmax(
            np.where(np.isfinite(cent["sdcp_iterations"]), cent["sdcp_iterations"], 0), 1
        )
        frame["sdcp_unconverged"] = np.sum(cent["sdcp_converged"] == 0, axis=1)
    if "predicted_loss" in cent and "loss" in disc:
        ma = moving_average(pd.Series(disc["loss"], index=steps), smooth).to_numpy()
        frame["pred_rel_err"] = np.abs(cent["predicted_loss"] - ma) / np.abs(ma)
    if "predicted_grad_norm_sq" in cent and "grad_norm_sq" in disc:  # as the summary: error / mean norm
        ma = moving_average(pd.Series(disc["grad_norm_sq"], index=steps), smooth).to_numpy()
        frame["gn_err"], frame["gn_ma"] = np.abs(cent["predicted_grad_norm_sq"] - ma), ma
    start = (frame.index // window) * window
    agg = {c: "mean" for c in frame.columns}
    agg.update({c: "max" for c in ("cent_top_dev", "sdcp_iter_max", "cent_substeps") if c in frame})
    agg.update({c: "sum" for c in ("sdcp_unconverged",) if c in frame})
    grouped = frame.groupby(start).agg(agg)
    grouped.index = [f"{s}-{min(s + window - 1, int(steps[-1]))}" for s in grouped.index]
    if "k_c" in frame:
        grouped["k_c_max"] = frame["k_c"].groupby(start).max().to_numpy()
    if "gn_err" in grouped:
        grouped["pred_gn_rel_err"] = grouped.pop("gn_err") / grouped.pop("gn_ma")
    return grouped


def figure(data: dict, steps: np.ndarray, title: str, path: Path, smooth: int = 50) -> None:
    """Loss (with the prediction), top effective eigenvalues, k_c and the solvers' work per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from centralflows.analysis.plotting.primitives import line  # draws nothing empty

    disc, cent = data.get("discrete", {}), data.get("central", {})

    def series(values, name: str) -> pd.Series:
        return pd.Series(np.asarray(values, float), index=steps, name=name)

    fig, axes = plt.subplots(2, 2, figsize=(9, 6), layout="constrained")
    ax = axes[0, 0]
    if "loss" in disc:
        line(ax, series(disc["loss"], "GD loss"), lw=0.6, alpha=0.5, label="GD")
        mean = moving_average(series(disc["loss"], "GD loss, moving average"), smooth)
        line(ax, mean, lw=1, label=f"GD, mean of {smooth}")
    if "predicted_loss" in cent:
        prediction = series(cent["predicted_loss"], "predicted loss")
        line(ax, prediction, lw=1, ls="--", label="central flow's prediction")
    ax.set(yscale="log", xlabel="step", ylabel="train loss")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    for proc, style in (("discrete", {"lw": 0.6, "alpha": 0.6}), ("central", {"lw": 1})):
        if "eff_eigs" in data.get(proc, {}):
            top = series(_top(data[proc]["eff_eigs"]), f"{proc} top effective eigenvalue")
            line(ax, top, label=f"{proc} top", **style)
    ax.axhline(EOS, color="k", lw=0.5, ls=":")
    ax.set(xlabel="step", ylabel="top effective eigenvalue")
    ax.legend(fontsize=7)
    ax = axes[1, 0]
    if "eff_eigs" in cent:
        k_c = series(np.sum(cent["eff_eigs"] >= CENTRAL_AT_EOS, axis=1), "k_c")
        line(ax, k_c, drawstyle="steps-post")
    ax.set(xlabel="step", ylabel="k_c (central eigenvalues at the edge)")
    ax = axes[1, 1]
    for proc in ("discrete", "central"):
        if "hvps" in data.get(proc, {}):
            hvps = series(data[proc]["hvps"], f"{proc} HVPs")
            line(ax, hvps, lw=0.6, label=f"{proc}: Hessian-vector products")
    if "third" in cent:
        line(ax, series(cent["third"], "third derivatives"), lw=0.6, label="central: third derivatives")
    ax.set(xlabel="step", ylabel="per step")
    ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(runs: list[Path], window: int, smooth: int, figure_dir: Path | None) -> str:
    parts = []
    for run in runs:
        path = run_file(run)
        data, steps, attrs = read_long_run(path)
        config = json.loads(attrs["config"]) if isinstance(attrs.get("config"), str) else {}
        name = path.parent.name
        facts = summary(data, steps, attrs, smooth)
        records = read_attempts(path.parent)  # the workflow's record of every job that worked on it
        if records:
            facts["cost_over_attempts"] = attempt_totals(records)
        parts.append(f"### {name}\n\n`{path}`; steps planned: {config.get('steps', '?')}\n")
        parts.append("\n".join(f"- {k}: {v}" for k, v in facts.items()) + "\n")
        if len(steps):
            parts.append(windows(data, steps, window, smooth).to_markdown(floatfmt=".4g") + "\n")
        if figure_dir is not None and len(steps):
            figure_dir.mkdir(parents=True, exist_ok=True)
            figure(data, steps, name, figure_dir / f"{name}.png", smooth)
    return "\n".join(parts)


def print_scale_so_far(runs: list[Path], scale: str, figures: list[str], figure_dir: Path | None) -> None:
    """Prints the scale's claims on these runs (Markdown), then draws its named figures from them."""
    config = load_config("config.yaml")
    scale_plan = plan(config, scale)
    tables = in_progress.read_runs([run_file(r) for r in runs], scale_plan)
    claims = in_progress.claims_so_far(tables, config, scale_plan)
    print(f"### Claims at scale {scale} so far (provisional until the runs complete)\n")
    print(claims.to_markdown(index=False, floatfmt=".4g") + "\n", flush=True)
    for name in figures:
        for png, cells in in_progress.draw_figures_so_far(tables, config, scale_plan, name, figure_dir):
            print(f"- figure {name}: `{png}` (cells {', '.join(cells)})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m centralflows.analysis.long_run", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (or their HDF5 files)")
    parser.add_argument("--window", type=int, default=100, help="steps per table row")
    parser.add_argument("--smooth", type=int, default=50, help="moving-average window of the loss (steps)")
    parser.add_argument("--figure-dir", type=Path, help="draw <run id>.png here")
    parser.add_argument(
        "--scale", help="also evaluate SCALE's claims on these runs so far (run from the repository root)"
    )
    parser.add_argument(
        "--figures", nargs="+", default=[], metavar="ID",
        help="with --scale and --figure-dir: draw these figures of the scale from these runs so far",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.figures and not (args.scale and args.figure_dir):
        parser.error("--figures needs --scale and --figure-dir")
    try:
        print(report(args.runs, args.window, args.smooth, args.figure_dir))
        if args.scale:
            print_scale_so_far(args.runs, args.scale, args.figures, args.figure_dir)
    except (FileNotFoundError, OSError, KeyError, ValueError, ContractError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
