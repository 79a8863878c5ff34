"""A job given a GPU needs a GPU backend; what counts as given; XLA's deterministic GPU ops."""

import jax
import pytest

from centralflows.runner.backend import DETERMINISTIC_OPS, BackendError, gpu_given, prepare_job


@pytest.mark.parametrize(
    "env, node, given",
    [
        ({}, None, False),  # a laptop or CI machine: no GPU
        ({"SLURM_JOB_GPUS": "0"}, None, True),
        ({"SLURM_STEP_GPUS": "1,2"}, None, True),
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0"}, None, True),  # gres: SLURM sets it
        ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, None, False),
        ({"SLURM_JOB_ID": "7"}, None, False),  # a CPU job on a SLURM cluster
        ({"CUDA_VISIBLE_DEVICES": "0"}, None, False),  # set by hand outside SLURM: proves nothing
        ({}, "nvidia0", True),
        ({}, "nvidiactl", True),
    ],
)
def test_gpu_given(tmp_path, env, node, given):
    if node:
        (tmp_path / node).touch()
    assert bool(gpu_given(env, tmp_path)) is given


def test_a_gpu_job_without_a_gpu_backend_stops_with_what_to_install(tmp_path):
    assert jax.default_backend() == "cpu"  # this machine's JAX: no GPU backend
    env = {"SLURM_JOB_GPUS": "0", "XLA_FLAGS": "--xla_cpu_enable_fast_math=false"}
    with pytest.raises(BackendError) as error:
        prepare_job("gpu", env, tmp_path)
    message = str(error.value)
    assert "SLURM_JOB_GPUS=0" in message and "no GPU backend" in message
    assert 'pip install -U "jax[cuda12]"' in message and "resources={device: cpu}" in message
    assert env["XLA_FLAGS"] == f"--xla_cpu_enable_fast_math=false {DETERMINISTIC_OPS}"  # kept, then added


def test_a_job_given_no_gpu_or_told_cpu_runs_on_the_cpu_untouched(tmp_path):
    cases = [("gpu", {}, "no GPU given to this job"),
             ("cpu", {"SLURM_JOB_GPUS": "0"}, "resources.device cpu: no GPU check")]  # fmt: skip
    for device, env, why in cases:
        assert prepare_job(device, env, tmp_path) == f"cpu (cpu:cpu; {why})"
        assert "XLA_FLAGS" not in env
