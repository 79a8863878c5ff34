"""Run one cell: resolve its config, resume from the newest checkpoint if any, record the job."""

import json
import os
import socket
import sys
import time
from pathlib import Path

import jax

from centralflows.plan.device import compilation_cache_dir, fit_to_device, peak_device_bytes, take_gpu
from centralflows.plan.logs import log_to
from centralflows.runner.attempts import attempt, attempt_totals, read_attempts
from centralflows.runner.backend import start_job
from centralflows.runner.config import RunConfig, resolve_config
from centralflows.runner.experiment import RunStopped, prepare_out_dir, run
from centralflows.runner.io import git_commit
from centralflows.runner.options import flatten, nest

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
resources = snakemake.config["resources"]  # noqa: F821
# before JAX starts: a GPU with room for this run's share of one, and a small run's memory fraction
gpu_env, gpu_slots = take_gpu(snakemake.params.run, resources, log=log)  # noqa: F821 (slots held till exit)
log.info("GPU environment %s", gpu_env)
# a GPU job without a GPU backend stops here (this starts JAX); resources.device is read from the
# config, not a param, so that choosing the device reruns no finished run
start_job(resources["device"], log)
cache = compilation_cache_dir(snakemake.params.compilation_cache)  # noqa: F821 (node-local under SLURM)
if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)  # the small programs too
out_dir = Path(snakemake.params.out_dir)  # noqa: F821
config = resolve_config(snakemake.params.run).to_dict()  # noqa: F821
config["out"] = str(out_dir)
# on a GPU: eig.chunk_size and data.ghost_batch_size for its memory (neither changes the run or its id)
config, chunking = fit_to_device(config, resources)
config = RunConfig.from_dict(config)
log.info("chunking for the device's memory: %s", chunking or "none")
# the workflow owns its folders: resume this run's newest checkpoint, delete a stale run's work; the
# folder's name hashes the cell's settings, so a run started under other defaults goes on with them
config = prepare_out_dir(config, discard_other=True, set_keys=flatten(nest(snakemake.params.run)))  # noqa: F821
checkpoint = config.checkpoint_file
log.info("cells %s, resume from %s", snakemake.params.cells, checkpoint)  # noqa: F821

start = time.perf_counter()
try:  # each attempt's cost goes to <run>/attempts.jsonl, a stopped or failed one's too
    # and the code: a paper run resumed across sessions may have been computed by several versions
    code = git_commit()
    with attempt(out_dir, resumed_from=str(checkpoint or ""), host=socket.gethostname(), git_commit=code):
        path = run(config)
except RunStopped as stop:  # SIGTERM (SLURM preemption) or SIGINT: exit as a signal would
    log.warning("%s", stop)
    sys.exit(128 + stop.signum)
job = {
    "run_id": out_dir.name,
    "cells": list(snakemake.params.cells),  # noqa: F821
    "slurm_job_id": os.environ.get("SLURM_JOB_ID", ""),  # proves in CI that the job ran under SLURM
    "host": socket.gethostname(),
    "resumed_from": str(checkpoint) if checkpoint else "",
    "wall_s": time.perf_counter() - start,  # of this attempt
    "gpu_env": gpu_env,  # CUDA_VISIBLE_DEVICES and memory fraction this job set
    "chunking": chunking,
    "peak_device_bytes": peak_device_bytes(),  # None on CPU
    "all_attempts": attempt_totals(read_attempts(out_dir)),  # the run's whole cost, resumes included
}
Path(snakemake.output.job).write_text(json.dumps(job, indent=2))  # noqa: F821
log.info("wrote %s in %.1f s", path, job["wall_s"])
