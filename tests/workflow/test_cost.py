"""The pre-flight cost lines: each scale's runs and device-hours from the resources tables."""

from centralflows.plan.cost import preflight, scale_cost
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config

from .conftest import ROOT

CONFIG = load_config(ROOT / "config.yaml")


def test_a_scale_that_fits_is_one_line_and_one_that_does_not_lists_the_others(monkeypatch):
    monkeypatch.chdir(ROOT)  # the tables' paths are relative to the repository root
    ci = preflight(CONFIG, "ci", device="cpu", units=2).splitlines()
    assert len(ci) == 2 and ci[1].startswith("  scale=ci: ") and "guessed: no run measured" in ci[1]
    paper = preflight(CONFIG, "paper", device="cpu", units=2).splitlines()
    assert paper[1].endswith("; measured)  <- selected") and "years on 2 cores" in paper[1]
    assert [line.split(":")[0] for line in paper[2:4]] == ["  scale=quick", "  scale=ci"]
    assert paper[4] == "  fits in a day here: quick, ci"
    assert paper[5].startswith("  on GPUs (profiles/slurm): scale=paper ~")


def test_unmeasured_runs_fall_back_to_the_runtime_guesses(monkeypatch):
    monkeypatch.chdir(ROOT)
    ci, runs = scale_cost(CONFIG, "ci", "cpu"), plan(CONFIG, "ci").runs.values()
    assert ci.measured == 0 and ci.runs == len(runs)  # no ci cell is in the table of paper cells
    r = CONFIG["resources"]["runtime"]  # minutes per 1000 steps x process weights, no job margins
    minutes = [
        run["steps"]
        / 1000
        * r["per_kstep"][run["arch"]["name"]]
        * sum(r["process_weight"][p] for p in run["runs"])
        for run in runs
    ]
    assert abs(ci.hours - sum(minutes) / 60) < 1e-9
