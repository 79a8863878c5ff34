"""H5Logger: the authors' layout, NaN growth, SWMR reads while writing, atomic finish, resume, SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from centralflows.runner.io import H5Logger, open_for_reading


def test_layout_growth_and_late_keys(tmp_path):
    logger = H5Logger(tmp_path, {"config": {"opt": {"lr": 0.02}}, "n_params": 7, "device": "cpu"})
    logger.log(5, {"discrete/train_loss": 1.0, "discrete/hessian_eigs": [3.0], "central/opt.nu": 0.5})
    logger.log(6, {"discrete/train_loss": 0.9, "discrete/hessian_eigs": [3.1, 2.0]})
    logger.log(
        7, {"discrete/train_loss": 0.8, "discrete/hessian_eigs": [3.2], "distances/central-discrete": 0.1}
    )
    path = logger.close("completed")
    assert path == tmp_path / "data.hdf5" and not (tmp_path / "data.partial.hdf5").exists()
    with open_for_reading(path) as f:
        np.testing.assert_array_equal(f["step"][:], [5, 6, 7])
        np.testing.assert_array_equal(f["discrete"]["train_loss"][:], [1.0, 0.9, 0.8])
        np.testing.assert_array_equal(
            f["discrete/hessian_eigs"][:], [[3.0, np.nan], [3.1, 2.0], [3.2, np.nan]]
        )
        np.testing.assert_array_equal(f["central"]["opt.nu"][:], [0.5, np.nan, np.nan])  # missing -> NaN
        np.testing.assert_array_equal(f["distances"]["central-discrete"][:], [np.nan, np.nan, 0.1])
        assert f["discrete/train_loss"].dtype == np.float64 and f["discrete/train_loss"].maxshape == (None,)
        assert json.loads(f.attrs["config"]) == {"opt": {"lr": 0.02}}
        assert f.attrs["n_params"] == 7 and f.attrs["device"] == "cpu" and f.attrs["status"] == "completed"
        assert set(json.loads(f.attrs["versions"])) >= {
            "python",
            "jax",
            "jaxlib",
            "optax",
            "flax",
            "h5py",
            "numpy",
        }
        assert "git_commit" in f.attrs


def test_rank_change_is_an_error(tmp_path):
    logger = H5Logger(tmp_path)
    logger.log(0, {"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="shape"):
        logger.log(1, {"x": [[1.0]]})


READER = textwrap.dedent(
    """
    import sys
    from centralflows.runner.io import open_for_reading
    f = open_for_reading(sys.argv[1])
    ds = f["discrete/train_loss"]
    for line in sys.stdin:  # one read per line from the test, with the file kept open
        ds.refresh()
        print(ds[:].tolist(), flush=True)
    """
)


def test_swmr_reader_in_another_process_sees_rows_while_writing(tmp_path):
    logger = H5Logger(tmp_path, flush_every=1)
    logger.log(0, {"discrete/train_loss": 1.0})
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(tmp_path / "data.partial.hdf5")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip

    def read():
        reader.stdin.write("\n")
        reader.stdin.flush()
        return json.loads(reader.stdout.readline())

    try:
        assert read() == [1.0]
        for step in (1, 2):
            logger.log(step, {"discrete/train_loss": 1.0 / (step + 1)})
        np.testing.assert_allclose(read(), [1.0, 0.5, 1 / 3])
        # a new key makes a new file; the open reader keeps reading the old one without failing
        logger.log(3, {"discrete/train_loss": 0.25, "central/train_loss": 0.3})
        assert len(read()) == 3
    finally:
        reader.stdin.close()
        reader.wait(timeout=30)
    with open_for_reading(tmp_path / "data.partial.hdf5") as f:  # a reopened reader sees the new key
        np.testing.assert_array_equal(f["central/train_loss"][:], [np.nan] * 3 + [0.3])
        assert f.attrs["status"] == "running"
    logger.close("diverged", "non-finite loss")
    with open_for_reading(tmp_path / "data.hdf5") as f:
        assert f.attrs["status"] == "diverged" and f.attrs["status_reason"] == "non-finite loss"


def test_stopped_run_keeps_partial_and_resume_truncates(tmp_path):
    logger = H5Logger(tmp_path, {"config": {"steps": 10}})
    for step in range(6):
        logger.log(
            step, {"discrete/train_loss": float(step), "discrete/hessian_eigs": np.ones(1 + step // 3)}
        )
    assert logger.close("stopped", "SIGTERM", finalize=False) == tmp_path / "data.partial.hdf5"

    logger = H5Logger.resume(tmp_path, 4)
    assert logger.rows == 4
    logger.log(4, {"discrete/train_loss": 40.0, "discrete/hessian_eigs": np.ones(2)})
    logger.set_attrs(note="resumed")
    logger.close("completed")
    with open_for_reading(tmp_path / "data.hdf5") as f:
        np.testing.assert_array_equal(f["step"][:], [0, 1, 2, 3, 4])
        np.testing.assert_array_equal(f["discrete/train_loss"][:], [0, 1, 2, 3, 40])
        assert f["discrete/hessian_eigs"].shape == (5, 2)
        assert f.attrs["status"] == "completed" and f.attrs["note"] == "resumed"
        assert json.loads(f.attrs["config"]) == {"steps": 10}

    logger = H5Logger.resume(tmp_path, 2)  # a finished file is resumed too
    assert logger.rows == 2 and not (tmp_path / "data.hdf5").exists()
    logger.close("completed")


WRITER = textwrap.dedent(
    """
    import sys, time
    from centralflows.runner.io import H5Logger
    logger = H5Logger(sys.argv[1], {"config": {"steps": 10**6}})
    step = 0
    while True:
        values = {"discrete/train_loss": 1.0 / (step + 1), "discrete/hessian_eigs": [1.0] * (1 + step // 20)}
        if step >= 30:
            values["central/train_loss"] = 0.5
        logger.log(step, values)
        if step == 40:
            print("ready", flush=True)
        step += 1
    """
)


def test_sigkill_leaves_a_readable_file_that_can_be_resumed(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with open_for_reading(tmp_path / "data.partial.hdf5") as f:
        steps = f["step"][:]
        rows = len(steps)
        assert rows > 40 and np.array_equal(steps, np.arange(rows))
        assert f["discrete/train_loss"].shape[0] == rows and f["discrete/train_loss"][40] == 1 / 41
        assert f.attrs["status"] == "running"
        assert np.isnan(f["central/train_loss"][0]) and f["central/train_loss"][30] == 0.5
    logger = H5Logger.resume(tmp_path, 35)
    logger.log(35, {"discrete/train_loss": 0.0})
    logger.close("completed")
    with h5py.File(tmp_path / "data.hdf5", "r") as f:  # a finished file opens without SWMR too
        assert f["step"][-1] == 35 and f["discrete/train_loss"].shape == (36,)
