"""Each attempt at a run appends its cost and its end, so a run spread over jobs reports its whole cost."""

import os

import pytest

from centralflows.runner.attempts import attempt, attempt_totals, read_attempts


class Stopped(Exception):
    signum = 15  # as the run's RunStopped carries the signal that stopped it


def burn_cpu(seconds: float) -> None:
    import time

    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_every_attempt_is_recorded_however_it_ends(tmp_path):
    assert read_attempts(tmp_path) == [] and attempt_totals([])["attempts"] == 0
    with pytest.raises(Stopped), attempt(tmp_path, resumed_from=""):
        burn_cpu(0.2)
        raise Stopped
    with pytest.raises(ValueError), attempt(tmp_path, resumed_from="checkpoint_000003.npz"):
        raise ValueError("bad")
    with attempt(tmp_path, resumed_from="checkpoint_000003.npz") as record:
        record["steps"] = 7
        burn_cpu(0.1)
    first, second, third = read_attempts(tmp_path)
    assert [first["end"], second["end"], third["end"]] == ["signal 15", "ValueError", "completed"]
    assert third["resumed_from"] == "checkpoint_000003.npz" and third["steps"] == 7
    assert f"{os.cpu_count()} cores" in first["processor"]  # the machine that computed these steps
    assert first["cpu_s"] >= 0.19 and third["cpu_s"] >= 0.09 and first["wall_s"] >= first["cpu_s"] - 0.05
    totals = attempt_totals(read_attempts(tmp_path))
    assert totals["attempts"] == 3
    assert totals["cpu_s"] == pytest.approx(
        round(first["cpu_s"] + second["cpu_s"] + third["cpu_s"], 1), abs=0.1
    )
    assert totals["peak_rss_bytes"] == max(r["peak_rss_bytes"] for r in (first, second, third)) > 0
