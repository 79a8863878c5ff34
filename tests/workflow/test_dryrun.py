"""Dry runs of every scale and of the SLURM profile; the config schema stops typos at parse time."""

import pytest
import yaml

from centralflows import grid
from tests.workflow.conftest import ROOT

from .conftest import snakemake


@pytest.mark.parametrize("scale", ["paper", "quick", "ci"])
def test_dry_run_of_each_scale(scale):
    result = snakemake("-n", "--cores", "2", "--config", f"scale={scale}")
    assert result.returncode == 0, result.stderr
    # every scale builds the README figures (already built ones are not listed again)
    assert "plot_r3_central_flow" in result.stdout or (ROOT / f"figures/{scale}/r3_central_flow.png").exists()
    assert ("download_cifar10" in result.stdout) == (scale != "ci")  # ci needs no download


def test_dry_run_of_the_slurm_profile_from_the_repo_root():
    result = snakemake("--cores", "4", "--profile", "slurm", "-n", env={"SLURM_PARTITION": "debug"})
    assert result.returncode == 0, result.stderr
    assert "slurm_partition=debug" in result.stdout
    assert "gpu=1" in result.stdout


def test_check_target_dry_run():
    # --forcerun: the dry run lists the rule even where the check output is already up to date
    result = snakemake("check", "-n", "--forcerun", "check", "--cores", "2", "--config", "scale=ci")
    assert result.returncode == 0, result.stderr
    assert "rule check" in result.stdout


def test_schema_names_a_typo_in_config():
    result = snakemake("-n", "--cores", "1", "--config", "scael=ci")
    assert result.returncode != 0
    assert "'scael' was unexpected" in result.stderr + result.stdout


def test_unknown_scale_is_named():
    result = snakemake("-n", "--cores", "1", "--config", "scale=huge")
    assert result.returncode != 0
    assert "unknown scale 'huge'" in result.stderr + result.stdout


def test_w1_18_restart_waits_for_the_edge_of_its_source_run_at_paper_scale():
    plan = grid.plan(yaml.safe_load((ROOT / "config.yaml").read_text()), "paper")
    source, restart = plan.cells["vit_gd_lr0.02"], plan.cells["vit_gd_lr0.02_from_eos"]
    edge = f"results/paper/restarts/{source}/edge.npz"
    result = snakemake(
        "-n", "--forceall", "--cores", "2", "--config", "scale=paper", "--",
        f"results/paper/runs/{restart}/data.hdf5",
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
