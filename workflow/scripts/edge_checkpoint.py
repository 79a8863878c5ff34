"""The source run's checkpoint at its edge step (centralflows.restart.edge_checkpoint)."""

from centralflows.restart import RestartError, edge_checkpoint
from centralflows.tables import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
path, step = edge_checkpoint(snakemake.input.hdf5, snakemake.output[0])  # noqa: F821
if step >= snakemake.params.before:  # noqa: F821
    path.unlink()
    raise RestartError(
        f"{snakemake.input.hdf5} reaches 2/eta at step {step}, not before {snakemake.params.before}, "  # noqa: F821
        "the last step of the cells restarted from it: raise their `steps`"
    )
log.info("edge step %d of %s -> %s", step, snakemake.input.hdf5, path)  # noqa: F821
