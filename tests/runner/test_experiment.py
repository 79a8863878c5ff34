"""One cell end to end: the HDF5 schema for every optimizer and process, resume = uninterrupted, SIGKILL."""

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from centralflows.engine.compiled import Compiled
from centralflows.engine.eigs import EigConfig
from centralflows.engine.optimizers import make_optimizer
from centralflows.engine.processes import CentralFlow, Midpoint
from centralflows.runner.checkpoint import latest_checkpoint
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import config_difference, group_logs, resolve_hvp_batching, run
from tests.engine.helpers import as_problem, cubic_loss

# A tiny MLP on the offline CIFAR stand-in; at eta = 0.05 GD reaches the edge of stability within a
# few steps, so the central flow's SDCP is active (k >= 1) in every test below.
CELL = {
    "data": {"name": "synthetic-cifar10", "n": 32, "n_test": 16},
    "arch": {"name": "mlp", "width": 16},
    "eig": {"frequency": 1},
}
OPTIMIZERS = {
    "gd": {"name": "gd", "lr": 0.05},
    "scalar_rmsprop": {"name": "scalar_rmsprop", "lr": 0.01, "beta2": 0.99},
    "rmsprop": {"name": "rmsprop", "lr": 1e-3, "beta2": 0.99, "eps": 1e-7, "bias_correction": True},
}
ALL_RUNS = ["discrete", "midpoint", "stable", "central"]


def cell(out, opt="gd", **overrides):
    return resolve_config({**CELL, "opt": OPTIMIZERS[opt], "out": str(out), **overrides})


def datasets(path) -> dict:
    out = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
        )
    return out


PROCESS_KEYS = [
    "train_loss", "train_acc", "test_loss", "test_acc", "train_outputs", "test_outputs",
    "effective_hessian_eigs", "hessian_eigs", "grad_norm_sq", "grad_sq_selected_idx", "opt.t", "opt.lr",
]  # fmt: skip
OPT_KEYS = {
    "gd": [],
    "scalar_rmsprop": ["opt.nu", "opt.effective_step_size"],
    "rmsprop": ["opt.nu_l1", "opt.nu_selected_idx", "opt.ess_mean", "opt.ess_harmonic_mean"],
}
CENTRAL_KEYS = [
    "predicted_loss", "predicted_grad_norm_sq", "predicted_grad_sq_selected_idx", "predicted_variances",
    "sigma_trace", "flow_aux/X", "flow_aux/dH_dt_stable", "flow_aux/dH_dt_X", "flow_aux/dP_dt_stable",
    "flow_aux/dP_dt_X",
]  # fmt: skip


def test_hvp_batching_auto_is_resolved_by_architecture_on_cpu_and_unrolled_products_run_the_same(
    tmp_path, monkeypatch
):
    """ "auto" picks the architecture's CPU_HVP_BATCHING on XLA:CPU (the MLP and the convolutional
    networks, which ran faster one vector at a time), "vmap" for the rest (the sequence models); a value
    given is kept. A run with the products unrolled logs the eigenvalues and trajectory of the vmapped
    one, to round-off."""
    resolved = {
        arch: resolve_hvp_batching(cell(tmp_path, arch={"name": arch}, steps=1)).eig.hvp_batching
        for arch in ("mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba")
    }
    unrolled = {"mlp", "cnn", "resnet", "vit"}
    assert resolved == {arch: "unroll" if arch in unrolled else "vmap" for arch in resolved}
    given = cell(tmp_path, arch={"name": "resnet"}, steps=1, eig={"frequency": 1, "hvp_batching": "vmap"})
    assert resolve_hvp_batching(given).eig.hvp_batching == "vmap"
    ghost = cell(tmp_path, arch={"name": "resnet"}, steps=1, data={**CELL["data"], "ghost_batch_size": 8})
    assert resolve_hvp_batching(ghost).eig.hvp_batching == "vmap"  # a loop over examples: no gain
    import centralflows.engine.compiled as compiled
    import centralflows.engine.eigs as eigs

    seen = []  # the `unroll` each traced program was built with

    def spy(f):
        return lambda *args: seen.append(args[-1]) or f(*args)

    monkeypatch.setattr(eigs, "batched_hvp", spy(eigs.batched_hvp))
    monkeypatch.setattr(compiled, "third_derivative_pairs", spy(compiled.third_derivative_pairs))
    logs = {}
    for batching in ("vmap", "unroll"):
        seen.clear()
        config = cell(
            tmp_path / batching,
            runs=["discrete", "central"],
            steps=4,
            eig={"frequency": 1, "hvp_batching": batching},
        )
        logs[batching] = datasets(run(config, progress=False))
        assert len(seen) >= 2 and set(seen) == {batching == "unroll"}  # the operator and the third pairs
    for key in ("discrete/hessian_eigs", "central/hessian_eigs", "central/train_loss"):
        np.testing.assert_allclose(logs["unroll"][key], logs["vmap"][key], rtol=1e-5)
    assert logs["vmap"]["central/eig_logs/third_derivatives"][-1] > 0  # the flow computed some


@pytest.mark.slow
@pytest.mark.parametrize("opt", list(OPTIMIZERS))
def test_schema_for_every_optimizer_and_process(tmp_path, opt):
    config = cell(tmp_path, opt, runs=ALL_RUNS, steps=4, warm_start=2 if opt == "rmsprop" else -1)
    path = run(config, progress=False)
    assert path == tmp_path / "data.hdf5"
    data = datasets(path)
    assert list(data["step"]) == ([2, 3] if opt == "rmsprop" else [0, 1, 2, 3])
    for process in ALL_RUNS:
        for key in PROCESS_KEYS + OPT_KEYS[opt]:
            assert f"{process}/{key}" in data, f"{process}/{key}"
            assert np.isfinite(data[f"{process}/{key}"]).any(), f"{process}/{key}"
    for key in CENTRAL_KEYS:
        assert f"central/{key}" in data
    assert "stable/substeps" in data
    for pair in ["central-discrete", "central-midpoint", "central-stable", "discrete-midpoint",
                 "discrete-stable", "midpoint-stable"]:  # fmt: skip
        assert f"distances/{pair}" in data
    assert "deltas" in data and "midpoint_deltas" in data
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "completed"
        assert f.attrs["n_params"] == 32 * 32 * 3 * 16 + 16 + 16 * 16 + 16 + 16 * 4 + 4
        assert f.attrs["dataset"] == "synthetic-cifar10"


def test_matmul_precision_is_in_effect_from_the_build_and_recorded(tmp_path, monkeypatch):
    """The run's precision (part of its identity) applies to all it traces; the root attributes record
    it with the backend and the peak memory (XLA:CPU has no device memory stats: the process's RSS)."""
    import centralflows.problem.build as build

    seen, build_problem = [], build.build_problem

    def spy(*args, **kwargs):
        seen.append(jax.config.jax_default_matmul_precision)
        return build_problem(*args, **kwargs)

    monkeypatch.setattr(build, "build_problem", spy)
    assert cell(tmp_path, steps=2).matmul_precision == "float32"  # the authors' full float32 by default
    config = cell(
        tmp_path, runs=["discrete"], steps=2, eig={"frequency": -1}, matmul_precision="tensorfloat32"
    )
    path = run(config, progress=False)
    assert seen == ["tensorfloat32"] and jax.config.jax_default_matmul_precision is None  # restored after
    with h5py.File(path, "r") as f:
        attrs = dict(f.attrs)
    assert attrs["matmul_precision"] == "tensorfloat32" and attrs["backend"] == "cpu"
    assert json.loads(attrs["config"])["eig"]["hvp_batching"] == "unroll"  # "auto" as what ran (MLP, CPU)
    assert json.loads(attrs["versions"])["jax"] == jax.__version__
    assert attrs["peak_host_rss_bytes"] > 100e6 and "peak_device_memory_bytes" not in attrs
    assert config_difference(config, {**config.to_dict(), "matmul_precision": "float32"}) == [
        "matmul_precision"
    ]


@pytest.mark.slow
@pytest.mark.parametrize(
    "runs, central, eig, every",
    # extrapolated: the last step's third-derivative pairs and the last two solves' vectors resume too,
    # resumed at step 5, the first whose full solve keeps k (4 from step 4 on); the span's trend misses
    # its solves by more than TREND_TOLERANCE in these 10 steps, so the restored trend is tested in
    # test_eigs (test_span_extrapolation_only_where_the_trend_predicted_the_last_solve)
    [
        (ALL_RUNS, {}, {}, 4),
        (["central"], {"third_every": "extrapolate"}, {"between_solves": "extrapolate"}, 5),
    ],
    ids=["all", "central-extrapolate"],
)
def test_resumed_run_equals_uninterrupted_run(tmp_path, monkeypatch, runs, central, eig, every):
    # a guard that accepts any known trend, so the restored trend carries the third derivatives from the
    # first step after the resume (in these first steps at the edge it misses by more than the real
    # THIRD_TREND_TOLERANCE); a trend not restored is unknown, and that step would compute them instead
    monkeypatch.setattr("centralflows.engine.processes.THIRD_TREND_TOLERANCE", 1e9)
    # init jax: from it GD at eta 0.05 climbs to the edge (S 36 -> 47 in 10 steps); from the torch init
    # (S 41 at step 0) it catapults down to S ~ 25 and the SDCP stays off
    opts = {"runs": runs, "checkpoint": {"frequency": every}, "init": "jax", "central": central}
    if eig:
        opts["eig"] = {"frequency": 1, **eig}
    full = run(cell(tmp_path / "full", steps=10, **opts), progress=False)
    # the interrupted run stops after step 6 with a checkpoint at `every`; then resumes from there
    part = cell(tmp_path / "part", steps=6, **opts)
    run(part, progress=False)
    resumed = cell(
        tmp_path / "part",
        steps=10,
        checkpoint_file=str(tmp_path / "part" / "checkpoints" / f"checkpoint_{every}.npz"),
        **opts,
    )
    run(resumed, progress=False)
    a, b = datasets(full), datasets(tmp_path / "part" / "data.hdf5")
    assert a.keys() == b.keys()
    assert np.nanmax(a["central/predicted_variances"]) > 0  # the SDCP was active
    for key in a:
        if "times/" in key:  # wall-clock timings differ
            continue
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # bitwise on CPU


@pytest.mark.slow
def test_stationary_probe_is_logged_every_n_steps_and_resumes_exactly(tmp_path):
    def probe_cell(out, steps):
        # few tracked pairs and fixed-point iterations keep the probe cheap; the check is exact resume
        return cell(out, "rmsprop", runs=["central"], steps=steps, warm_start=2,
                    central={"stationary_every": 3}, checkpoint={"frequency": 4},
                    arch={"name": "mlp", "width": 4}, eig={"frequency": 1, "max_k": 3},
                    stationary={"max_iter": 10})  # fmt: skip

    full = datasets(run(probe_cell(tmp_path / "full", 10), progress=False))
    due = np.isfinite(full["central/stationary/nu_cosine"])
    assert list(full["step"][due]) == [2, 5, 8]  # every 3rd measurement from the first
    assert full["central/stationary/nu_bar_selected_idx"].shape == full["central/opt.nu_selected_idx"].shape
    assert np.all(full["central/stationary/speed_p_hat"][due] > 0)
    run(probe_cell(tmp_path / "part", 6), progress=False)
    checkpoint = str(tmp_path / "part" / "checkpoints" / "checkpoint_4.npz")
    resumed = dataclasses.replace(probe_cell(tmp_path / "part", 10), checkpoint_file=checkpoint)
    part = datasets(run(resumed, progress=False))
    for key in full:
        if key.startswith("central/stationary/"):
            np.testing.assert_array_equal(full[key], part[key], err_msg=key)


@pytest.mark.slow
def test_sigkill_leaves_a_readable_file_and_a_resumable_checkpoint(tmp_path):
    out = tmp_path / "killed"
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:synthetic-cifar10", "arch:mlp",
            "--arch.width", "16", "--data.n", "32", "--data.n-test", "16", "--opt.lr", "0.05",
            "--runs", "discrete", "central", "--eig.frequency", "1", "--steps", "100000",
            "--checkpoint.frequency", "3", "--out", str(out)]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (out / "checkpoints" / "checkpoint_6.npz").exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = out / "data.partial.hdf5"
    with h5py.File(partial, "r", swmr=True) as f:
        assert len(f["step"]) >= 6
        assert f.attrs["status"] == "running"
    ckpt = latest_checkpoint(out)
    assert ckpt is not None and int(ckpt.stem.split("_")[1]) >= 6
    resumed = subprocess.run(argv[:-6] + ["--steps", "12", "--checkpoint-file", str(ckpt), "--out", str(out)],
                             capture_output=True, text=True)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    with h5py.File(out / "data.hdf5", "r") as f:
        assert f.attrs["status"] == "completed"
        assert list(f["step"][:]) == list(range(12))


def test_central_flow_without_eigenvalues_is_a_clear_error(tmp_path):
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:synthetic-cifar10", "arch:mlp",
            "--arch.width", "8", "--data.n", "8", "--opt.lr", "0.05", "--runs", "central", "--steps", "2",
            "--out", str(tmp_path / "x")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "--eig.frequency" in proc.stderr and "Traceback" not in proc.stderr


def test_missing_cifar_archive_is_a_clear_error(tmp_path):
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:cifar10", "arch:mlp", "--opt.lr", "0.02",
            "--steps", "2", "--data.root", str(tmp_path / "nowhere"),
            "--out", str(tmp_path / "x")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "cifar-10-python.tar.gz" in proc.stderr and "https://" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not Path(tmp_path / "x" / "data.hdf5").exists()


@pytest.mark.slow
def test_central_flow_started_from_a_gd_checkpoint(tmp_path):
    """--load.path/--load.from-process: every process starts at GD's point of a checkpointed step (W1.18)."""
    source = run(cell(tmp_path / "gd", runs=["discrete"], steps=5, checkpoint={"steps": [3]}), progress=False)
    load = {"path": str(tmp_path / "gd" / "checkpoints" / "checkpoint_3.npz"), "from_process": "discrete"}
    config = cell(tmp_path / "central", runs=["discrete", "central"], steps=6, load=load)
    data, gd = datasets(run(config, progress=False)), datasets(source)
    assert list(data["step"]) == [3, 4, 5]
    assert data["central/train_loss"][0] == data["discrete/train_loss"][0] == gd["discrete/train_loss"][3]
    np.testing.assert_array_equal(data["discrete/train_loss"][:2], gd["discrete/train_loss"][3:5])


def test_midpoint_deltas_are_the_iterate_minus_its_own_midpoint(x64):
    """midpoint_deltas = U_Σᵀ P (w_t − w*_t) (REFERENCE §1.7), against a numpy GD trajectory."""
    lr = 0.5  # P = 1/η = 2; raw spectrum 4.1, 3.98 gives effective 2.05, 1.99: two critical directions
    loss_fn, w0, (g, H, T) = cubic_loss([4.1, 3.98])
    g, H, T = map(np.asarray, (g, H, T))
    eig = EigConfig(frequency=1, track_threshold=1.5, initial_k=1, max_k=8, tol=1e-12)
    kern = Compiled(as_problem(loss_fn, w0), make_optimizer("gd", lr))
    s0 = {"t": jnp.zeros(())}
    processes = {"central": CentralFlow(kern, w0, s0, eig, 1), "midpoint": Midpoint(kern, w0, s0, eig, 2)}
    w = [np.asarray(w0)]  # GD by hand: ∇L = g + Hw + ½T[w, w]
    for _ in range(6):
        w.append(w[-1] - lr * (g + H @ w[-1] + 0.5 * np.einsum("ijk,j,k->i", T, w[-1], w[-1])))
    seen = 0
    for t in range(5):
        measured = {name: p.measure() for name, p in processes.items()}
        w_star = w[0] if t == 0 else 0.25 * (w[t - 1] + 2 * w[t] + w[t + 1])
        U, P = np.asarray(measured["central"].carry.sigma_basis), np.asarray(measured["central"].carry.P)
        np.testing.assert_allclose(P, 2.0)
        expected = U.T @ (P * (w[t] - w_star))
        got = np.asarray(group_logs(measured)["midpoint_deltas"])
        np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)
        seen += U.shape[1] > 0 and t > 0 and np.abs(expected).max() > 1e-6
        for name, p in processes.items():
            p.step(measured[name])
    assert seen >= 3  # Σ had eigenvectors and the oscillation was non-zero on most steps


@pytest.mark.slow
def test_a_binding_max_k_cap_is_recorded_in_the_file(tmp_path):
    config = cell(tmp_path, steps=3, eig={"frequency": 1, "max_k": 1, "track_threshold": 1e-6})
    data = datasets(run(config, progress=False))
    np.testing.assert_array_equal(data["discrete/eig_logs/k_capped"], [1.0, 1.0, 1.0])
    with h5py.File(tmp_path / "data.hdf5", "r") as f:
        assert json.loads(f.attrs["eig_k_capped_steps"]) == {"discrete": 3}
    uncapped = datasets(run(cell(tmp_path / "free", steps=2), progress=False))
    np.testing.assert_array_equal(uncapped["discrete/eig_logs/k_capped"], [0.0, 0.0])


@pytest.mark.slow
def test_central_flow_started_above_the_edge_is_warned_about_and_stopped(tmp_path, caplog):
    """RMSProp without a warm start: ν = 0 makes S_eff huge at step 0 (REFERENCE §3.7)."""
    config = cell(tmp_path, "rmsprop", runs=["discrete", "central"], steps=3)
    assert config.central.max_seff == 10.0  # the default
    with caplog.at_level("WARNING", logger="centralflows"):
        path = run(config, progress=False)
    assert "--warm-start" in caplog.text and "far above 2" in caplog.text
    data = datasets(path)
    seff = data["central/effective_hessian_eigs"][0, 0]
    assert seff > 10.0  # the measurement that stopped it is logged
    assert np.isnan(data["central/train_loss"][1:]).all() and data["central/stopped"][0] == 1
    assert np.isfinite(data["discrete/train_loss"]).all()  # the other processes go on
    with h5py.File(path, "r") as f:
        assert f.attrs["status"] == "completed"
        assert "max_seff 10" in f.attrs["central_status_reason"]
        assert "central stopped" in f.attrs["status_reason"]


@pytest.mark.slow
def test_sdcp_solves_are_recorded_per_substep(tmp_path):
    # init jax: from it this GD run climbs to the edge within 4 steps (see the resume test above)
    config = cell(tmp_path, runs=["discrete", "central"], steps=4, central={"max_seff": 50.0}, init="jax")
    path = run(config, progress=False)
    data = datasets(path)
    its, res, ok = (data[f"central/flow_aux/sdcp_{key}"] for key in ("iterations", "residual", "converged"))
    assert its.shape == res.shape == ok.shape == (4, 4)  # [steps, substeps]
    assert its.max() >= 1 and (ok == 1).all() and (res <= 1e-5).all()  # float32 solves, SDCP active
    with h5py.File(path, "r") as f:
        assert f.attrs["central_sdcp_solves"] == 16 and f.attrs["central_sdcp_unconverged"] == 0


def test_the_command_runs_with_the_engines_allocator_settings_and_records_them(tmp_path):
    """`python -m centralflows` restarts itself with runner.allocator's glibc settings (a user's own
    value wins) and records what the run had in the file's `malloc_env` attribute."""
    from centralflows.runner.allocator import MALLOC_ENV

    env = {key: value for key, value in os.environ.items() if key not in MALLOC_ENV}
    env["MALLOC_ARENA_MAX"] = "2"  # the user's own
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:synthetic-cifar10", "arch:mlp",
            "--arch.width", "8", "--data.n", "8", "--opt.lr", "0.05", "--runs", "discrete", "--steps", "2",
            "--out", str(tmp_path / "x")]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    with h5py.File(tmp_path / "x" / "data.hdf5", "r") as f:
        recorded = dict(item.split("=") for item in f.attrs["malloc_env"].split())
    assert recorded == {**MALLOC_ENV, "MALLOC_ARENA_MAX": "2"}
