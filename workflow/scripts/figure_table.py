"""The small table of one figure: the processes and quantities its script's READS declares, per role,
with the cell name and eta. A declared quantity that a cell's run lacks fails here."""

import json
from pathlib import Path

import pandas as pd

from centralflows.analysis.contract import ContractError, members, missing_reads
from centralflows.analysis.tables import LONG_COLUMNS, log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
params = snakemake.params  # noqa: F821
entry, cells, reads = params.entry, params.cells, params.reads
runs, lrs = {}, {}
for table_path, info_path in zip(snakemake.input.tables, snakemake.input.infos, strict=True):  # noqa: F821
    runs[Path(info_path).stem] = pd.read_csv(table_path)
    lrs[Path(info_path).stem] = json.loads(Path(info_path).read_text())["attrs"]["config"]["opt"]["lr"]
frames = []
for role, value in params.roles.items():
    wanted = {(p, q) for p, quantities in reads[role].items() for q in quantities}
    for cell in members(value):
        run_id = cells[cell]
        table = runs[run_id]
        missing = missing_reads(table, reads[role])
        if missing:
            message = (
                f"figure {params.figure}: cell {cell!r} (role {role!r}, run {run_id}) has no "
                f"{', '.join(missing)} although the script's READS declares it: a misspelled name, "
                "or a quantity the run does not log"
            )
            log.error("%s", message)
            raise ContractError(message)
        keep = pd.Series(list(zip(table["process"], table["quantity"], strict=True)), index=table.index).isin(
            wanted
        )
        frame = table[keep].assign(cell=cell, lr=lrs[run_id])
        if entry["max_step"] is not None:
            frame = frame[frame["step"] <= entry["max_step"]]
        frames.append(frame)
# A computed figure (`cells: {}`, e.g. a toy) gets an empty table with the usual columns.
figure = (
    pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*LONG_COLUMNS, "cell", "lr"])
)
figure.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("%d rows for cells %s", len(figure), list(cells))
