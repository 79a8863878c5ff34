"""A scale's claims and figures read from runs still in progress: the registry's thresholds and figure
scripts on the paper scale's own run ids, with how far each run got."""

import pytest

from centralflows.analysis import in_progress, long_run
from centralflows.analysis.contract import ContractError
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config
from centralflows.runner.io import H5Logger

from .conftest import ROOT

STEPS = 12
CONFIG = load_config(ROOT / "config.yaml")
PAPER = plan(CONFIG, "paper")


def write_paper_run(folder, lr: float, steps: int = STEPS, eigs: bool = True) -> H5Logger:
    """A paper LSTM run in progress: GD's top effective eigenvalue reaches 2 at step 5, then alternates
    2.4 / 2.0 (median after the onset 2.4); the central flow's stays at 2.0005 at most."""
    run = {
        "steps": 2000,
        "opt": {"name": "gd", "lr": lr},
        "arch": {"name": "lstm"},
        "data": {"name": "sorting"},
    }
    logger = H5Logger(folder, {"config": run})
    for t in range(steps):
        top = 1 + 0.2 * t if t < 5 else (2.4 if t % 2 else 2.0)
        row = {"discrete/train_loss": 1.0 / (1 + t), "central/train_loss": 1.0 / (1 + t)}
        row |= {"discrete/eig_logs/hvps": 10 * (t + 1), "central/eig_logs/hvps": 20 * (t + 1)}
        if eigs:
            row |= {
                "discrete/effective_hessian_eigs": [top, 0.5],
                "discrete/hessian_eigs": [top / lr, 0.5 / lr],
                "central/effective_hessian_eigs": [min(top, 2.0005), 0.5],
            }
        logger.log(t, row)
    return logger


def test_the_claims_so_far_are_the_scales_claims_on_the_cells_these_runs_compute(tmp_path):
    """lstm_gd's stopped run at step 12 of 2000 gets the paper scale's claims on its cells with the
    registry's thresholds and its step count; claims on cells no run here computes are not listed."""
    run_id = PAPER.cells["lstm_gd"]
    write_paper_run(tmp_path / run_id, 0.35).close("stopped", finalize=False)  # data.partial.hdf5 stays
    assert long_run.run_file(tmp_path / run_id).name == "data.partial.hdf5"
    runs = in_progress.read_runs([long_run.run_file(tmp_path / run_id)], PAPER)
    table = in_progress.claims_so_far(runs, CONFIG, PAPER).set_index("claim")
    assert set(table["cell"]) == {"lstm_gd"}  # not gd_example's claims, whose run is not here
    assert set(table.index) == {c for c, claim in CONFIG["claims"].items() if "lstm_gd" in claim["cells"]}
    sharpness = table.loc["gd_sharpness_at_2_over_eta"]
    assert sharpness["value"] == pytest.approx(2.4) and sharpness["status"] == "fail"
    assert sharpness["threshold"] == ">= 1.7 and <= 2.3" and sharpness["steps"] == f"{STEPS} / 2000"
    pinned = table.loc["central_pins_at_2"]
    assert pinned["value"] == pytest.approx(2.0005) and pinned["status"] == "pass"
    assert table.loc["predicted_loss_error", "status"] == "no-data"  # no prediction logged: not a pass


def test_at_a_scale_with_reasons_only_the_cells_that_ran_are_listed_and_an_ordered_claim_counts_both(
    tmp_path,
):
    """At ci some claims are not evaluable on some cells (`expect:`): those of cells that did not run are
    still left out. The ordered claim on two cells gets both runs' step counts."""
    ci = plan(CONFIG, "ci")
    cells = ["srmsprop_example", "srmsprop_example_b0.999"]
    for cell, steps in zip(cells, (12, 9), strict=True):
        write_paper_run(tmp_path / ci.cells[cell], 0.01, steps=steps).close()
    runs = in_progress.read_runs([long_run.run_file(tmp_path / ci.cells[c]) for c in cells], ci)
    table = in_progress.claims_so_far(runs, CONFIG, ci)
    assert set(table["cell"]) <= {*cells, " > ".join(cells)}
    ordered = table.set_index("claim").loc["srmsprop_beta2_nu_share"]
    assert ordered["cell"] == " > ".join(cells) and ordered["steps"] == "12 / 2000, 9 / 2000"


def test_a_figure_so_far_draws_the_cells_that_ran_and_fails_on_an_empty_curve(tmp_path, monkeypatch):
    """W1.11 from the two LSTM runs of its six cells: their panels, by the workflow's own script; a run
    without the sharpness the script reads is an error naming it, not a blank panel."""
    monkeypatch.chdir(ROOT)  # the figure scripts are read from the repository
    folders = [tmp_path / PAPER.cells[f"gd_sequence.lstm.lr{lr:g}"] for lr in (0.35, 0.7)]
    for folder, lr in zip(folders, (0.35, 0.7), strict=True):
        write_paper_run(folder, lr).close()
    runs = in_progress.read_runs([long_run.run_file(f) for f in folders], PAPER)
    [(png, cells)] = in_progress.draw_figures_so_far(runs, CONFIG, PAPER, "W1.11", tmp_path / "fig")
    assert cells == ["gd_sequence.lstm.lr0.35", "gd_sequence.lstm.lr0.7"]
    assert png.name == "w1_11_eos_sequence.so_far.png" and png.stat().st_size > 10_000
    assert png.with_suffix(".pdf").stat().st_size > 1_000

    with pytest.raises(ValueError, match="none of the cells of its role 'main'"):
        in_progress.draw_figures_so_far(runs, CONFIG, PAPER, "W1.14", tmp_path / "fig")  # the ViT's figure
    with pytest.raises(ValueError, match="'W9.9' is no figure of scale 'paper'"):
        in_progress.draw_figures_so_far(runs, CONFIG, PAPER, "W9.9", tmp_path / "fig")
    write_paper_run(folders[0], 0.35, eigs=False).close()  # rewritten without eigenvalues
    runs = in_progress.read_runs([long_run.run_file(f) for f in folders], PAPER)
    with pytest.raises(ContractError, match="'gd_sequence.lstm.lr0.35' has no discrete/hessian_eigs"):
        in_progress.draw_figures_so_far(runs, CONFIG, PAPER, "W1.11", tmp_path / "fig2")


def test_the_command_prints_the_claims_and_draws_the_figures(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # config.yaml and the figure scripts are read from the repository root
    folder = tmp_path / PAPER.cells["lstm_gd"]
    write_paper_run(folder, 0.35).close()
    argv = [str(folder), "--scale", "paper", "--figures", "W1.11", "--figure-dir", str(tmp_path / "fig")]
    assert long_run.main(argv) == 0
    out = capsys.readouterr().out.split("### Claims at scale paper so far")[1]
    assert "gd_sharpness_at_2_over_eta" in out and f"{STEPS} / 2000" in out
    assert "w1_11_eos_sequence.so_far.png` (cells gd_sequence.lstm.lr0.35)" in out

    (tmp_path / "not-a-run").mkdir()
    write_paper_run(tmp_path / "not-a-run", 0.35).close()
    assert long_run.main([str(tmp_path / "not-a-run"), "--scale", "paper"]) == 2
    assert "not-a-run is no run of scale 'paper'" in capsys.readouterr().err
