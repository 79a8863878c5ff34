"""Every figure script of the registry draws, under its READS contract, exactly what it declares on a
synthetic figure table built by the `figure_table` rule's script; misspelled or empty reads fail."""

import logging
import runpy
import sys
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from centralflows.analysis import contract, plotting, read
from centralflows.analysis.metrics.adaptive import ablation_metrics
from centralflows.plan.workflow import load_config

from .conftest import LR, ROOT

FIGURES = load_config(ROOT / "config.yaml")["figures"]
SCRIPTS = ROOT / "workflow/scripts/figures"


def script_of(figure):
    """The script that draws a figure: its own, or the one its registry entry's `script:` names."""
    return SCRIPTS / f"{FIGURES[figure].get('script', figure)}.py"


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
    long, _ = read.read_run(synthetic_run)
    metrics = ablation_metrics(adaptive_rows(long))
    assert metrics["ablated_over_central_final_sharpness"] == pytest.approx(1.3)
    assert metrics["ablated_over_central_final_loss"] == pytest.approx(1.2)
    assert metrics["ablated_over_central_final_ess"] == pytest.approx(0.8)
    assert all(np.isnan(v) for v in ablation_metrics(long).values())  # no ablated flow: NaN


def synthetic_roles(entry) -> dict:
    """Named synthetic cells for a registry entry's roles (a list role gets two cells)."""
    return {
        role: f"syn_{role}" if isinstance(value, str) else [f"syn_{role}{i}" for i in range(2)]
        for role, value in entry["cells"].items()
    }


def figure_table(tmp_path, figure, hdf5, roles, reads=None):
    """The figure table as the `figure_table` rule's own script builds it; every cell reads the synthetic
    run. Returns the table's path."""
    long, attrs = read.read_run(hdf5)
    read.write_run_table(adaptive_rows(long), {"attrs": attrs, "job": {}}, tmp_path / "synthetic.parquet")
    out = tmp_path / f"{figure}.parquet"
    smk = SimpleNamespace(
        input=SimpleNamespace(tables=[str(tmp_path / "synthetic.parquet")]),
        output=SimpleNamespace(table=str(out), cells=str(tmp_path / f"{figure}.cells.csv")),
        log=[str(tmp_path / "figure_table.log")],
        params=SimpleNamespace(
            figure=figure,
            entry=FIGURES[figure],
            roles=roles,
            reads=reads or contract.script_reads(script_of(figure)),
            cells={cell: "synthetic" for value in roles.values() for cell in contract.members(value)},
        ),
    )
    stderr = sys.stderr  # the script's log_to redirects stderr and logging to its log file
    try:
        runpy.run_path(str(ROOT / "workflow/scripts/figure_table.py"), init_globals={"snakemake": smk})
    finally:
        sys.stderr = stderr
        logging.getLogger().handlers.clear()
    return out


def draw(figure, table_path, roles, tmp_path, script=None):
    """Runs a figure script's plot() under its contract; returns the contract (what it read)."""
    script = script or script_of(figure)
    reads = contract.script_reads(script)
    active = contract.Contract(figure, roles, reads)
    pdf, png = tmp_path / f"{figure}.pdf", tmp_path / f"{figure}.png"
    params = SimpleNamespace(entry=FIGURES[figure], cells=roles, smooth=5)
    with plotting.contract(active):
        runpy.run_path(str(script))["plot"](plotting.read_table(table_path), pdf, png, params)
    assert pdf.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"
    return active


def test_every_registered_figure_has_a_script_whose_roles_match():
    for figure, entry in FIGURES.items():
        reads = contract.script_reads(script_of(figure))
        contract.check_roles(figure, reads, entry["cells"])


def test_every_script_draws_a_registered_figure_and_no_two_differ_only_in_their_docstring():
    used = {script_of(figure).name for figure in FIGURES}
    assert {p.name for p in SCRIPTS.glob("*.py")} == used  # no orphan script
    bodies = {}
    for path in sorted(SCRIPTS.glob("*.py")):
        body = path.read_text().split('"""', 2)[2]  # the code after the module docstring
        assert body not in bodies, (
            f"{path.name} repeats {bodies.get(body)}: give the figure `script:` instead"
        )
        bodies[body] = path.name


@pytest.mark.slow  # 57 figures of a few seconds each; the contract tests below stay in the fast subset
@pytest.mark.parametrize("figure", sorted(FIGURES))
def test_figure_script_draws_exactly_what_it_declares(figure, synthetic_run, tmp_path):
    roles = synthetic_roles(FIGURES[figure])
    active = draw(figure, figure_table(tmp_path, figure, synthetic_run, roles), roles, tmp_path)
    assert active.unread() == [], f"{figure}: READS declares what plot() never reads"


def misspell(tmp_path, figure, old, new, in_reads=False):
    """A copy of a figure script with one quantity renamed in plot() (and, with `in_reads`, in READS)."""
    text = script_of(figure).read_text()
    head, body = text.split("def plot(", 1)
    assert f'"{old}"' in body
    body = body.replace(f'"{old}"', f'"{new}"')
    if in_reads:
        head = head.replace(f'"{old}"', f'"{new}"')
    copy = tmp_path / f"{figure}.py"
    copy.write_text(head + "def plot(" + body)
    return copy


def test_a_misspelled_quantity_fails_naming_figure_cell_and_quantity(synthetic_run, tmp_path):
    figure = "w1_28_gradient_norm"
    roles = synthetic_roles(FIGURES[figure])
    table = figure_table(tmp_path, figure, synthetic_run, roles)
    # misspelled in plot() only: a read outside READS
    copy = misspell(tmp_path, figure, "predicted_grad_norm_sq", "predicted_grad_norm_sqq")
    with pytest.raises(
        contract.ContractError, match="w1_28_gradient_norm: cell 'syn_main'.*predicted_grad_norm_sqq"
    ):
        draw(figure, table, roles, tmp_path, copy)
    # misspelled in READS and plot() alike: the figure table names the quantity the run lacks
    copy = misspell(tmp_path, figure, "predicted_grad_norm_sq", "predicted_grad_norm_sqq", in_reads=True)
    with pytest.raises(contract.ContractError, match="cell 'syn_main'.*central/predicted_grad_norm_sqq"):
        figure_table(tmp_path, figure, synthetic_run, roles, contract.script_reads(copy))


def test_an_empty_or_all_nan_curve_fails(synthetic_run, tmp_path):
    figure = "w1_28_gradient_norm"
    roles = synthetic_roles(FIGURES[figure])
    path = figure_table(tmp_path, figure, synthetic_run, roles)
    table = pd.read_parquet(path)
    table.loc[table["quantity"] == "predicted_grad_norm_sq", "value"] = np.nan
    table.to_parquet(path, index=False)
    with pytest.raises(
        contract.ContractError, match="w1_28_gradient_norm: cell 'syn_main' has no central/predicted"
    ):
        draw(figure, path, roles, tmp_path)
    _, ax = plotting.subplots()
    with pytest.raises(contract.ContractError, match="curve x is empty"):
        plotting.line(ax[0], pd.Series([np.nan, np.nan], name="x"))
    with pytest.raises(contract.ContractError, match="curve y is empty"):
        plotting.line(ax[0], pd.Series([], dtype=float, name="y"))


def test_a_cell_outside_the_roles_fails():
    active = contract.Contract("f", {"main": "a"}, {"main": {"discrete": ["train_loss"]}})
    with pytest.raises(contract.ContractError, match="figure f: reads cell 'b'"):
        active.check("b", "discrete", "train_loss")
    with pytest.raises(contract.ContractError, match="does not declare"):
        active.check("a", "central", "train_loss")
    with pytest.raises(
        contract.ContractError, match=r"names the cell roles \['main'\].*declares \['other'\]"
    ):
        contract.check_roles("f", {"other": {}}, {"main": "a"})


def test_validation_panels_are_titled_with_the_runs_eta_not_the_cell_name():
    table = pd.DataFrame({"cell": ["srmsprop_sequence.lstm.lr0.005"]})
    assert plotting.run_title(table, "srmsprop_sequence.lstm.lr0.005") == "lstm lr0.005"  # no metadata
    table.attrs["cells"] = {"srmsprop_sequence.lstm.lr0.005": {"lr": 0.02}}
    assert plotting.run_title(table, "srmsprop_sequence.lstm.lr0.005") == "lstm η=0.02"


def test_figure_table_carries_the_cells_metadata_not_a_broadcast_eta(synthetic_run, tmp_path):
    figure = "w1_28_gradient_norm"
    roles = synthetic_roles(FIGURES[figure])
    table = plotting.read_table(figure_table(tmp_path, figure, synthetic_run, roles))
    assert "lr" not in table.columns and set(table["cell"]) == {"syn_main"}
    assert plotting.learning_rate(table, "syn_main") == LR
    assert plotting.metadata(table, "syn_main")["run_id"] == "synthetic"
    # the onset drawn on figures is the summary's eos_onset_step (the synthetic run reaches 2 at step 40)
    assert plotting.onset(table, "syn_main") == 40
    with pytest.raises(contract.ContractError, match="no metadata for cell 'other'"):
        plotting.learning_rate(table, "other")


def test_a_cells_figure_rows_are_its_declared_rows_up_to_max_step():
    """The rows of a run kept for a figure (the rule's and a figure drawn from runs in progress): the
    declared (process, quantity) pairs only, up to `max_step`, with the cell's name."""
    steps = np.arange(5)
    table = pd.concat(
        [
            pd.DataFrame({"process": p, "step": steps, "quantity": q, "index": -1, "value": steps * 1.0})
            for p, q in [("discrete", "train_loss"), ("central", "train_loss"), ("discrete", "grad_norm_sq")]
        ],
        ignore_index=True,
    )
    rows = contract.figure_rows(table, "f", "main", "c1", {"discrete": ["train_loss"]}, max_step=2)
    assert set(zip(rows["process"], rows["quantity"], strict=True)) == {("discrete", "train_loss")}
    assert list(rows["step"]) == [0, 1, 2] and set(rows["cell"]) == {"c1"}
    assert len(contract.figure_rows(table, "f", "main", "c1", {"central": ["train_loss"]}, None)) == 5
    with pytest.raises(contract.ContractError, match="cell 'c1' has no central/grad_norm_sq"):
        contract.figure_rows(table, "f", "main", "c1", {"central": ["grad_norm_sq"]}, None)
