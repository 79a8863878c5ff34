"""One row per cell with its key metrics (columns: centralflows.analysis.tables.SUMMARY_COLUMNS)."""

import json
from pathlib import Path

import pandas as pd

from centralflows.analysis.tables import SUMMARY_COLUMNS, log_to, summarize_run

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
smooth = snakemake.params.smooth  # noqa: F821
by_run = {}
for table_path, info_path in zip(snakemake.input.tables, snakemake.input.infos, strict=True):  # noqa: F821
    info = json.loads(Path(info_path).read_text())
    by_run[Path(info_path).stem] = summarize_run(pd.read_csv(table_path), info["attrs"], info["job"], smooth)
rows = [{**by_run[run_id], "cell": cell} for cell, run_id in snakemake.params.cells.items()]  # noqa: F821
summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS)
summary.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("summary of %d cells (%d runs)", len(summary), len(by_run))
