"""The device of a job: was it given a GPU, and can its JAX use one (a GPU job never falls back to CPU)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

# XLA's deterministic GPU kernels (scatter-adds and reductions in a fixed order): a resumed run repeats
# the uninterrupted trajectory. XLA reads XLA_FLAGS when JAX initialises its backends, not at import.
DETERMINISTIC_OPS = "--xla_gpu_deterministic_ops=true"
INSTALL = (
    'pip install -U "jax[cuda12]" (environment.yml: `jax[cuda12]` in place of `jax`), '
    "in the environment the jobs run in"
)
_SLURM_GPUS = ("SLURM_JOB_GPUS", "SLURM_STEP_GPUS")
_NVIDIA = ("nvidia0", "nvidiactl")


class BackendError(RuntimeError):
    """A job that was given a GPU finds no GPU backend in its JAX."""


def gpu_given(env=None, dev="/dev") -> str:
    """Why this process counts as given a GPU, or "" when it was not.

    Given: SLURM allocated GPUs to the job (SLURM_JOB_GPUS, SLURM_STEP_GPUS, or CUDA_VISIBLE_DEVICES
    inside a SLURM job, which SLURM sets under a gres allocation), or the node has an NVIDIA device.

    Args:
        env: the environment (default os.environ).
        dev: the device folder (default /dev).
    """
    env = os.environ if env is None else env
    for key in _SLURM_GPUS:
        if env.get(key):
            return f"SLURM allocated GPUs to this job ({key}={env[key]})"
    visible = env.get("CUDA_VISIBLE_DEVICES", "")
    if env.get("SLURM_JOB_ID") and visible not in ("", "NoDevFiles", "-1"):
        return f"SLURM allocated GPUs to this job (CUDA_VISIBLE_DEVICES={visible})"
    for name in _NVIDIA:
        if (Path(dev) / name).exists():
            return f"this node has an NVIDIA GPU ({Path(dev) / name})"
    return ""


def deterministic_gpu_ops(env=None) -> None:
    """Adds DETERMINISTIC_OPS to env["XLA_FLAGS"] (default os.environ) unless the flag is already set.

    Only for GPU jobs: XLA:CPU ignores it, but a jaxlib that no longer knew the flag would abort at start.
    """
    env = os.environ if env is None else env
    flags = env.get("XLA_FLAGS", "")
    if "xla_gpu_deterministic_ops" not in flags:
        env["XLA_FLAGS"] = f"{flags} {DETERMINISTIC_OPS}".strip()


def prepare_job(device: str, env=None, dev="/dev") -> str:
    """Checks and prepares JAX's backend for a workflow job; call it before JAX initialises its backends.

    A job computing on `device` gpu that was given a GPU (gpu_given) gets XLA's deterministic GPU ops
    and must find a GPU backend; any other job (device cpu, or no GPU given) runs where JAX puts it, on
    a CPU-only machine the CPU, unchanged.

    Args:
        device: what the job computes on, the workflow config's `resources.device` (cpu or gpu).
        env: the environment (default os.environ); XLA_FLAGS is set there.
        dev: the device folder (default /dev).

    Returns:
        What the job computes on, for its log.

    Raises:
        BackendError: a GPU job whose JAX has no GPU backend; the message says what to install.
    """
    given = gpu_given(env, dev) if device == "gpu" else ""
    if given:
        deterministic_gpu_ops(env)
    import jax

    backend = jax.default_backend()
    if given and backend != "gpu":
        raise BackendError(
            f"{given}, but JAX {jax.__version__} here has no GPU backend (it has {backend}): the run "
            f"would compute on the CPU, ~1000x slower, and hit its time limit. Install JAX for CUDA: "
            f"{INSTALL}; `python -c 'import jax; print(jax.devices())'` on a GPU node must list the GPU. "
            "To run on the CPU on purpose, without this check: --config 'resources={device: cpu}'."
        )
    devices = ", ".join(sorted({f"{d.platform}:{d.device_kind}" for d in jax.devices()}))
    why = given or ("resources.device cpu: no GPU check" if device == "cpu" else "no GPU given to this job")
    return f"{backend} ({devices}; {why})"


def start_job(device: str, log) -> None:
    """prepare_job for a workflow script: logs the device, or the error and exits with status 2.

    The check comes before anything is built, so a job with the wrong JAX stops in seconds.
    """
    try:
        log.info("computes on %s", prepare_job(device))
    except BackendError as error:
        log.error("%s", error)
        print(f"error: {error}", file=sys.__stderr__)  # the console too: the log has replaced stderr
        raise SystemExit(2) from None
