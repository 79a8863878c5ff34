"""One run's HDF5 -> its long table and a JSON of its attributes and job record."""

import json
import sys
from pathlib import Path

from centralflows.analysis.tables import log_to, read_run

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
run_id = snakemake.wildcards.run_id  # noqa: F821
try:
    table, attrs = read_run(snakemake.input.hdf5, run_id)  # noqa: F821
except OSError as error:  # a truncated or damaged file (copied, or a full disk): say how to recompute it
    folder = Path(snakemake.input.hdf5).parent  # noqa: F821
    message = (
        f"error: {snakemake.input.hdf5} cannot be read ({error}); recompute it with\n"  # noqa: F821
        f"  rm -r {folder} && snakemake <the same options>"
    )
    log.error("%s", message)
    sys.exit(message)
with open(snakemake.input.job) as f:  # noqa: F821
    job = json.load(f)
table.to_csv(snakemake.output.table, index=False)  # noqa: F821
with open(snakemake.output.info, "w") as f:  # noqa: F821
    json.dump({"attrs": attrs, "job": job}, f, indent=2, default=str)
log.info("%s: %d rows, %d quantities", run_id, len(table), table["quantity"].nunique())
