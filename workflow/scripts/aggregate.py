"""One run's HDF5 -> its long table: one Parquet file, the run's info (attributes, job) in its metadata."""

import json
import sys
from pathlib import Path

from centralflows.analysis.read import read_run, write_run_table
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
run_id = snakemake.wildcards.run_id  # noqa: F821
try:
    table, attrs = read_run(snakemake.input.hdf5)  # noqa: F821
except (OSError, ValueError) as error:  # a truncated or damaged file (copied, a full disk): how to redo it
    folder = Path(snakemake.input.hdf5).parent  # noqa: F821
    message = (
        f"error: {snakemake.input.hdf5} cannot be read ({error}); recompute it with\n"  # noqa: F821
        f"  rm -r {folder} && snakemake <the same options>"
    )
    log.error("%s", message)
    sys.exit(message)
with open(snakemake.input.job) as f:  # noqa: F821
    job = json.load(f)
write_run_table(table, {"attrs": attrs, "job": job}, snakemake.output.table)  # noqa: F821
log.info("%s: %d rows, %d quantities", run_id, len(table), table["quantity"].nunique())
