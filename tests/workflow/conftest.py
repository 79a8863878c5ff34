"""Fixtures of the workflow tests: the repository root, a Snakemake runner, a synthetic run HDF5 file."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
LR = 0.02
STEPS = 120


def snakemake(*args, cwd=ROOT, env=None, timeout=120):
    """Runs the snakemake CLI of this interpreter's environment; returns the CompletedProcess."""
    bindir = str(Path(sys.executable).parent)
    full_env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", ""), **(env or {})}
    return subprocess.run(
        [f"{bindir}/snakemake", *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def copy_workflow(dest: Path) -> Path:
    """A copy of the workflow (Snakefile, config, rules, scripts, profiles) without results or figures, so
    a Snakemake call there sees a fresh checkout and writes nothing into the working tree."""
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, dest / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "slurm").symlink_to("profiles/slurm")  # `--profile slurm` from the root, as in the repository
    return dest


@pytest.fixture
def workflow_copy(tmp_path):
    """Path of a fresh copy of the workflow (see copy_workflow)."""
    return copy_workflow(tmp_path)


def write_synthetic_run(path, steps=STEPS, lr=LR, onset=40):
    """A data.hdf5 in the layout of REFERENCE §3.9: GD reaches 2/eta at `onset` and oscillates around it.

    The central flow sits at the effective value 2 after the onset, its prediction is GD's average
    loss, and the stable flow equals the central flow before the onset. The central flow's stationary
    probe (`stationary/*`) is logged every 5 steps, NaN in between; the stationary flow follows the
    central flow with a worse prediction.
    """
    rng = np.random.default_rng(0)
    t = np.arange(steps, dtype=float)
    base = np.exp(-t / 60)
    osc = np.where(t >= onset, 0.05 * (1 + np.sin(t)), 0.0)
    top = np.minimum(2.0, 1.0 + t / onset) + np.where(t >= onset, 0.1 * np.sin(1.3 * t), 0.0)

    def eigs(first):
        e = np.full((steps, 3), np.nan)
        e[:, 0] = first
        e[onset + 10 :, 1] = 1.6  # a second tracked eigenvalue appears later (NaN before)
        return e

    with h5py.File(path, "w") as f:
        f["step"] = np.arange(steps)
        groups = {
            "discrete": (base + osc, top),
            "central": (base, np.minimum(top, 2.0)),
            "stable": (base * 1.1, top),
            "stationary": (base, np.minimum(top, 2.0)),
        }
        for name, (loss, eff) in groups.items():
            g = f.create_group(name)
            g["train_loss"] = loss
            g["train_acc"] = np.linspace(0.2, 0.9, steps)
            g["test_loss"] = loss * 1.2
            g["effective_hessian_eigs"] = eigs(eff)
            g["hessian_eigs"] = eigs(eff) / lr
            g["grad_norm_sq"] = rng.random(steps)
            g["grad_sq_selected_idx"] = rng.random((steps, 25))
            g["train_outputs"] = rng.standard_normal((steps, 10, 4))
            g["test_outputs"] = rng.standard_normal((steps, 10, 4)) * (0.1 if name == "central" else 1.0)
            g["opt.lr"] = np.full(steps, lr)
            g["opt.t"] = t
            g["times/step"] = np.full(steps, 0.01)
        f["central/predicted_loss"] = base + 0.05
        f["stationary/predicted_loss"] = base + 0.08
        probe = np.where(t % 5 == 0, 1.0, np.nan)  # central.stationary_every = 5
        f["central/stationary/nu_cosine"] = probe * (1 - 0.2 * np.exp(-t / 15))
        nu_bar = 10.0 ** -(3 + np.arange(25) / 2.5)  # 25 coordinates over ~10 orders of magnitude
        f["central/stationary/nu_bar_selected_idx"] = probe[:, None] * nu_bar * (1 + np.exp(-t / 20))[:, None]
        f["central/stationary/sharpness"] = probe * np.minimum(top, 2.0) / lr
        f["central/stationary/speed_baseline"] = probe * base
        f["central/stationary/speed_p_hat"] = probe * 3 * base
        f["central/stationary/speed_p_bar"] = probe * base * (1.5 + np.sin(t / 10))  # at times < baseline
        f["central/stationary/speed_current"] = probe * 2 * base
        f["central/predicted_grad_norm_sq"] = np.full(steps, 0.5)
        f["central/predicted_variances"] = eigs(np.where(t >= onset, 0.01, 0.0))
        f["central/sigma_trace"] = np.where(t >= onset, 0.001, 0.0)
        f["stable/substeps"] = np.full(steps, 4.0)
        f["distances/central-discrete"] = np.where(t >= onset, 0.1, 0.0)
        f["distances/discrete-stable"] = np.where(t >= onset, 0.1 * (t - onset + 1), 0.0)
        f["distances/central-stable"] = np.where(t >= onset, 0.05 * (t - onset), 1e-6)
        f["deltas"] = eigs(np.where(t >= onset, 0.1, 0.0))
        config = {
            "opt": {"name": "gd", "lr": lr},
            "data": {"name": "synthetic-cifar10", "n": 64},
            "arch": {"name": "mlp"},
            "runs": ["discrete", "central", "stable"],
            "steps": steps,
        }
        f.attrs["config"] = json.dumps(config)
        f.attrs["n_params"] = 1234
        f.attrs["status"] = "completed"
        f.attrs["device"] = "cpu:cpu"
        f.attrs["dataset"] = "synthetic-cifar10"
    return path


@pytest.fixture
def synthetic_run(tmp_path):
    """Path of a synthetic data.hdf5 (see write_synthetic_run)."""
    return write_synthetic_run(tmp_path / "data.hdf5")
