"""What a run job asks of its GPU: chunking that fits its memory, a share of a GPU, a compilation cache."""

from __future__ import annotations

import fcntl
import getpass
import math
import os
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from centralflows.plan.tree import deep_merge, get_path

# JAX takes this fraction of a GPU's memory as its pool at the first allocation (its default
# XLA_PYTHON_CLIENT_MEM_FRACTION): a whole-GPU run computes within it.
JAX_POOL = 0.75
# The part of a pool the chunked programs are sized to fill. The rest is for what lives beside them (the
# data, w, the optimizer state, LOBPCG's blocks, the other program's output) and for XLA:GPU assigning
# buffers differently from XLA:CPU, on which the memory table is measured: an estimate, not measured on a
# GPU (none was at hand).
HEADROOM = 0.8
# The fewest examples a ghost batch is cut to before fewer vectors run at once: below this a GPU waits on
# many small dependent kernels (an estimate: at 100 CIFAR images one ViT HVP is ~100 GFLOP).
MIN_GHOST = 100


def load_memory_table(path: str | Path | None) -> dict:
    """The `archs` of a memory table written by `bench/device_memory.py` ({} if none)."""
    if not path or not Path(path).exists():
        return {}
    return (yaml.safe_load(Path(path).read_text()) or {}).get("archs", {})


def program_bytes(entry: dict, examples: int, vectors: int) -> float:
    """Estimated bytes of one program (an `hvp` or `third` entry of the memory table): its fixed part plus,
    per example evaluated at once, the first vector's bytes and each further vector's."""
    return entry["fixed"] + examples * (entry["per_example"] + entry["per_example_vector"] * (vectors - 1))


def _ghost_sizes(n: int) -> list[int]:
    """Examples at once, largest first: n's divisors (no shorter last batch to compile apart)."""
    return [g for g in range(n, 0, -1) if n % g == 0]


def choose_chunking(entry: dict, n: int, vectors: int, pairs: int, budget: float) -> dict:
    """The run-config overrides (`eig.chunk_size`, `data.ghost_batch_size`) that fit `budget` bytes.

    The HVP block of `vectors` (eig.max_k) vectors and the third-derivative program of `pairs` pairs
    (k_c(k_c+1)/2) both run `chunk_size` at once, over `ghost_batch_size` examples at once. Preferred: the
    most vectors at once (a vmap shares the forward and backward pass of the network between its vectors,
    while separate chunks repeat it), then the largest ghost batch not below MIN_GHOST (a ghost batch
    only recomputes its forward pass); below that, one vector at a time in smaller ghost batches.

    Args:
        entry: the architecture's entry of the memory table (`hvp` and `third`, see program_bytes).
        n: examples of the run's training set.
        vectors: eig.max_k. pairs: third-derivative pairs at the largest k_c expected.
        budget: bytes the two programs may each take.

    Returns:
        {} when all runs at once fits, else {"eig": {"chunk_size": c}} and/or {"data": {...}}.

    Raises:
        ValueError: not even one vector over one example fits.
    """
    most = max(vectors, pairs)
    floor = min(n, MIN_GHOST)
    sizes = _ghost_sizes(n)
    candidates = [(c, g) for c in range(most, 0, -1) for g in sizes if g >= floor]
    candidates += [(1, g) for g in sizes if g < floor]
    for c, g in candidates:
        hvp, third = (
            program_bytes(entry["hvp"], g, min(c, vectors)),
            program_bytes(entry["third"], g, min(c, pairs)),
        )
        if max(hvp, third) <= budget:
            out = {}
            if c < most:
                out["eig"] = {"chunk_size": c}
            if g < n:
                out["data"] = {"ghost_batch_size": g}
            return out
    raise ValueError(f"one vector over one example needs more than {budget / 1e9:.1f} GB")


def is_small(run: dict, resources: dict) -> bool:
    """Whether the run's architecture shares a GPU with others (resources.small_runs.archs)."""
    return get_path(run, "arch.name") in resources["small_runs"]["archs"]


def gpu_percent(run: dict, resources: dict) -> int:
    """The share of one GPU a run job takes, in percent: 100, or 100 / small_runs.per_gpu."""
    return 100 // resources["small_runs"]["per_gpu"] if is_small(run, resources) else 100


def memory_fraction(run: dict, resources: dict) -> float:
    """The fraction of its GPU's memory a run's JAX takes: JAX_POOL, shared out among a GPU's small runs
    (together they take what one JAX process takes by default)."""
    return JAX_POOL * gpu_percent(run, resources) / 100


def job_env(run: dict, resources: dict) -> dict:
    """Environment a run job sets before JAX starts: a small run's memory fraction (JAX's default, 75 %
    of the GPU per process, would let two runs on one GPU die of OOM); nothing for a whole-GPU run."""
    if not is_small(run, resources):
        return {}
    return {"XLA_PYTHON_CLIENT_MEM_FRACTION": f"{memory_fraction(run, resources):g}"}


def device_chunking(run: dict, resources: dict, table: dict, device_bytes: float | None = None) -> dict:
    """The chunking overrides of a GPU run job (choose_chunking), for its share of a GPU of
    `resources.gpu_memory_gb`, or of the device's own limit if smaller; {} for an unmeasured architecture.

    `run` is the resolved run config; k_c is taken as min(3, max_k): up to 6 third-derivative pairs.
    """
    entry = table.get(get_path(run, "arch.name"))
    if entry is None:
        return {}
    pool = resources["gpu_memory_gb"] * 1e9 * memory_fraction(run, resources)
    if device_bytes is not None:
        pool = min(pool, device_bytes)
    k = max(run.get(p, {}).get("eig", {}).get("max_k", run["eig"]["max_k"]) for p in run["runs"])
    k_c = min(3, k)
    return choose_chunking(entry, run["data"]["n"], k, k_c * (k_c + 1) // 2, HEADROOM * pool)


def apply_chunking(run: dict, chunking: dict) -> dict:
    """The run config with the chunking overrides merged in (neither option changes its run id)."""
    return deep_merge(run, chunking)


def visible_gpus(environ=os.environ) -> list[str]:
    """The GPU ids a job on this machine may use: CUDA_VISIBLE_DEVICES if set, else nvidia-smi's list."""
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [d for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() not in ("", "-1")]
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def default_lock_dir() -> Path:
    """Where local jobs take their GPU slots: one folder per user and machine, shared by every workflow."""
    return Path(tempfile.gettempdir()) / f"centralflows-gpu-slots-{getpass.getuser()}"


def try_gpu_slot(percent: int, devices: list[str], lock_dir: Path, slots: int) -> tuple[str, list] | None:
    """One non-blocking attempt at a share of a GPU; (device id, held lock files) or None.

    Each GPU has `slots` slot files; a run of `percent` holds ceil(percent/100 x slots) of one GPU's under
    an exclusive flock until its process ends (a crashed job frees them too). Devices and slots are tried
    in order, so small runs fill one GPU before the next and leave whole GPUs to whole-GPU runs.
    """
    need = math.ceil(percent * slots / 100)
    lock_dir.mkdir(parents=True, exist_ok=True)
    for device in devices:
        held = []
        for slot in range(slots):
            f = open(lock_dir / f"gpu{device}.slot{slot}.lock", "w")  # noqa: SIM115 (held while running)
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                f.close()
                continue
            held.append(f)
            if len(held) == need:
                return device, held
        for f in held:
            f.close()
    return None


def take_gpu(run: dict, resources: dict, environ=os.environ, lock_dir: Path | None = None, log=None):
    """Pins a local run job to a GPU with room for its share (CUDA_VISIBLE_DEVICES) and sets its memory
    fraction, before JAX starts. Waits while no GPU has room (Snakemake's `gpu_percent` resource counts
    shares over all GPUs, not per GPU). A SLURM job keeps the GPU SLURM gave it; a machine without GPUs
    sets nothing.

    Returns:
        (the environment set, the lock files to keep open while the job runs)
    """
    env = job_env(run, resources)
    devices = [] if environ.get("SLURM_JOB_ID") else visible_gpus(environ)
    held = []
    if devices:
        share, slots = gpu_percent(run, resources), resources["small_runs"]["per_gpu"]
        while (got := try_gpu_slot(share, devices, lock_dir or default_lock_dir(), slots)) is None:
            if log is not None:
                log.info("waiting for room on one of the GPUs %s", ",".join(devices))
                log = None  # once
            time.sleep(5)
        device, held = got
        env["CUDA_VISIBLE_DEVICES"] = device
    environ.update(env)
    return env, held


def compilation_cache_dir(configured: str | None, environ=os.environ) -> str | None:
    """JAX's persistent compilation cache of a run job: `configured` (config.yaml compilation_cache), except
    in a SLURM job, which keeps it on its node's local disk (/tmp/<user>/centralflows-jax-cache), so that
    tens of jobs do not write one folder over a shared filesystem (jax-ml/jax#22718); the node's later jobs
    reuse it. None stays None (no cache)."""
    if configured is None or not environ.get("SLURM_JOB_ID"):
        return configured
    return str(Path("/tmp") / (environ.get("USER") or getpass.getuser()) / "centralflows-jax-cache")


def compiled_bytes(problem, program: str, vectors: int, chunk_size: int | None) -> int:
    """XLA's memory of one compiled program of a problem (temp + arguments + outputs, in bytes): the
    LOBPCG block (`hvp`, `vectors` vectors) or the third derivatives (`third`, all pairs of `vectors`),
    each as the engine compiles it, for the default backend. Compiles, never runs."""
    import jax

    from centralflows.engine.derivatives import third_derivative_pairs
    from centralflows.engine.eigs import apply_operator_rows

    w = jax.ShapeDtypeStruct(problem.w0.shape, problem.w0.dtype)
    if program == "hvp":
        V = jax.ShapeDtypeStruct((vectors, w.shape[0]), w.dtype)
        lowered = apply_operator_rows.lower(problem.loss_fn, w, w, V, chunk_size=chunk_size)
    else:
        U = jax.ShapeDtypeStruct((w.shape[0], vectors), w.dtype)
        lowered = jax.jit(lambda w, U: third_derivative_pairs(problem.loss_fn, w, U, chunk_size)).lower(w, U)
    m = lowered.compile().memory_analysis()
    return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes)


def fit_to_device(config: dict, resources: dict) -> tuple[dict, dict]:
    """A resolved run config chunked for its GPU's memory (device_chunking, with the memory table of
    resources.memory_table and the device's own pool limit); unchanged on any other backend, where
    chunks only cost time (XLA:CPU runs loops ~10x slower, jax-ml/jax#12868).

    Returns:
        (the config, the chunking overrides applied)
    """
    import jax

    if jax.default_backend() != "gpu":
        return config, {}
    limit = (jax.devices()[0].memory_stats() or {}).get("bytes_limit")
    chunking = device_chunking(config, resources, load_memory_table(resources["memory_table"]), limit)
    return apply_chunking(config, chunking), chunking


def peak_device_bytes() -> int | None:
    """The most memory JAX held on its first device so far (None where the backend does not say: CPU)."""
    import jax

    return (jax.devices()[0].memory_stats() or {}).get("peak_bytes_in_use")
