"""Every figure script of the registry runs on a synthetic figure table and writes a PNG and a PDF."""

import runpy
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from centralflows import plotting, tables

from .conftest import LR, ROOT

FIGURES = yaml.safe_load((ROOT / "config.yaml").read_text())["figures"]


def adaptive_rows(long):
    """Rows of the RMSProp-variant quantities (REFERENCE §3.9) that the synthetic GD run lacks."""
    rng = np.random.default_rng(1)
    steps = np.sort(long["step"].unique())
    blocks = {
        ("discrete", "opt.nu"): rng.random((len(steps), 1)) + 1.0,
        ("central", "opt.nu"): np.ones((len(steps), 1)),
        ("discrete", "opt.effective_step_size"): rng.random((len(steps), 1)) * 0.01,
        ("central", "opt.effective_step_size"): np.full((len(steps), 1), 0.01),
        ("discrete", "opt.nu_selected_idx"): rng.random((len(steps), 25)) + 0.1,
        ("central", "opt.nu_selected_idx"): np.full((len(steps), 25), 0.5),
        ("central", "grad_sq_selected_idx"): np.full((len(steps), 25), 0.2),
        ("central", "predicted_grad_sq_selected_idx"): np.full((len(steps), 25), 0.5),
    }
    frames = [
        pd.DataFrame(
            {
                "run_id": "synthetic",
                "process": process,
                "step": np.repeat(steps, block.shape[1]),
                "quantity": quantity,
                "index": np.tile(np.arange(block.shape[1]) if block.shape[1] > 1 else [-1], len(steps)),
                "value": block.reshape(-1),
            }
        )
        for (process, quantity), block in blocks.items()
    ]
    long = pd.concat([long, *frames], ignore_index=True)
    return pd.concat([long, *flow_rows(long)], ignore_index=True)


def flow_rows(long):
    """Midpoint (a copy of the discrete run) and ablated-flow rows (the central flow, sharper, slower,
    with smaller steps) and the RMSProp harmonic-mean step size, for the acceleration figures."""
    midpoint = long[long["process"] == "discrete"].assign(process="midpoint")
    central = long[long["process"] == "central"]
    factors = {"train_loss": 1.2, "hessian_eigs": 1.3, "opt.effective_step_size": 0.8}
    scale = central["quantity"].map(factors)
    ablated = central.assign(process="ablated", value=central["value"] * scale.fillna(1.0))
    ess = long[long["quantity"] == "opt.effective_step_size"]
    harmonic = pd.concat([ess, ablated[ablated["quantity"] == "opt.effective_step_size"]])
    return [midpoint, ablated, harmonic.assign(quantity="opt.ess_harmonic_mean")]


def test_ablation_metrics_on_synthetic_table(synthetic_run):
    long, _ = tables.read_run(synthetic_run, "synthetic")
    metrics = tables._ablation_metrics(adaptive_rows(long))
    assert metrics["ablated_over_central_final_sharpness"] == pytest.approx(1.3)
    assert metrics["ablated_over_central_final_loss"] == pytest.approx(1.2)
    assert metrics["ablated_over_central_final_ess"] == pytest.approx(0.8)
    assert all(np.isnan(v) for v in tables._ablation_metrics(long).values())  # no ablated flow: NaN


def figure_table(hdf5, entry, cells):
    """The figure table as the `figure_table` rule builds it, from the synthetic run's long table."""
    long, _ = tables.read_run(hdf5, "synthetic")
    long = adaptive_rows(long)
    keep = long["process"].isin(entry["processes"]) & long["quantity"].isin(entry["quantities"])
    # every cell of the entry reads the synthetic run (a computed figure, `cells: []`, reads nothing)
    frame = pd.concat(
        [long[keep].assign(cell=cell, lr=LR) for cell in cells]
        or [long[keep].iloc[:0].assign(cell="", lr=LR)],
        ignore_index=True,
    )
    return frame if entry["max_step"] is None else frame[frame["step"] <= entry["max_step"]]


def test_every_registered_figure_has_a_script():
    for figure in FIGURES:
        assert (ROOT / "workflow/scripts/figures" / f"{figure}.py").is_file(), figure


@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_figure_script_writes_png_and_pdf(figure, synthetic_run, tmp_path):
    entry = FIGURES[figure]
    cells = [f"synthetic_cell{i}" for i in range(len(entry["cells"]))]
    table = figure_table(synthetic_run, entry, cells)
    path = tmp_path / "table.csv"
    table.to_csv(path, index=False)
    script = runpy.run_path(str(ROOT / "workflow/scripts/figures" / f"{figure}.py"))
    pdf, png = tmp_path / f"{figure}.pdf", tmp_path / f"{figure}.png"
    script["plot"](plotting.read_table(path), pdf, png, SimpleNamespace(entry=entry, cells=cells, smooth=5))
    assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


def test_validation_panels_are_titled_with_the_runs_eta_not_the_cell_name():
    table = pd.DataFrame({"cell": ["srmsprop_sequence.lstm.lr0.005"], "lr": [0.02]})
    assert plotting.run_title(table, "srmsprop_sequence.lstm.lr0.005") == "lstm η=0.02"
    assert plotting.run_title(table.drop(columns="lr"), "srmsprop_sequence.lstm.lr0.005") == "lstm lr0.005"
