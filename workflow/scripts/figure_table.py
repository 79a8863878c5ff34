"""The small table of one figure: its cells, processes and quantities, with the cell name and eta."""

import json
from pathlib import Path

import pandas as pd

from centralflows.tables import LONG_COLUMNS, log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
entry, cells = snakemake.params.entry, snakemake.params.cells  # noqa: F821
runs, lrs = {}, {}
for table_path, info_path in zip(snakemake.input.tables, snakemake.input.infos, strict=True):  # noqa: F821
    run_id = Path(info_path).stem
    table = pd.read_csv(table_path)
    keep = table["process"].isin(entry["processes"]) & table["quantity"].isin(entry["quantities"])
    runs[run_id] = table[keep]
    lrs[run_id] = json.loads(Path(info_path).read_text())["attrs"]["config"]["opt"]["lr"]
frames = []
for cell, run_id in cells.items():
    frame = runs[run_id].assign(cell=cell, lr=lrs[run_id])
    if entry["max_step"] is not None:
        frame = frame[frame["step"] <= entry["max_step"]]
    frames.append(frame)
# A computed figure (`cells: []`, e.g. a toy) gets an empty table with the usual columns.
figure = (
    pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*LONG_COLUMNS, "cell", "lr"])
)
figure.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("%d rows for cells %s", len(figure), list(cells))
