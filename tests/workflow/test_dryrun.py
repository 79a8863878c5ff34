"""Dry runs of every scale and of the SLURM profile; the config schema stops typos at parse time."""

import pytest

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
