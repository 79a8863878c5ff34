"""The status view on real small runs: completed, running (SWMR partial file), stopped after a SIGKILL."""

import os
import signal
import subprocess
import sys
import time

import pytest

from centralflows.plan import grid
from centralflows.plan.workflow import load_config
from centralflows.runner import status
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import run

from .conftest import ROOT

CELL = {
    "data": {"name": "synthetic-cifar10", "n": 32, "n_test": 16},
    "arch": {"name": "mlp", "width": 16},
    "opt": {"name": "gd", "lr": 0.05},
    "runs": ["discrete"],
}


def test_a_finished_run_is_completed_with_its_steps_and_rate(tmp_path):
    run(resolve_config({**CELL, "steps": 5, "out": str(tmp_path)}))
    s = status.read_status(tmp_path, None, stale_s=300, now=time.time())
    assert (s.state, s.step, s.steps) == ("completed", 5, 5)
    assert s.seconds_per_step > 0 and s.eta_s is None
    assert status.read_status(tmp_path / "nothing", 7, 300, time.time()).state == "pending"


@pytest.mark.slow
def test_a_run_in_progress_is_running_then_stopped_once_killed(tmp_path):
    config = resolve_config({**CELL, "steps": 100000, "out": str(tmp_path)})
    code = (
        "from centralflows.runner.experiment import run; from centralflows.runner.sections import RunConfig; "
        f"run(RunConfig.from_dict({config.to_dict()!r}))"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=os.environ.copy())
    try:
        deadline, s = time.time() + 600, None
        while time.time() < deadline:
            s = status.read_status(tmp_path, None, stale_s=300, now=time.time())
            if s.state == "running" and s.step >= 3:
                break
            time.sleep(1)
        assert s.state == "running" and s.step >= 3 and s.steps == 100000, s
        assert s.eta_s > 0
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    later = time.time() + 1000  # the partial file has not grown for 1000 s
    s = status.read_status(tmp_path, None, stale_s=300, now=later)
    assert s.state == "stopped" and s.step >= 3 and "no progress" in s.reason


def test_every_cell_of_the_scale_is_listed(tmp_path, capsys):
    assert (
        status.main(["--scale", "ci", "--results", str(tmp_path), "--config", str(ROOT / "config.yaml")]) == 0
    )
    out = capsys.readouterr().out
    plan = grid.plan(load_config(ROOT / "config.yaml"), "ci")
    for cell in plan.cells:
        assert f"\n{cell} " in out
    assert f"{len(plan.runs)} runs ({len(plan.cells)} cells): {len(plan.runs)} pending" in out


def test_an_unknown_scale_is_named_with_exit_code_2(capsys):
    assert status.main(["--scale", "huge", "--config", str(ROOT / "config.yaml")]) == 2
    assert "unknown scale 'huge'" in capsys.readouterr().err
