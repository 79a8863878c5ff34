"""Output folders and checkpoints: rerun resumes or refuses, fresh-folder resume, truncated files, signals."""

import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

from centralflows.engine.processes import Discrete
from centralflows.runner.checkpoint import latest_checkpoint, save_checkpoint
from centralflows.runner.config import ConfigError, resolve_config
from centralflows.runner.experiment import RunStopped, prepare_out_dir, run
from centralflows.runner.options import flatten

CELL = {
    "opt": {"name": "gd", "lr": 0.05},
    "data": {"name": "synthetic-cifar10", "n": 16, "n_test": 8},
    "arch": {"name": "mlp", "width": 8},
    "runs": ["discrete"],
    "checkpoint": {"frequency": 2},
}


def cell(out, **overrides):
    return resolve_config({**CELL, "out": str(out), "steps": 6, **overrides})


def rows(path):
    with h5py.File(path, "r") as f:
        return list(f["step"][:]), f["discrete/train_loss"][:], dict(f.attrs)


def test_rerun_after_a_kill_resumes_and_other_work_is_refused(tmp_path):
    out = tmp_path / "run"
    full = rows(run(cell(tmp_path / "full"), progress=False))
    run(cell(out, steps=5), progress=False)  # a run that got as far as checkpoint_4 ...
    (out / "data.hdf5").rename(out / "data.partial.hdf5")  # ... and was killed in step 4
    (out / "checkpoints" / "checkpoint_4.npz").write_bytes(b"PK\x03\x04 truncated")  # by a full disk
    config = prepare_out_dir(cell(out))
    assert config.checkpoint_file == str(out / "checkpoints" / "checkpoint_2.npz")  # the readable one
    steps, loss, attrs = rows(run(cell(out), progress=False))
    assert steps == full[0] == list(range(6)) and attrs["resumed_at_step"] == 2
    np.testing.assert_array_equal(loss, full[1])
    with pytest.raises(ConfigError, match="holds a finished run .*--overwrite"):
        prepare_out_dir(cell(out))
    with pytest.raises(ConfigError, match=r"another run \(its opt.lr differ\).*--overwrite"):
        prepare_out_dir(cell(out, opt={"name": "gd", "lr": 0.04}))
    assert prepare_out_dir(cell(out), overwrite=True).checkpoint_file is None
    assert not (out / "data.hdf5").exists() and latest_checkpoint(out) is None


def test_a_run_started_under_other_defaults_goes_on_with_them_in_the_workflow(tmp_path, caplog):
    """The workflow's folder name hashes the cell's settings: a stored run that differs from today's
    resolved config only in options the cell did not set started when their defaults were other (here
    eig.lock); it resumes with its own values, logged, instead of being deleted and started over."""
    started = {"eig": {"lock": True}}  # what an older default gave this run
    full = rows(run(cell(tmp_path / "full", **started), progress=False))
    out = tmp_path / "run"
    run(cell(out, steps=5, **started), progress=False)
    (out / "data.hdf5").rename(out / "data.partial.hdf5")  # stopped in step 4
    cell_keys = [*flatten(CELL), "out", "steps"]
    caplog.set_level("WARNING", logger="centralflows")
    config = prepare_out_dir(cell(out), discard_other=True, set_keys=cell_keys)
    assert config.eig.lock is True and config.checkpoint_file == str(out / "checkpoints" / "checkpoint_4.npz")
    assert "eig.lock = True (default now None)" in caplog.text
    steps, loss, attrs = rows(run(config, progress=False))
    assert steps == full[0] and attrs["resumed_at_step"] == 4
    np.testing.assert_array_equal(loss, full[1])
    # a setting of the cell that differs is another run; so is any difference without the cell's keys
    (out / "data.hdf5").rename(out / "data.partial.hdf5")
    other = prepare_out_dir(cell(out), discard_other=True, set_keys=[*cell_keys, "eig.lock"])
    assert other.checkpoint_file is None and not other.eig.lock
    assert not (out / "checkpoints").exists()
    run(cell(out, steps=5, **started), progress=False)
    (out / "data.hdf5").rename(out / "data.partial.hdf5")
    with pytest.raises(ConfigError, match=r"another run \(its eig.lock differ\)"):
        prepare_out_dir(cell(out))


def test_checkpoint_file_into_a_fresh_folder_starts_a_marked_file(tmp_path):
    run(cell(tmp_path / "a"), progress=False)
    config = cell(tmp_path / "b", checkpoint_file=str(tmp_path / "a" / "checkpoints" / "checkpoint_4.npz"))
    steps, loss, attrs = rows(run(config, progress=False))
    assert steps == [4, 5] and attrs["resumed_at_step"] == 4 and attrs["start_step"] == 4
    np.testing.assert_array_equal(loss, rows(tmp_path / "a" / "data.hdf5")[1][4:])
    other = cell(tmp_path / "c", seed=1, checkpoint_file=config.checkpoint_file)
    with pytest.raises(ConfigError, match="written by another run .*seed.*--load.path"):
        run(other, progress=False)


def cli(*args, cwd=None):
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:synthetic-cifar10", "arch:mlp",
            "--arch.width", "8", "--data.n", "16", "--data.n-test", "8", "--opt.lr", "0.05",
            *args]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, cwd=cwd)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", "FILE"], "is a file, not a folder"),
        (["--out", "FILE/sub"], "is a file, not a folder"),
        (["--checkpoint-file", "nowhere.npz", "--out", "o"], "--checkpoint-file: cannot read checkpoint"),
        (["--checkpoint-file", "FILE", "--out", "o"], "--checkpoint-file: cannot read checkpoint"),
        (["--warm-start", "5", "--load.path", "ck.npz", "--load.from-process", "central", "--out", "o"],
         "--load.from-process central: ck.npz holds only discrete"),
    ],
)  # fmt: skip
def test_bad_files_exit_2_without_traceback_or_file(args, message, tmp_path):
    (tmp_path / "FILE").write_text("not a folder")
    save_checkpoint(tmp_path / "ck.npz", {"processes": {"discrete": {}}}, {"step": 3})
    proc = cli("--steps", "2", *args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "o" / "data.hdf5").exists()


def test_signal_mid_step_checkpoints_the_last_completed_step_and_resumes_exactly(tmp_path, monkeypatch):
    full = rows(run(cell(tmp_path / "full"), progress=False))
    calls, sent, step = [], [], Discrete.step

    def slow_step(self, measured):  # the signal arrives inside step 3, before it completes
        calls.append(1)
        if len(calls) == 4:
            sent.append(time.perf_counter())
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # interrupted by the handler, not waited out
        return step(self, measured)

    monkeypatch.setattr(Discrete, "step", slow_step)
    with pytest.raises(RunStopped, match="during step 3") as stop:
        run(cell(tmp_path / "x", checkpoint={"frequency": -1}), progress=False)
    assert stop.value.signum == signal.SIGTERM and time.perf_counter() - sent[0] < 4
    with h5py.File(tmp_path / "x" / "data.partial.hdf5", "r") as f:
        assert f.attrs["status"] == "stopped" and list(f["step"][:]) == [0, 1, 2]
    monkeypatch.setattr(Discrete, "step", step)
    steps, loss, _ = rows(run(cell(tmp_path / "x", checkpoint={"frequency": -1}), progress=False))
    assert steps == list(range(6))
    np.testing.assert_array_equal(loss, full[1])


@pytest.mark.slow
def test_sigterm_ends_a_slow_step_within_seconds_exit_143(tmp_path):
    # 10^6 stable-flow substeps make one step take minutes; the substeps are a host loop
    argv = [sys.executable, "-m", "centralflows", "opt:gd", "data:synthetic-cifar10", "arch:mlp",
            "--arch.width", "8", "--data.n", "16", "--data.n-test", "8", "--opt.lr", "0.05",
            "--runs", "discrete", "stable", "--stable.min-nsubsteps", "1000000", "--steps", "3",
            "--out", str(tmp_path / "o")]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (tmp_path / "o" / "data.partial.hdf5").exists():
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.2)
    time.sleep(3)  # inside step 0's substeps
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143 and time.perf_counter() - t0 < 10, err
    assert "stopped: signal 15 during step 0" in err and "Traceback" not in err
    assert (tmp_path / "o" / "checkpoints" / "checkpoint_0.npz").exists()
    with h5py.File(tmp_path / "o" / "data.partial.hdf5", "r") as f:
        assert f.attrs["status"] == "stopped"
