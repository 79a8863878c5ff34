"""Every figure script of the registry runs on a synthetic figure table and writes a PNG and a PDF."""

import runpy
from types import SimpleNamespace

import pytest
import yaml

from centralflows import plotting, tables

from .conftest import LR, ROOT

FIGURES = yaml.safe_load((ROOT / "config.yaml").read_text())["figures"]


def figure_table(hdf5, entry, cells):
    """The figure table as the `figure_table` rule builds it, from the synthetic run's long table."""
    long, _ = tables.read_run(hdf5, "synthetic")
    keep = long["process"].isin(entry["processes"]) & long["quantity"].isin(entry["quantities"])
    frame = long[keep].assign(cell=cells[0], lr=LR)
    return frame if entry["max_step"] is None else frame[frame["step"] <= entry["max_step"]]


def test_every_registered_figure_has_a_script():
    for figure in FIGURES:
        assert (ROOT / "workflow/scripts/figures" / f"{figure}.py").is_file(), figure


@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_figure_script_writes_png_and_pdf(figure, synthetic_run, tmp_path):
    entry = FIGURES[figure]
    cells = ["synthetic_cell"] * len(entry["cells"])
    table = figure_table(synthetic_run, entry, cells)
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    script = runpy.run_path(str(ROOT / "workflow/scripts/figures" / f"{figure}.py"))
    pdf, png = tmp_path / f"{figure}.pdf", tmp_path / f"{figure}.png"
    script["plot"](plotting.read_table(path), pdf, png, SimpleNamespace(entry=entry, cells=cells, smooth=5))
    assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
