"""The long-run report reads a run's file while the run writes it, and its facts are the ones written."""

import h5py
import numpy as np
import pytest

from centralflows.analysis import long_run
from centralflows.runner.attempts import attempt
from centralflows.runner.io import H5Logger

STEPS = 12


def write_run(out_dir):
    """A run whose numbers are known: GD's top effective eigenvalue 1 + 0.2 t reaches 2 at step 5; the
    central flow's first eigenvalue is held at 2.0005 from step 5 (1.95 is the edge's count level), its
    second reaches 1.95 at step 8; the prediction is 10 % above the loss; one SDCP solve fails (step 9)."""
    logger = H5Logger(out_dir, {"config": {"steps": 20}, "device": "cpu:cpu"})
    for t in range(STEPS):
        rising = 1 + 0.2 * t
        loss = 1.0 / (1 + t)
        logger.log(
            t,
            {
                "discrete/train_loss": loss,
                "discrete/effective_hessian_eigs": [rising, 0.5],
                "discrete/eig_logs/hvps": sum(30 + i for i in range(t + 1)),  # totals, as logged
                "central/train_loss": loss,
                "central/predicted_loss": 1.1 * loss,
                "discrete/grad_norm_sq": 1.0 if t < 5 else (0.75 if t % 2 else 0.25),
                "central/predicted_grad_norm_sq": 1.0,
                "central/effective_hessian_eigs": [min(rising, 2.0005), min(0.35 + 0.2 * t, 2.0)],
                "central/eig_logs/hvps": 40 * (t + 1),
                "central/eig_logs/third_derivatives": 6 * (t + 1),
                "central/substeps": 4 if t != 7 else 8,
                "central/flow_aux/sdcp_converged": [1, 1, 1, 0 if t == 9 else 1],
                "central/flow_aux/sdcp_iterations": [3, 3, 3, 50 if t == 9 else 3],
                "central/times/step": 2.0,
                "discrete/times/step": 0.5,
                "discrete/times/measure": 1.0,
            },
        )
    return logger


def test_the_report_reads_a_run_in_progress_and_its_facts_are_the_ones_written(tmp_path):
    logger = write_run(tmp_path)  # still open: data.partial.hdf5 in SWMR mode
    assert long_run.run_file(tmp_path).name == "data.partial.hdf5"
    data, steps, attrs = long_run.read_long_run(long_run.run_file(tmp_path))
    facts = long_run.summary(data, steps, attrs, smooth=1)
    assert facts["steps_logged"] == STEPS and facts["status"] == "running"
    assert facts["onset_step"] == 5
    assert facts["central_entry_step"] == 5 and not facts["central_started_above"]
    assert facts["k_c_first_step"] == {1: 5, 2: 8}
    assert facts["central_top_max_dev_from_2"] == pytest.approx(5e-4)
    assert facts["central_steps_beyond_1e-3"] == 0
    assert facts["predicted_loss_rel_error_mean"] == pytest.approx(0.1)
    assert facts["sdcp_solves"] == 4 * STEPS and facts["sdcp_unconverged"] == 1
    assert facts["logged_wall_s"] == pytest.approx(STEPS * 3.5)

    table = long_run.windows(data, steps, window=5, smooth=1)
    assert list(table.index) == ["0-4", "5-9", "10-11"]
    assert np.isnan(table.loc["0-4", "cent_top_dev"])  # rising to the edge: no deviation counted
    assert table.loc["5-9", "cent_top_dev"] == pytest.approx(5e-4)
    assert list(table["k_c_max"]) == [0, 2, 2]
    assert list(table["sdcp_unconverged"]) == [0, 1, 0] and table.loc["5-9", "sdcp_iter_max"] == 50
    assert list(table["cent_substeps"]) == [4, 8, 4]  # the split step shows in its window's maximum
    assert table.loc["0-4", "disc_hvps"] == pytest.approx(32)  # per step, from the logged totals
    assert list(table["cent_hvps"]) == [40, 40, 40] and list(table["cent_third"]) == [6, 6, 6]
    # the prediction stays 1; from step 5 GD's squared gradient norm alternates 0.75 / 0.25: the window's
    # mean error over its mean norm (2.25 / 2.75, 1.0 / 1.0), not the mean of the ratios (1.4, 1.67)
    assert list(table["pred_gn_rel_err"]) == pytest.approx([0.0, 2.25 / 2.75, 1.0])

    logger.close()  # finished: data.hdf5 with its status
    assert long_run.run_file(tmp_path).name == "data.hdf5"
    assert long_run.summary(*long_run.read_long_run(long_run.run_file(tmp_path)))["status"] == "completed"


def test_the_command_prints_every_run_and_draws_its_figure(tmp_path, capsys):
    with attempt(tmp_path / "run-a"):
        write_run(tmp_path / "run-a").close()
    assert (
        long_run.main([str(tmp_path / "run-a"), "--window", "4", "--figure-dir", str(tmp_path / "fig")]) == 0
    )
    out = capsys.readouterr().out
    assert "### run-a" in out and "| 8-11 |" in out and "- onset_step: 5" in out
    assert "- cost_over_attempts: {'attempts': 1," in out
    assert (tmp_path / "fig" / "run-a.png").stat().st_size > 10_000


def test_an_empty_curve_is_an_error_not_a_blank_panel(tmp_path, capsys):
    """A quantity the run logged but never filled (all NaN) would draw an empty curve: the command
    names it and exits 2 instead of writing the figure."""
    logger = write_run(tmp_path / "run-b")
    logger.close()
    with h5py.File(tmp_path / "run-b" / "data.hdf5", "r+") as f:
        f["central/predicted_loss"][...] = np.nan
    assert long_run.main([str(tmp_path / "run-b"), "--figure-dir", str(tmp_path / "fig")]) == 2
    assert "the curve predicted loss is empty" in capsys.readouterr().err
    assert not (tmp_path / "fig" / "run-b.png").exists()
    assert long_run.main([str(tmp_path / "missing")]) == 2  # no run there: named, exit 2
    assert "missing" in capsys.readouterr().err
