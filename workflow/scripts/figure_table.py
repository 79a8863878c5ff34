"""The small tables of one figure: the rows its script's READS declares, per role, read from the runs'
Parquet files with row filters (cell name added; Parquet), and the per-cell metadata of its cells
(cell, run_id, arch, opt, lr, ...; CSV). A declared quantity that a cell's run lacks fails here."""

from pathlib import Path

import pandas as pd

from centralflows.analysis.contract import ContractError, members, missing_reads
from centralflows.analysis.read import LONG_COLUMNS, cell_metadata, read_run_info, read_run_table
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
entry, cells, reads = params.entry, params.cells, params.reads
paths = {Path(p).stem: p for p in snakemake.input.tables}  # noqa: F821
frames = []
for role, value in params.roles.items():
    for cell in members(value):
        run_id = cells[cell]
        table = read_run_table(paths[run_id], reads[role])
        missing = missing_reads(table, reads[role])
        if missing:
            message = (
                f"figure {params.figure}: cell {cell!r} (role {role!r}, run {run_id}) has no "
                f"{', '.join(missing)} although the script's READS declares it: a misspelled name, "
                "or a quantity the run does not log"
            )
            log.error("%s", message)
            raise ContractError(message)
        if entry["max_step"] is not None:
            table = table[table["step"] <= entry["max_step"]]
        frames.append(table.assign(cell=cell))
# A computed figure (`cells: {}`, e.g. a toy) gets an empty table with the usual columns.
figure = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*LONG_COLUMNS, "cell"])
figure = figure.astype({c: "category" for c in ("cell", "process", "quantity")})
figure.to_parquet(snakemake.output.table, index=False)  # noqa: F821
infos = {run_id: read_run_info(paths[run_id]) for run_id in set(cells.values())}
cell_metadata(cells, infos).to_csv(snakemake.output.cells, index=False)  # noqa: F821
log.info("%d rows for cells %s", len(figure), list(cells))
