"""The source run's checkpoint at its edge step (centralflows.analysis.onset.edge_step finds the step,
centralflows.runner.restart.edge_checkpoint writes the state there)."""

import sys

from centralflows.analysis.onset import EDGE_CRITERION, NoOnset, edge_step
from centralflows.plan.device import take_gpu
from centralflows.plan.logs import log_to
from centralflows.runner.backend import start_job
from centralflows.runner.restart import RestartError, edge_checkpoint

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
# before JAX starts: a GPU with room for the source run's share of one (as its `run` job)
gpu_env, gpu_slots = take_gpu(snakemake.params.run, snakemake.config["resources"], log=log)  # noqa: F821
# a GPU job without a GPU backend stops here; resources.device is read from the config, not a
# param, so that choosing the device reruns no finished run
start_job(snakemake.config["resources"]["device"], log)  # noqa: F821
source, before = snakemake.input.hdf5, snakemake.params.before  # noqa: F821
try:
    step = edge_step(source)
    if step >= before:
        raise RestartError(
            f"{source} reaches 2/eta at step {step}, not before step {before}, the last step of the "
            "cells restarted from it: raise their `steps`"
        )
except (NoOnset, RestartError) as error:  # the message alone (the log shows it): no restart point in this run
    log.error(
        "%s\nThe cells restarted from this run's edge need it to reach the edge of stability within its "
        "steps: raise its learning rate or steps at this scale (workflow/cells.yaml, `scales:`).",
        error,
    )
    sys.exit(2)
path, _ = edge_checkpoint(source, snakemake.output[0], step, EDGE_CRITERION)  # noqa: F821
log.info("edge step %d of %s -> %s", step, source, path)
