"""The source run's checkpoint at its edge step (centralflows.runner.restart.edge_checkpoint)."""

from centralflows.runner.logs import log_to
from centralflows.runner.restart import RestartError, edge_checkpoint, edge_step

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
source, before = snakemake.input.hdf5, snakemake.params.before  # noqa: F821
step = edge_step(source)
if step >= before:
    raise RestartError(
        f"{source} reaches 2/eta at step {step}, not before step {before}, the last step of the cells "
        "restarted from it: raise their `steps`"
    )
path, _ = edge_checkpoint(source, snakemake.output[0])  # noqa: F821
log.info("edge step %d of %s -> %s", step, source, path)
