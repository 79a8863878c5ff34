"""Dry runs of every scale and of the SLURM profile, in a fresh copy of the workflow; the config schema
stops typos at parse time."""

import pytest

from centralflows.plan import grid
from centralflows.plan.workflow import load_config

from .conftest import ROOT, snakemake


@pytest.mark.slow  # a full Snakemake parse: every run config resolved
@pytest.mark.parametrize("scale", ["paper", "quick", "ci"])
def test_dry_run_of_each_scale(scale, workflow_copy):
    # in a fresh copy: no figure is built there, so every one must be planned
    result = snakemake("-n", "--cores", "2", "--config", f"scale={scale}", cwd=workflow_copy)
    assert result.returncode == 0, result.stderr
    assert "plot_r3_central_flow" in result.stdout  # every scale builds the README figures
    assert ("download_cifar10" in result.stdout) == (scale != "ci")  # ci needs no download


@pytest.mark.slow  # a full Snakemake parse: every run config resolved
def test_the_paper_scale_states_its_cost_on_this_machine_before_any_job(workflow_copy):
    """The pre-flight lines: runs and device-hours of the selected scale on the machine at hand, from the
    resources tables, and (the paper scale is years of CPU) the scales that fit in a day here."""
    from centralflows.plan.cost import machine, preflight, scale_cost

    result = snakemake("-n", "--cores", "2", "--config", "scale=paper", cwd=workflow_copy)
    assert result.returncode == 0, result.stderr
    config = load_config(ROOT / "config.yaml")
    device, units = machine()
    lines = preflight(config, "paper").splitlines()
    assert result.stderr.count("Pre-flight:") == 1 and all(line in result.stderr for line in lines[:-1])
    paper = scale_cost(config, "paper", device)
    assert paper.runs == len(grid.plan(config, "paper").runs) and paper.measured == paper.runs
    line = next(line for line in lines if "scale=paper:" in line)
    if device == "cpu":  # the committed CPU table, central at k = 3: README's 92,780 core-hours
        assert 90_000 < paper.hours < 95_000
        assert f"scale=paper: {paper.runs} runs, ~{paper.hours:,.0f} CPU core-hours" in line
        assert f"years on {units} cores; measured)" in line
        assert "  fits in a day here: quick, ci" in lines


@pytest.mark.slow  # a full Snakemake parse: every run config resolved
def test_dry_run_of_the_slurm_profile_from_the_repo_root(workflow_copy):
    result = snakemake(
        "--cores", "4", "--profile", "slurm", "-n", env={"SLURM_PARTITION": "debug"}, cwd=workflow_copy
    )
    assert result.returncode == 0, result.stderr
    assert "slurm_partition=debug" in result.stdout
    assert "gpu=1" in result.stdout


@pytest.mark.slow  # a full Snakemake parse: every run config resolved
def test_check_target_dry_run(workflow_copy):
    # --forcerun: the dry run lists the rule even where the check output is already up to date
    result = snakemake(
        "check", "-n", "--forcerun", "check", "--cores", "2", "--config", "scale=ci", cwd=workflow_copy
    )
    assert result.returncode == 0, result.stderr
    assert "rule check" in result.stdout


@pytest.mark.slow
def test_schema_names_a_typo_in_config(workflow_copy):
    result = snakemake("-n", "--cores", "1", "--config", "scael=ci", cwd=workflow_copy)
    assert result.returncode != 0
    assert "'scael' was unexpected" in result.stderr + result.stdout


@pytest.mark.slow
def test_unknown_scale_is_named(workflow_copy):
    result = snakemake("-n", "--cores", "1", "--config", "scale=huge", cwd=workflow_copy)
    assert result.returncode != 0
    assert "unknown scale 'huge'" in result.stderr + result.stdout


@pytest.mark.slow
def test_w1_18_restart_waits_for_the_edge_of_its_source_run_at_paper_scale(workflow_copy):
    plan = grid.plan(load_config(ROOT / "config.yaml"), "paper")
    source, restart = plan.cells["gd_example"], plan.cells["gd_example_from_eos"]
    edge = f"results/paper/restarts/{source}/edge.npz"
    result = snakemake(
        "-n", "--forceall", "--cores", "2", "--config", "scale=paper", "--",
        f"results/paper/runs/{restart}/data.hdf5", cwd=workflow_copy,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = [block.split("\n", 1) for block in result.stdout.split("\nrule ")[1:]]  # (rule:, body)
    edge_jobs = [body for name, body in jobs if name == "edge_checkpoint:"]
    run_inputs = {
        body.split("output: ")[1].split(",")[0]: body.split("input: ")[1].split("\n")[0]
        for name, body in jobs
        if name == "run:"
    }
    assert len(edge_jobs) == 1
    assert f"input: results/paper/runs/{source}/data.hdf5\n" in edge_jobs[0]
    assert f"output: {edge}\n" in edge_jobs[0]
    assert edge in run_inputs[f"results/paper/runs/{restart}/data.hdf5"]  # the restart waits for it
    assert f"results/paper/runs/{source}/data.hdf5" in run_inputs  # and the source run is scheduled


@pytest.mark.slow  # a Snakemake parse of a part of the paper scale
def test_a_part_of_the_paper_scale_lists_exactly_the_jobs_of_its_cells(workflow_copy):
    """`only=[W1.11,lstm]`: W1.11's two LSTM cells, their tables, summary, claims and check; no figure
    (W1.11 needs the other four cells too) and no CIFAR-10 download."""
    paper = grid.plan(load_config(ROOT / "config.yaml"), "paper")  # the whole scale: same run ids
    runs = {paper.cells[f"gd_sequence.lstm.lr{lr}"] for lr in ("0.35", "0.7")}
    result = snakemake(
        "-n",
        "all",
        "check",
        "--cores",
        "2",
        "--config",
        "scale=paper",
        "only=[W1.11,lstm]",
        cwd=workflow_copy,
    )
    assert result.returncode == 0, result.stderr
    jobs = [block.split("\n", 1) for block in result.stdout.split("\nrule ")[1:]]  # (rule:, body)
    counts = {}
    for name, _ in jobs:
        counts[name.rstrip(":")] = counts.get(name.rstrip(":"), 0) + 1
    assert counts == {"run": 2, "aggregate": 2, "summary": 1, "claims": 1, "all": 1, "check": 1}
    outputs = {body.split("output: ")[1].split(",")[0] for name, body in jobs if name == "run:"}
    assert outputs == {f"results/paper/runs/{run}/data.hdf5" for run in runs}
