"""Ctrl-C in the terminal running Snakemake (SIGINT to its whole process group), or SIGINT / SIGTERM to
Snakemake alone, stops the workflow and the run job within seconds, and the run keeps what it computed:
a stopped partial file and a checkpoint of its last completed step, from which the next invocation
resumes (issue 15 item 6)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from centralflows.runner.attempts import read_attempts
from centralflows.runner.checkpoint import latest_checkpoint
from centralflows.runner.io import git_commit
from centralflows.runner.out_dir import prepare_out_dir
from centralflows.runner.sections import RunConfig


def a_ci_gd_run(workflow: Path) -> str:
    """The run id of a GD run of the ci scale (read from the status view: cell names may change)."""
    out = subprocess.run(
        [sys.executable, "-m", "centralflows", "status", "--scale", "ci"],
        cwd=workflow, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return next(word for line in out.splitlines() for word in line.split() if word.startswith("mlp-gd-"))


def steps_logged(partial: Path) -> int:
    try:
        with h5py.File(partial, "r", swmr=True) as f:
            return len(f["step"])
    except (OSError, KeyError):
        return 0


@pytest.mark.slow
@pytest.mark.parametrize(
    "how", ["ctrl-c", "sigint", "sigterm"]
)  # Ctrl-C: SIGINT to the terminal's process group; `kill -INT PID` / `kill PID`: to Snakemake alone
def test_stop_ends_snakemake_and_its_run_within_seconds_keeping_the_work(workflow_copy, how):
    run_id = a_ci_gd_run(workflow_copy)
    target = f"results/ci/runs/{run_id}/data.hdf5"
    out_dir = workflow_copy / target.removesuffix("/data.hdf5")
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(
        [str(bindir / "snakemake"), "--cores", "1", "--config", "scale=ci", "--", target],
        cwd=workflow_copy, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    deadline = time.time() + 600
    while steps_logged(out_dir / "data.partial.hdf5") < 3:
        assert proc.poll() is None and time.time() < deadline, proc.communicate()[0][-3000:]
        time.sleep(0.5)
    t0 = time.perf_counter()
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:  # forwarded to the run job by the workflow's onstart (Snakemake alone would wait for it)
        proc.send_signal(signal.SIGINT if how == "sigint" else signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    elapsed = time.perf_counter() - t0
    assert proc.returncode != 0 and elapsed < 20, (elapsed, output[-3000:])
    time.sleep(1)
    with pytest.raises(ProcessLookupError):  # neither Snakemake nor the run job is left behind
        os.killpg(proc.pid, 0)
    with h5py.File(out_dir / "data.partial.hdf5", "r") as f:
        assert f.attrs["status"] == "stopped" and len(f["step"]) >= 3
        logged = len(f["step"])
    checkpoint = latest_checkpoint(out_dir)
    assert checkpoint is not None and int(checkpoint.stem.split("_")[1]) >= logged - 1
    assert not (out_dir / "data.hdf5").exists()  # nothing that looks finished
    (stopped,) = read_attempts(out_dir)  # the stopped attempt's cost is kept for the run's total
    assert stopped["end"] == f"signal {int(signal.SIGTERM if how == 'sigterm' else signal.SIGINT)}"
    assert stopped["wall_s"] > 0 and stopped["cpu_s"] > 0 and stopped["peak_rss_bytes"] > 0
    assert stopped["git_commit"] == git_commit()  # the code that computed these steps
    # the next invocation (Snakemake's run rule calls the same function) resumes from that checkpoint
    with h5py.File(out_dir / "data.partial.hdf5", "r") as f:
        config = json.loads(f.attrs["config"])
    resumed = prepare_out_dir(RunConfig.from_dict({**config, "out": str(out_dir)}), discard_other=True)
    assert resumed.checkpoint_file == str(checkpoint)
