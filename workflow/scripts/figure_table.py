"""The small tables of one figure: the rows its script's READS declares, per role, read from the runs'
Parquet files with row filters (cell name added; Parquet), and the per-cell metadata of its cells
(cell, run_id, arch, opt, lr, ...; CSV). A declared quantity that a cell's run lacks fails here."""

from pathlib import Path

import pandas as pd

from centralflows.analysis.contract import ContractError, figure_rows, members
from centralflows.analysis.read import LONG_COLUMNS, cell_metadata, read_run_info, read_run_table
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
entry, cells, reads = params.entry, params.cells, params.reads
paths = {Path(p).stem: p for p in snakemake.input.tables}  # noqa: F821
frames = []
for role, value in params.roles.items():
    for cell in members(value):
        table = read_run_table(paths[cells[cell]], reads[role])
        try:
            frames.append(figure_rows(table, params.figure, role, cell, reads[role], entry["max_step"]))
        except ContractError as error:
            log.error("%s", error)
            raise
# A computed figure (`cells: {}`, e.g. a toy) gets an empty table with the usual columns.
figure = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*LONG_COLUMNS, "cell"])
figure = figure.astype({c: "category" for c in ("cell", "process", "quantity")})
figure.to_parquet(snakemake.output.table, index=False)  # noqa: F821
infos = {run_id: read_run_info(paths[run_id]) for run_id in set(cells.values())}
cell_metadata(cells, infos).to_csv(snakemake.output.cells, index=False)  # noqa: F821
log.info("%d rows for cells %s", len(figure), list(cells))
