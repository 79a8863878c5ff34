"""A run job given a GPU whose JAX has no GPU backend stops at once, with exit status 2 and what to
install; `resources={device: cpu}` opts out (a real Snakemake run of one ci cell, on this CPU machine)."""

import time

import pytest

from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config

from .conftest import snakemake

GIVEN = {"SLURM_JOB_ID": "1", "SLURM_JOB_GPUS": "0", "CUDA_VISIBLE_DEVICES": "0"}  # as under `--gpus=1`


@pytest.mark.slow  # a Snakemake parse and three attempts (rule run: retries 2), each stopping at once
def test_a_gpu_job_without_gpu_jax_stops_before_building_anything(workflow_copy):
    run_id = plan(load_config(workflow_copy / "config.yaml"), "ci").cells["mlp_gd"]
    target = f"results/ci/runs/{run_id}/data.hdf5"
    t0 = time.perf_counter()
    result = snakemake("--cores", "1", "--config", "scale=ci", "--", target,
                       cwd=workflow_copy, env=GIVEN, timeout=300)  # fmt: skip
    wall = time.perf_counter() - t0
    assert result.returncode != 0 and "non-zero exit status 2" in result.stderr, result.stderr[-3000:]
    log = (workflow_copy / f"results/ci/logs/run/{run_id}.log").read_text()
    assert "SLURM allocated GPUs to this job (SLURM_JOB_GPUS=0)" in log and "no GPU backend" in log
    assert 'pip install -U "jax[cuda12]"' in log and "Traceback" not in log
    assert 'pip install -U "jax[cuda12]"' in result.stderr  # on the console too
    assert not (workflow_copy / f"results/ci/runs/{run_id}").exists()  # nothing built, nothing written
    assert wall < 120, wall


@pytest.mark.slow
def test_told_cpu_the_same_job_runs(workflow_copy):
    run_id = plan(load_config(workflow_copy / "config.yaml"), "ci").cells["mlp_gd"]
    target = f"results/ci/runs/{run_id}/data.hdf5"
    result = snakemake("--cores", "1", "--config", "scale=ci", "resources={device: cpu}", "--", target,
                       cwd=workflow_copy, env=GIVEN, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    log = (workflow_copy / f"results/ci/logs/run/{run_id}.log").read_text()
    assert "computes on cpu (cpu:cpu; resources.device cpu: no GPU check)" in log
