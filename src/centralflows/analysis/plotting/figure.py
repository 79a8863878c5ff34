"""The Snakemake adapter of the figure scripts: read the figure table, draw under the contract, save."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from centralflows.analysis.contract import Contract, ContractError
from centralflows.analysis.plotting.primitives import contract
from centralflows.plan.logs import log_to


def read_table(path, cells=None) -> pd.DataFrame:
    """The figure table written by the `figure_table` rule (Parquet), with its per-cell metadata table
    (`cells`, CSV; default: `<figure>.cells.csv` beside it) as `attrs["cells"]` = {cell: {lr, ...}}."""
    path = Path(path)
    table = pd.read_parquet(path)
    meta = pd.read_csv(cells or path.with_suffix(".cells.csv"))
    table.attrs["cells"] = meta.set_index("cell", drop=False).to_dict("index")
    return table


def run_figure(plot, smk):
    """Runs a figure script's `plot(table, pdf, png, params)` on the inputs of its Snakemake rule, under
    the contract of its READS: a read outside them, or an empty curve, fails naming the figure."""
    log = log_to(smk.log[0])
    try:
        with contract(Contract(smk.params.figure, smk.params.cells, smk.params.reads)):
            plot(read_table(smk.input.table, smk.input.cells), smk.output.pdf, smk.output.png, smk.params)
    except ContractError as error:
        log.error("%s", error)
        raise
