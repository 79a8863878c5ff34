"""Run tables (HDF5 -> Parquet), the EOS onset, summary, claims and reference checks on a synthetic HDF5
file; the cell/grid expansion."""

import json
import runpy

import h5py
import numpy as np
import pandas as pd
import pytest

from centralflows.analysis import check, metrics, onset, read
from centralflows.analysis.claims import apply_expectations, claim_failures, evaluate_claims
from centralflows.analysis.metrics import gd, stationary
from centralflows.plan import cells as plan_cells
from centralflows.plan import grid, tree
from centralflows.plan.workflow import load_config

from .conftest import LR, ROOT


def test_long_table_has_the_documented_columns_and_no_nan(synthetic_run):
    table, attrs = read.read_run(synthetic_run)
    assert list(table.columns) == read.LONG_COLUMNS
    assert table["value"].notna().all()
    assert attrs["config"]["opt"]["lr"] == LR
    quantities = set(table["quantity"])
    assert {
        "train_loss",
        "effective_hessian_eigs",
        "opt.lr",
        "predicted_loss",
        "distances/central-discrete",
    } <= quantities
    assert "train_outputs/3" in quantities and "times/step" not in quantities
    second = table[
        (table["process"] == "discrete") & (table["quantity"] == "hessian_eigs") & (table["index"] == 1)
    ]
    assert second["step"].min() == 50  # NaN (untracked) rows are dropped
    assert set(table.loc[table["quantity"] == "deltas", "process"]) == {"group"}


def test_summary_metrics(synthetic_run):
    table, attrs = read.read_run(synthetic_run)
    row = metrics.summarize_run(table, attrs, smooth=5)
    assert row["eos_onset_step"] == 40
    assert row["central_top_eff_eig_max"] == pytest.approx(2.0)
    assert 1.8 < row["discrete_top_eff_eig_median_after_eos"] < 2.2
    assert row["central_loss_max_rel_increase"] == 0.0
    assert row["max_distance_central_discrete"] == pytest.approx(0.1)
    assert row["central_stable_distance_before_eos_rel"] < 1e-3
    assert row["predicted_loss_rel_error"] < 0.1
    assert set(row) == set(metrics.METRIC_COLUMNS)


def test_run_table_round_trips_through_parquet_with_its_info_and_row_filters(synthetic_run, tmp_path):
    table, attrs = read.read_run(synthetic_run)
    info = {"attrs": attrs, "job": {"run_id": "r1", "wall_s": 1.5, "slurm_job_id": "42"}}
    path = tmp_path / "r1.parquet"
    read.write_run_table(table, info, path)
    back = read.read_run_table(path)
    pd.testing.assert_frame_equal(back, table)
    assert isinstance(back["quantity"].dtype, pd.CategoricalDtype)
    assert read.read_run_info(path) == info
    # the row filter keeps exactly the (process, quantity) pairs asked for
    some = read.read_run_table(
        path, {"discrete": ["train_loss", "hessian_eigs"], "group": ["deltas"], "x": []}
    )
    pairs = set(zip(some["process"], some["quantity"], strict=True))
    assert pairs == {("discrete", "train_loss"), ("discrete", "hessian_eigs"), ("group", "deltas")}
    expected = table[table["process"].eq("discrete") & table["quantity"].isin(["train_loss", "hessian_eigs"])]
    assert len(some) == len(expected) + int((table["quantity"] == "deltas").sum())
    assert read.read_run_table(path, {"central": []}).empty
    # the summary of the Parquet table is the summary of the table read from HDF5
    assert metrics.summarize_run(back, attrs, 5) == pytest.approx(
        metrics.summarize_run(table, attrs, 5), nan_ok=True
    )


def test_cell_metadata_table_names_each_cells_run_and_its_hyperparameters(synthetic_run):
    _, attrs = read.read_run(synthetic_run)
    infos = {"r1": {"attrs": attrs, "job": {"run_id": "r1", "wall_s": 1.5, "slurm_job_id": "42"}}}
    meta = read.cell_metadata({"a": "r1", "b": "r1"}, infos)
    assert list(meta.columns) == read.METADATA_COLUMNS and list(meta["cell"]) == ["a", "b"]
    row = meta.iloc[0]
    assert (row["run_id"], row["arch"], row["opt"], row["lr"]) == ("r1", "mlp", "gd", LR)
    assert np.isnan(row["beta2"])  # GD has no beta2
    assert (
        row["slurm_job_id"] == "42" and row["n_params"] == 1234 and row["runs"] == "discrete central stable"
    )


def test_eos_onset_is_the_first_step_at_or_above_the_level():
    top = pd.Series([1.0, 2.5, 1.96, 2.0, 2.1], index=[0, 5, 10, 15, 20])
    assert onset.eos_onset(top) == 5  # a one-step spike counts: the same onset for summary and figures
    assert onset.eos_onset(top, 2.2) == 5 and onset.eos_onset(top, 3.0) is None
    assert onset.eos_onset(top.iloc[2:]) == 15  # exactly 2 is at EOS
    assert onset.eos_onset(top.iloc[2:], onset.CENTRAL_AT_EOS) == 10  # 1.96: at EOS for the central flow
    assert onset.eos_onset(top.iloc[:0]) is None


def _summary(synthetic_run, cell="a"):
    table, attrs = read.read_run(synthetic_run)
    row = metrics.summarize_run(table, attrs, smooth=5)
    return metrics.summary_table({cell: "r1"}, {"r1": {"attrs": attrs, "job": {}}}, {"r1": row})


def test_claims_pass_fail_and_no_data(synthetic_run):
    summary = _summary(synthetic_run)
    claims = {
        "pinned": {
            "reference": 3,
            "description": "d",
            "metric": "central_top_eff_eig_max",
            "min": None,
            "max": 2.05,
        },
        "too_strict": {
            "reference": 5,
            "description": "d",
            "metric": "predicted_loss_rel_error",
            "min": None,
            "max": 0.0,
        },
    }
    result = evaluate_claims(summary, claims, {"pinned": ["a", "missing"], "too_strict": ["a"]})
    assert list(result["status"]) == ["pass", "not-run", "fail"]  # "missing" is not in the summary
    assert result.loc[0, "threshold"] == "<= 2.05"
    summary.loc[0, "predicted_loss_rel_error"] = np.nan  # the cell ran without the metric
    assert list(evaluate_claims(summary, claims, {"too_strict": ["a"]} | {"pinned": []})["status"]) == [
        "no-data"
    ]


def test_a_part_of_the_scale_reports_claims_on_cells_not_run_as_not_run_never_failed():
    """Cells a and b ran (a passes, b fails), c and d did not: only b's failure fails the check."""
    summary = pd.DataFrame({"cell": ["a", "b"], "m": [1.0, 5.0]})
    claims = {
        "c": {"reference": 1, "description": "d", "metric": "m", "min": None, "max": 2.0},
        "ordered": {"reference": 2, "description": "d", "metric": "m", "min": 0.0, "max": None,
                    "order": "increasing"},
        "none_ran": {"reference": 3, "description": "d", "metric": "m", "min": None, "max": 2.0,
                     "expect": {"paper": {"d": "not evaluable: a reason"}}},
    }  # fmt: skip
    cells = {"c": ["a", "b", "c"], "ordered": ["a", "b", "c"], "none_ran": ["c", "d"]}
    table = apply_expectations(evaluate_claims(summary, claims, cells), claims, "paper")
    assert list(zip(table["claim"], table["cell"], table["status"], strict=True)) == [
        ("c", "a", "pass"),
        ("c", "b", "fail"),
        ("c", "c", "not-run"),
        ("ordered", "a < b < c", "not-run"),  # the order needs every cell
        ("none_ran", "c", "not-run"),
        ("none_ran", "d", "not-evaluable"),  # the scale's expectation still speaks first
    ]
    assert list(table["expected"]) == ["holds"] * 5 + ["not evaluable"]
    (failure,) = claim_failures(table)
    assert failure.startswith("claim c on b: fail")
    assert list(evaluate_claims(summary, claims, {**cells, "ordered": ["a", "b"]})["status"])[3] == "pass"


def test_reference_comparison_flags_drift_only_beyond_tolerance(synthetic_run):
    summary = _summary(synthetic_run)
    tol = {
        "eos_onset_step": {"rtol": 0.0, "atol": 3},
        "final_train_loss_discrete": {"rtol": 0.05, "atol": 0.0},
    }
    assert check.compare_to_reference(summary, summary.copy(), tol) == []
    drifted = summary.copy()
    drifted.loc[0, "eos_onset_step"] += 2  # within 3 steps
    assert check.compare_to_reference(summary, drifted, tol) == []
    drifted.loc[0, "final_train_loss_discrete"] *= 1.2
    problems = check.compare_to_reference(summary, drifted, tol)
    assert len(problems) == 1 and "final_train_loss_discrete" in problems[0]
    both = pd.concat([summary, _summary(synthetic_run, "b")])
    assert "present in reference only" in check.compare_to_reference(summary, both, tol)[0]
    # a part of the scale that ran cell a alone: b did not run, which is no drift; a drift of a still is
    assert check.compare_to_reference(summary, both, tol, part=["a"]) == []
    assert len(check.compare_to_reference(drifted, both, tol, part=["a"])) == 1
    assert "present in summary only" in check.compare_to_reference(both, summary, tol, part=["a", "b"])[0]


@pytest.fixture(scope="module")
def config():
    return load_config(ROOT / "config.yaml")


def test_run_ids_are_deterministic_readable_and_shared(config):
    first, second = grid.plan(config, "ci"), grid.plan(config, "ci")
    assert first.cells == second.cells
    assert first.cells["mlp_gd_central"].startswith("mlp-gd-lr0.06-synthetic-cifar10-")
    # ci builds every figure, plays the ViT by the MLP, and leaves the CE sequence sweep out
    assert set(first.figures) == set(config["figures"])
    assert first.runs[first.cells["gd_example"]]["arch"] == {"name": "mlp", "width": 32}
    assert "gd_sequence_ce.lstm.lr1.5" not in first.cells and "gd_sequence.lstm.lr0.7" in first.cells
    assert "gd_sequence_ce.lstm.lr3" in paper_cells(config)
    run = first.runs[first.cells["mlp_gd"]]
    assert run["data"]["name"] == "synthetic-cifar10" and run["steps"] <= config["scales"]["ci"]["max_steps"]
    paper = grid.plan(config, "paper")
    assert paper.runs[paper.cells["mlp_gd"]]["data"]["root"] == config["data_root"]
    assert grid.run_id({**run, "out": "x"}) == grid.run_id(run)
    assert grid.run_id(tree.set_path(run, "opt.lr", 0.3)) != grid.run_id(run)


def paper_cells(config):
    return grid.plan(config, "paper").cells


def part(config, only, scale="paper"):
    return grid.plan({**config, "only": only}, scale)


def test_a_part_of_the_scale_keeps_the_cells_matching_each_kind_of_name(config):
    whole = grid.plan(config, "paper")
    lstm_w1_11 = part(config, ["W1.11", "lstm"])  # a catalog id and an architecture: both must match
    assert list(lstm_w1_11.cells) == ["gd_sequence.lstm.lr0.35", "gd_sequence.lstm.lr0.7"]
    assert lstm_w1_11.cells == {c: whole.cells[c] for c in lstm_w1_11.cells}  # the same runs
    assert lstm_w1_11.figures == [] and lstm_w1_11.claims == whole.claims  # every claim, none drawn
    assert lstm_w1_11.part == ["W1.11", "lstm"] and whole.part is None
    # a figure by its registry id, whole: it is drawn
    w1_11 = part(config, "w1_11_eos_sequence")
    assert w1_11.figures == ["w1_11_eos_sequence"] and len(w1_11.cells) == 6
    # an architecture: every cell of it at the scale, the claim cell lstm_gd included
    lstm = part(config, "lstm")
    assert "lstm_gd" in lstm.cells and len(lstm.cells) == 9
    assert all(get_arch(config, c) == "lstm" for c in lstm.cells)
    # a cell: with the cell its restart starts from, and every figure the two draw whole
    restart = part(config, ["gd_example_from_eos"])
    assert list(restart.cells) == ["gd_example", "gd_example_from_eos"]
    assert "w1_18_central_one_unstable" in restart.figures and "w1_1_quadratic_1d" not in restart.figures
    # the paper's architecture names a stand-in at ci
    ci_vit = part(config, ["gd_example", "vit"], "ci")
    assert (
        list(ci_vit.cells) == ["gd_example"]
        and ci_vit.runs[ci_vit.cells["gd_example"]]["arch"]["name"] == "mlp"
    )
    with pytest.raises(ValueError, match="'lsmt' is no figure of scale 'paper'.*architecture"):
        part(config, ["lsmt"])
    with pytest.raises(ValueError, match="keeps none of the"):
        part(config, ["W1.11", "vit"])


def get_arch(config, cell):
    return tree.get_path(plan_cells.all_cells(config)[cell]["run"], "arch.name")


def test_grid_expansion_names_cells_and_grids_stand_for_their_cells(config):
    cells = plan_cells.expand_grid("gd_vision", config["grids"]["gd_vision"])
    assert "gd_vision.cnn.lr0.01" in cells and len(cells) == 6
    assert cells["gd_vision.vit.lr0.02"]["run"]["arch"]["name"] == "vit"
    assert len(grid.resolve_names(config, ["gd_vision", "mlp_gd"])) == 7
    with pytest.raises(ValueError, match="unknown cell"):
        grid.resolve_names(config, ["nope"])


def test_scale_axes_map_paper_values_and_may_depend_on_another_axis():
    spec = {
        "run": {"opt": {"name": "gd"}},
        "axes": {"arch.name": ["cnn", "vit"], "opt.lr": [0.01, 0.02]},
        "scale_axes": {"ci": {"opt.lr": {0.02: 0.5, 0.01: 0.25}}},  # keyed by value: order is free
    }
    cells = plan_cells.expand_grid("g", spec)
    assert cells["g.vit.lr0.01"]["scales"]["ci"]["opt"]["lr"] == 0.25
    assert cells["g.cnn.lr0.02"]["scales"]["ci"]["opt"]["lr"] == 0.5
    spec["scale_axes"]["ci"]["opt.lr"] = {"cnn": {0.01: 1.0, 0.02: 1.5}, "vit": {0.01: 0.3, 0.02: 0.4}}
    cells = plan_cells.expand_grid("g", spec)
    assert cells["g.cnn.lr0.02"]["scales"]["ci"]["opt"]["lr"] == 1.5  # names keep the paper values
    assert cells["g.vit.lr0.01"]["scales"]["ci"]["opt"]["lr"] == 0.3
    assert cells["g.vit.lr0.01"]["run"]["opt"]["lr"] == 0.01
    spec["scale_axes"]["ci"]["opt.lr"] = {"cnn": {0.01: 1.0, 0.02: 1.5}}
    with pytest.raises(ValueError, match=r"no entry for 0.01 of cell \['vit', 0.01\]"):
        plan_cells.expand_grid("g", spec)


def test_an_axis_may_list_its_values_per_value_of_an_earlier_axis():
    """Each network its own learning rates: `opt.lr: {lstm: [...], vit: [...]}`."""
    spec = {
        "run": {"opt": {"name": "gd"}},
        "axes": {"arch.name": ["lstm", "vit"], "opt.lr": {"lstm": [0.35, 0.7], "vit": [0.025]}},
        "scale_axes": {"ci": {"opt.lr": {"lstm": {0.35: 0.8, 0.7: 1.0}, "vit": {0.025: None}}}},
    }
    cells = plan_cells.expand_grid("g", spec)
    assert list(cells) == ["g.lstm.lr0.35", "g.lstm.lr0.7", "g.vit.lr0.025"]
    assert cells["g.lstm.lr0.7"]["run"]["opt"] == {"name": "gd", "lr": 0.7}
    assert cells["g.lstm.lr0.35"]["scales"]["ci"]["opt"]["lr"] == 0.8
    assert cells["g.vit.lr0.025"]["skip_scales"] == ["ci"]
    spec["scale_axes"]["ci"]["opt.lr"]["vit"] = {0.35: 0.1}  # the LSTM's rate is no rate of the ViT's
    with pytest.raises(ValueError, match=r"no entry for 0.025 of cell \['vit', 0.025\]"):
        plan_cells.expand_grid("g", spec)
    spec = {"axes": {"arch.name": ["lstm", "cnn"], "opt.lr": {"lstm": [0.35]}}}
    with pytest.raises(ValueError, match=r"axis 'opt.lr': its values are listed by \['lstm'\]"):
        plan_cells.expand_grid("g", spec)


@pytest.mark.parametrize(
    ("by_value", "message"),
    [
        ({0.01: 1.0, 0.03: 1.5}, "0.03 is not a value of the axis"),  # a mistyped paper value
        ({"cmn": {0.01: 1.0}}, "'cmn' is not a value of another axis"),
    ],
)
def test_a_scale_axes_key_that_is_no_axis_value_is_named(by_value, message):
    spec = {
        "axes": {"arch.name": ["cnn"], "opt.lr": [0.01, 0.02]},
        "scale_axes": {"ci": {"opt.lr": by_value}},
    }
    with pytest.raises(ValueError, match=f"grid 'g', scale_axes ci.opt.lr: {message}"):
        plan_cells.expand_grid("g", spec)


def test_run_by_value_sets_options_for_one_axis_value():
    spec = {
        "run": {"data": {"name": "sorting", "n": 1000}},
        "axes": {"arch.name": ["lstm", "mamba"], "opt.lr": [0.05, 0.1]},
        "run_by_value": {"mamba": {"data": {"n": 250}}, "lr0.1": {"steps": 7}},
    }
    cells = plan_cells.expand_grid("g", spec)
    assert cells["g.mamba.lr0.05"]["run"]["data"] == {"name": "sorting", "n": 250}
    assert cells["g.lstm.lr0.05"]["run"]["data"] == {"name": "sorting", "n": 1000}
    assert cells["g.mamba.lr0.1"]["run"]["steps"] == 7 and "steps" not in cells["g.mamba.lr0.05"]["run"]


def test_mamba_trains_on_250_sorting_examples_in_every_paper_sequence_grid(config):
    """REFERENCE §2.5: "usually 1,000 (except for Mamba, where it was 250)"."""
    paper = grid.plan(config, "paper")
    sizes = {}
    for rid in paper.cells.values():
        run = paper.runs[rid]
        if run["data"]["name"] == "sorting":
            sizes.setdefault(run["arch"]["name"], set()).add(run["data"]["n"])
    assert sizes == {"lstm": {1000}, "transformer": {1000}, "mamba": {250}}
    mamba_grids = {
        c.split(".")[0] for c, rid in paper.cells.items() if paper.runs[rid]["arch"]["name"] == "mamba"
    }
    assert mamba_grids >= {"gd_sequence", "gd_sequence_ce", "srmsprop_sequence", "rmsprop_sequence"}


def test_a_null_scale_axis_value_leaves_the_cell_out_at_that_scale_only():
    config = {
        "grids": {
            "g": {
                "run": {"opt": {"name": "gd"}},
                "axes": {"arch.name": ["cnn", "vit"], "opt.lr": [0.01, 0.02]},
                "scale_axes": {
                    "ci": {"opt.lr": {"cnn": {0.01: 1.0, 0.02: None}, "vit": {0.01: None, 0.02: 0.4}}}
                },
            }
        },
        "cells": {"solo": {"run": {}}},
    }
    assert grid.resolve_names(config, ["g", "solo"], "ci") == ["g.cnn.lr0.01", "g.vit.lr0.02", "solo"]
    assert len(grid.resolve_names(config, ["g"], "paper")) == 4
    assert len(grid.resolve_names(config, ["g"])) == 4


def test_a_scale_built_on_another_takes_its_cell_settings_and_scales_its_steps():
    base_data = {"name": "stand-in", "n": 64, "n_test": 64}
    small = {"archs": {"vit": {"arch": {"name": "mlp"}}}, "datasets": {"cifar10": {"data": base_data}}}
    mid = {"base": "small", "steps_factor": 3.0, "datasets": {"cifar10": {"data": {"name": "cifar10"}}}}
    paper = {"opt": {"name": "gd"}, "data": {"name": "cifar10", "n": 1000}, "arch": {"name": "vit"}}
    config = {
        "run_defaults": {},
        "data_root": "data",
        "scales": {"small": small, "mid": mid},
        "grids": {
            "g": {
                "run": paper,
                "axes": {"opt.lr": [0.01, 0.02]},
                "scales": {"small": {"steps": 40}},
                "scale_axes": {"small": {"opt.lr": {0.01: 0.5, 0.02: None}}},
            }
        },
    }
    cell = plan_cells.all_cells(config)["g.lr0.01"]
    small, mid = (grid.cell_run_config(config, cell, s) for s in ("small", "mid"))
    assert small["opt"]["lr"] == mid["opt"]["lr"] == 0.5 and mid["arch"] == {"name": "mlp"}
    assert (small["steps"], mid["steps"]) == (40, 120)
    # back on the real dataset: the paper's data options, none of the stand-in's (n_test)
    assert small["data"] == base_data and mid["data"] == {"name": "cifar10", "n": 1000, "root": "data"}
    assert grid.resolve_names(config, ["g"], "mid") == ["g.lr0.01"]  # left out at its base: out here too
    assert grid.scale_chain(config, "mid") == ["mid", "small"]
    config["scales"]["small"]["base"] = "mid"
    with pytest.raises(ValueError, match="cycle"):
        grid.scale_chain(config, "mid")


def test_quick_is_the_ci_cells_on_the_real_data(config):
    ci, quick = grid.plan(config, "ci"), grid.plan(config, "quick")
    assert set(quick.cells) >= set(ci.cells)
    for cell in ci.cells:
        a, b = ci.runs[ci.cells[cell]], quick.runs[quick.cells[cell]]
        assert a["arch"] == b["arch"] and a["opt"] == b["opt"], cell
        if a["data"]["name"] == "synthetic-cifar10":
            assert b["data"]["name"] == "cifar10" and "n_test" not in b["data"], cell
        if "load" not in a and cell != "rmsprop_example_stationary":
            assert b["steps"] == 3 * a["steps"], cell


def test_start_from_loads_the_source_cells_checkpoint(config):
    paper = grid.plan(config, "paper")
    run = paper.runs[paper.cells["rmsprop_example_stationary"]]
    source = paper.cells["rmsprop_example"]
    assert run["load"] == {
        "path": f"results/paper/runs/{source}/checkpoints/checkpoint_500.npz",
        "from_process": "discrete",
    }
    bad = tree.deep_merge(
        config, {"cells": {"rmsprop_example_stationary": {"start_from": {"scale_steps": {"quick": 33}}}}}
    )
    with pytest.raises(ValueError, match="not a checkpoint"):
        grid.plan(bad, "quick")


@pytest.mark.parametrize("scale", ["paper", "quick", "ci"])
def test_start_from_the_edge_loads_the_source_runs_edge_checkpoint(config, scale):
    plan = grid.plan(config, scale)
    run = plan.runs[plan.cells["gd_example_from_eos"]]
    source = plan.cells["gd_example"]
    assert run["load"] == {"path": f"results/{scale}/restarts/{source}/edge.npz", "from_process": "discrete"}
    mute = tree.deep_merge(config, {"cells": {"gd_example": {"run": {"eig": {"frequency": -1}}}}})
    with pytest.raises(ValueError, match="'gd_example' at step edge: that cell logs no eigenvalues"):
        grid.plan(mute, scale)


def test_part_one_claim_metrics(synthetic_run):
    table, attrs = read.read_run(synthetic_run)
    row = metrics.summarize_run(table, attrs, smooth=5)
    assert row["n_eigs_reached_eos"] == 1  # the second synthetic eigenvalue stays at 1.6
    assert row["grad_norm_sq_oscillation_fraction"] > 0  # central ||grad||^2 in [0, 1) below 0.5 on average
    assert row["predicted_variance_rel_error"] == pytest.approx(
        0.0, abs=0.02
    )  # deltas^2 = 0.01 = x_0 (MA edge at onset)
    assert row["central_outputs_roughness_ratio"] == pytest.approx(0.1, rel=0.3)
    assert row["central_over_smoothed_final_loss"] < 1.0
    assert np.isfinite(row["predicted_grad_norm_sq_rel_error"]) and np.isfinite(row["outputs_rel_error"])


def test_the_predicted_gradient_norm_error_is_relative_to_the_mean_norm():
    """Mean |predicted - MA(GD)| over mean MA after the onset: a step where GD's oscillation has not
    grown yet (GD 0.01, predicted 0.5) counts by its absolute error, not as a ratio of 49."""
    steps = np.arange(4)
    table = pd.concat(
        [
            _long("discrete", "effective_hessian_eigs", steps, np.full(4, 2.1), 0),
            _long("discrete", "grad_norm_sq", steps, [0.01, 1.0, 1.0, 1.0]),
            _long("central", "predicted_grad_norm_sq", steps, [0.5, 1.0, 1.0, 1.2]),
            _long("central", "grad_norm_sq", steps, [0.1, 0.1, 0.1, 0.1]),
        ]
    )
    row = gd.part_one_metrics(table, LR, onset=0, smooth=1)
    assert row["predicted_grad_norm_sq_rel_error"] == pytest.approx((0.49 + 0.2) / 3.01)
    assert row["grad_norm_sq_oscillation_fraction"] == pytest.approx(np.mean([0.8, 0.9, 0.9, 1 - 0.1 / 1.2]))


def test_the_predicted_squared_gradient_per_coordinate_is_relative_to_its_mean():
    """RMSProp's item 13, per coordinate: mean |predicted - MA(g^2)| over mean MA after the onset, then
    the median over coordinates (coordinate 0: 0.69 / 3.01 as GD's norm above, where the mean of the
    ratios is 12.3; coordinate 1: 0.1 / 2)."""
    steps = np.arange(4)
    g2 = {0: [0.01, 1.0, 1.0, 1.0], 1: [0.5, 0.5, 0.5, 0.5]}
    pred = {0: [0.5, 1.0, 1.0, 1.2], 1: [0.55, 0.5, 0.55, 0.5]}
    table = pd.concat(
        [_long("discrete", "grad_sq_selected_idx", steps, g2[i], i) for i in g2]
        + [_long("central", "predicted_grad_sq_selected_idx", steps, pred[i], i) for i in pred]
    )
    row = metrics.adaptive.adaptive_metrics(table, pd.Series(dtype=float), onset=0, smooth=1)
    assert row["predicted_grad_sq_rel_error"] == pytest.approx((0.69 / 3.01 + 0.1 / 2) / 2)


def test_a_sequence_models_outputs_and_a_file_being_written(tmp_path):
    """Sorting outputs (steps, examples, positions, classes) become one quantity per example, indexed
    row-major. A file being written is read up to the last row that every dataset holds and whose step
    the writer has set (here: row 3 begun in `step` and the loss, row 2 with its step still the fill
    value 0); a finished file whose datasets disagree is an error, not silently shortened."""
    outputs = np.arange(3 * 2 * 5 * 4, dtype=float).reshape(3, 2, 5, 4)
    path = tmp_path / "data.partial.hdf5"
    with h5py.File(path, "w", libver="latest") as f:
        f["step"] = [0, 1, 0, 0]
        f["discrete/train_loss"] = [1.0, 0.5, 0.25, 0.2]
        f["discrete/test_outputs"] = outputs
        f.attrs.update(config=json.dumps({"steps": 10}), status="running")
    table, attrs = read.read_run(path)
    assert list(read.series(table, "discrete", "train_loss")) == [1.0, 0.5]
    with h5py.File(path, "r+") as f:
        f["step"][2] = 2
    table, attrs = read.read_run(path)
    assert list(read.series(table, "discrete", "train_loss")) == [1.0, 0.5, 0.25]
    assert list(read.series(table, "discrete", "test_outputs/1", index=2 * 4 + 3)) == list(
        outputs[:, 1, 2, 3]
    )
    assert set(table.loc[table["quantity"] == "test_outputs/0", "index"]) == set(range(5 * 4))
    assert attrs["config"] == {"steps": 10}
    with h5py.File(path, "r+") as f:
        f.attrs["status"] = "completed"
    with pytest.raises(ValueError, match="datasets of \\[3, 4\\] rows for 4 steps"):
        read.read_run(path)


def test_moving_average_keeps_length():
    s = pd.Series(np.arange(10.0))
    assert len(read.moving_average(s, 3)) == 10


def _long(process, quantity, steps, values, index=-1):
    """Long-table rows of one curve."""
    columns = {"process": process, "step": steps, "quantity": quantity, "index": index, "value": values}
    return pd.DataFrame(columns)


def test_stationary_probe_keeps_only_its_logged_steps(synthetic_run):
    table, _ = read.read_run(synthetic_run)
    probe = table[table["quantity"].str.startswith("stationary/")]
    assert set(probe["process"]) == {"central"}  # `central/stationary/*`, not the stationary flow
    assert (probe["step"] % 5 == 0).all() and probe["value"].notna().all()
    assert len(read.series(table, "central", "stationary/nu_cosine")) == 24  # steps 0, 5, ..., 115
    assert "predicted_loss" in set(table.loc[table["process"] == "stationary", "quantity"])


def test_stationary_metrics_known_answers():
    steps = np.arange(0, 100, 5)  # 20 probe points
    t = np.arange(100)
    late = np.full(10, 0.999)
    late[3] = 0.99
    cosine = np.concatenate([np.full(10, 0.5), late])  # later half: median 0.999 (the whole run: ~0.75)
    p_hat = np.where(steps < 50, 0.5, 2.0)
    p_hat[[8, 9]] = 0.5  # steps 40, 45: after the central onset (38), below the baseline
    p_bar = np.full(20, 1.5)
    p_bar[-1] = 3.0  # step 95: above P_hat
    table = pd.concat(
        [
            _long("central", "effective_hessian_eigs", t, np.minimum(2.0, 1 + t / 40), 0),  # >= 1.95 from 38
            _long("central", "stationary/nu_cosine", steps, cosine),
            _long("central", "stationary/speed_baseline", steps, np.ones(20)),
            _long("central", "stationary/speed_p_hat", steps, p_hat),
            _long("central", "stationary/speed_p_bar", steps, p_bar),
            _long("stationary", "predicted_loss", t, np.where(t < 50, 5.0, 1.2)),
        ],
        ignore_index=True,
    )
    smoothed = pd.Series(1.0, index=t)
    top_c = read.top_eigenvalue(table, "central")
    m = stationary.stationary_metrics(table, top_c, smoothed, onset=50, central_error=0.1)
    assert m["stationary_nu_cosine_late_median"] == pytest.approx(0.999)
    assert m["p_hat_faster_than_baseline_fraction"] == pytest.approx(10 / 12)  # 12 points from step 40
    assert m["p_bar_slower_than_p_hat_fraction"] == pytest.approx(9 / 12)  # not at 40, 45, 95
    assert m["stationary_predicted_loss_rel_error"] == pytest.approx(0.2)  # |1.2 - 1| / 1 from step 50
    assert m["stationary_over_central_loss_error"] == pytest.approx(2.0)
    # a central flow that never reaches EOS: every probe point counts
    never = stationary.stationary_metrics(table, top_c * 0.5, smoothed, onset=None, central_error=0.1)
    assert never["p_hat_faster_than_baseline_fraction"] == pytest.approx(10 / 20)
    # a run without the probe or the stationary flow: no data
    missing = stationary.stationary_metrics(table.iloc[:0], top_c, smoothed, onset=50, central_error=0.1)
    assert all(np.isnan(v) for v in missing.values())


def test_prediction_rel_error_counts_steps_from_onset():
    ma = pd.Series(1.0, index=np.arange(10))
    predicted = pd.Series(np.where(np.arange(10) < 5, 3.0, 1.1), index=np.arange(10))
    assert metrics.common.prediction_rel_error(ma, predicted, 5) == pytest.approx(0.1)
    assert metrics.common.prediction_rel_error(ma, predicted, None) == pytest.approx((5 * 2.0 + 5 * 0.1) / 10)
    assert np.isnan(metrics.common.prediction_rel_error(ma, predicted.iloc[:0], None))


def test_stationary_metrics_on_the_synthetic_run(synthetic_run):
    table, attrs = read.read_run(synthetic_run)
    row = metrics.summarize_run(table, attrs, smooth=5)
    cosine = 1 - 0.2 * np.exp(-np.array([85, 90]) / 15)  # the middle of the later 12 of 24 points
    assert row["stationary_nu_cosine_late_median"] == pytest.approx(cosine.mean())
    assert row["p_hat_faster_than_baseline_fraction"] == 1.0
    assert 0 < row["p_bar_slower_than_p_hat_fraction"] <= 1
    assert row["stationary_over_central_loss_error"] > 1  # prediction 0.08 vs 0.05 above GD's average
    without = table[(table["process"] != "stationary") & ~table["quantity"].str.startswith("stationary/")]
    row = metrics.summarize_run(without, attrs, smooth=5)
    assert all(np.isnan(row[c]) for c in stationary.STATIONARY_COLUMNS)


def test_claim_expectations_report_not_evaluable_and_fail_check_only_where_the_claim_should_hold():
    summary = pd.DataFrame({"cell": ["a", "b"], "m": [1.0, 5.0]})
    claims = {
        "c": {"reference": 1, "description": "d", "cells": ["a", "b"], "metric": "m", "min": None, "max": 2},
        "short": {
            "reference": 2, "description": "d", "cells": ["b"], "metric": "m", "min": None, "max": 2.0,
            "expect": {"ci": "not evaluable: run too short"},
        },
    }  # fmt: skip
    cells = {"c": ["a", "b"], "short": ["b"]}
    table = apply_expectations(evaluate_claims(summary, claims, cells), claims, "ci")
    assert list(table["status"]) == ["pass", "fail", "not-evaluable"]
    assert list(table["expected"]) == ["holds", "holds", "not evaluable"]
    assert table["reason"].iloc[2] == "not evaluable: run too short"
    (failure,) = claim_failures(table)
    assert "claim c on b: fail" in failure
    # per cell: b is not evaluable at ci, a still holds; at another scale everything holds
    claims["c"]["expect"] = {"ci": {"b": "stand-in network"}}
    assert claim_failures(apply_expectations(evaluate_claims(summary, claims, cells), claims, "ci")) == []
    paper = apply_expectations(evaluate_claims(summary, claims, cells), claims, "paper")
    assert len(claim_failures(paper)) == 2
    # a scale built on ci inherits ci's expectations unless it states its own
    assert (
        claim_failures(apply_expectations(evaluate_claims(summary, claims, cells), claims, ["quick", "ci"]))
        == []
    )
    claims["c"]["expect"]["quick"] = "holds"
    assert (
        len(
            claim_failures(
                apply_expectations(evaluate_claims(summary, claims, cells), claims, ["quick", "ci"])
            )
        )
        == 1
    )


def test_central_smoothness_metrics_known_answers():
    t = np.arange(40)
    top = np.where(t < 10, 1.9 + t / 100, 2.0)  # central onset (>= 1.999) at step 10
    top[20] = 2.05  # an abrupt entry overshooting 2
    smooth_trace = np.where(t < 10, 0.0, 0.02)
    chatter = np.where(t < 10, 0.0, np.where(t % 2, 0.04, 0.02))  # alternates from step to step
    for trace, roughness in ((smooth_trace, 0.0), (chatter, 0.04 / 0.03)):
        table = pd.concat(
            [
                _long("central", "effective_hessian_eigs", t, top, 0),
                _long("central", "sigma_trace", t, trace),
            ],
            ignore_index=True,
        )
        top_c = read.top_eigenvalue(table, "central")
        m = gd.central_smoothness_metrics(table, {"central_sdcp_unconverged": 3}, top_c)
        assert m["central_sigma_trace_roughness"] == pytest.approx(roughness)
        assert m["central_max_seff_after_onset"] == pytest.approx(2.05)
        assert m["central_sdcp_unconverged"] == 3
        assert m["central_started_above_edge"] == 0
    never = gd.central_smoothness_metrics(table, {}, top_c * 0.5)
    assert never["central_started_above_edge"] == 0
    assert all(np.isnan(v) for key, v in never.items() if key != "central_started_above_edge")
    # a flow started above the edge (a restart at the edge): measured from its first step back at 2
    above = pd.Series(np.where(t < 5, 2.6 - t / 10, 2.0005), index=t)  # 2.6 .. 2.2, then 2.0005
    above[12] = 2.003
    m = gd.central_smoothness_metrics(table, {}, above)
    assert m["central_started_above_edge"] == 1
    assert m["central_max_seff_after_onset"] == pytest.approx(2.003)
    never_back = gd.central_smoothness_metrics(table, {}, above * 0 + 2.5)
    assert never_back["central_started_above_edge"] == 1
    assert np.isnan(never_back["central_max_seff_after_onset"])


def test_proposed_expectations_name_how_the_scale_differs_from_the_paper(config):
    propose = runpy.run_path(str(ROOT / "workflow/scripts/propose_expectations.py"))
    claims = pd.DataFrame(
        {
            "claim": ["multiple_eigs_at_eos", "central_pins_at_2"],
            "cell": ["gd_example", "lstm_gd"],
            "value": [float("nan"), 1.0],
            "status": ["no-data", "pass"],
            "expected": ["holds", "holds"],
        }
    )
    (reason,) = propose["proposals"](config, claims, "ci")["multiple_eigs_at_eos"].values()
    assert reason.startswith("not evaluable at ci: no data")
    assert (
        "stand-in network (mlp for the paper's vit)" in reason
        and "run too short (80 of the paper's" in reason
    )


def test_an_ordered_claim_with_a_missing_cell_has_no_data_wherever_the_cell_is():
    summary = pd.DataFrame({"cell": ["a", "b", "c"], "m": [1.0, 2.0, np.nan]})
    claim = {"ordered": {"reference": 1, "description": "d", "metric": "m", "min": 0.0, "max": None,
                         "order": "increasing"}}  # fmt: skip
    for cells in (["a", "b", "c"], ["c", "a", "b"], ["a", "c", "b"]):
        result = evaluate_claims(summary, claim, {"ordered": cells})
        assert list(result["status"]) == ["no-data"], cells
    assert list(evaluate_claims(summary, claim, {"ordered": ["a", "b"]})["status"]) == ["pass"]


def test_every_claim_states_its_paper_scale_expectation(config):
    """Written out, from the paper (workflow/claims.yaml's header), not left to the default."""
    for name, claim in config["claims"].items():
        assert "paper" in claim.get("expect", {}), name
