"""One row per cell: its metadata and its run's metrics (centralflows.analysis.metrics.SUMMARY_COLUMNS)."""

from pathlib import Path

from centralflows.analysis.metrics import summarize_run, summary_table
from centralflows.analysis.read import read_run_info, read_run_table
from centralflows.plan.logs import log_to

log = log_to(snakemake.log[0])  # noqa: F821 (injected by Snakemake)
smooth = snakemake.params.smooth  # noqa: F821
infos, metrics = {}, {}
for path in snakemake.input.tables:  # noqa: F821
    run_id = Path(path).stem
    infos[run_id] = read_run_info(path)
    metrics[run_id] = summarize_run(read_run_table(path), infos[run_id]["attrs"], smooth)
summary = summary_table(snakemake.params.cells, infos, metrics)  # noqa: F821
summary.to_csv(snakemake.output[0], index=False)  # noqa: F821
log.info("summary of %d cells (%d runs)", len(summary), len(metrics))
