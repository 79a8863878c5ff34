"""The workflow config loader (config.yaml + the registries under workflow/), the plan table
(`python -m centralflows plan`) and the rule that a cell's name is true at every scale."""

import shutil
import subprocess
import sys

import pytest
import yaml

from centralflows.plan import grid, table
from centralflows.plan.workflow import WorkflowConfigError, load_config

from .conftest import ROOT

CONFIG = load_config(ROOT / "config.yaml")
SCALES = list(CONFIG["scales"])


def _tsv(capsys, *args) -> dict[str, dict]:
    assert table.main(["--config", str(ROOT / "config.yaml"), "--tsv", *args]) == 0
    header, *lines = capsys.readouterr().out.strip().split("\n")
    rows = [dict(zip(header.split("\t"), line.split("\t"), strict=True)) for line in lines]
    return {row["cell"]: row for row in rows}


def test_plan_table_shows_what_each_cell_runs_at_the_scale(capsys):
    raw = yaml.safe_load((ROOT / "workflow/cells.yaml").read_text())["cells"]  # the file, not the loader
    ci, paper = _tsv(capsys, "--scale", "ci"), _tsv(capsys, "--scale", "paper")
    example = raw["gd_example"]
    assert paper["gd_example"]["arch"] == example["run"]["arch"]["name"] == "vit"
    assert float(paper["gd_example"]["eta"]) == example["run"]["opt"]["lr"]
    assert int(paper["gd_example"]["steps"]) == example["run"]["steps"]
    # at ci the ViT is played by the MLP, at the cell's own ci eta, for the scale's capped steps
    assert ci["gd_example"]["arch"] == "mlp (for vit)"
    assert float(ci["gd_example"]["eta"]) == example["scales"]["ci"]["opt"]["lr"]
    assert int(ci["gd_example"]["steps"]) == CONFIG["scales"]["ci"]["max_steps"]
    assert ci["gd_example"]["data"] == "synthetic-cifar10 (for cifar10)"
    assert "w1_4_progressive_sharpening" in ci["gd_example"]["figures"].split(", ")
    assert ci["lstm_gd"]["figures"] == "-"  # an extra cell (the fault test's): no figure reads it
    # W1.10's three architectures are one run per eta at ci, three at paper scale
    vision = [c for c in ci if c.startswith("gd_vision.") and c.endswith(".lr0.02")]
    assert len(vision) == 3 and len({ci[c]["run"] for c in vision}) == 1
    assert len({paper[c]["run"] for c in vision}) == 3
    assert {c: r["run"] for c, r in ci.items()} == grid.plan(CONFIG, "ci").cells


def test_plan_command_is_a_subcommand_and_names_an_unknown_scale():
    env_cmd = [sys.executable, "-m", "centralflows", "plan"]
    done = subprocess.run([*env_cmd, "--scale", "ci"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split() == [
        "cell",
        "run",
        "arch",
        "opt",
        "eta",
        "steps",
        "data",
        "figures",
    ]
    assert "scale ci: 52 cells, 34 runs" in done.stdout.splitlines()[-1]
    bad = subprocess.run([*env_cmd, "--scale", "huge"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "unknown scale 'huge'" in bad.stderr and "Traceback" not in bad.stderr


# tokens a named cell's name may carry, and the run-config value each one asserts
ARCHS = {"mlp", "cnn", "resnet", "vit", "lstm", "transformer", "mamba"}
OPTS = {"gd": "gd", "srmsprop": "scalar_rmsprop", "rmsprop": "rmsprop"}


@pytest.mark.parametrize("scale", SCALES)
def test_a_named_cells_name_is_true_at_every_scale(scale):
    """An architecture, optimizer, `lr<eta>` or `b<beta2>` in a cell's name holds at every scale (grid
    cells are named by their paper coordinates instead; the plan table shows what they run)."""
    result = grid.plan(CONFIG, scale)
    for cell in CONFIG["cells"]:
        if cell not in result.cells:
            continue
        run = result.runs[result.cells[cell]]
        for token in cell.split("_"):
            if token in ARCHS:
                assert run["arch"]["name"] == token, f"{cell} at {scale} runs {run['arch']['name']}"
            elif token in OPTS:
                assert run["opt"]["name"] == OPTS[token], f"{cell} at {scale} runs {run['opt']['name']}"
            elif token.startswith("lr") and token[2:3].isdigit():
                assert run["opt"]["lr"] == float(token[2:]), f"{cell} at {scale}: eta {run['opt']['lr']}"
            elif token.startswith("b") and token[1:2].isdigit():
                assert run["opt"]["beta2"] == float(token[1:]), f"{cell} at {scale}: beta2"


def _workflow(tmp_path):
    shutil.copy(ROOT / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(ROOT / "workflow", tmp_path / "workflow", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_loader_merges_every_registry_and_the_captions():
    assert set(CONFIG) >= {"scales", "resources", "check", "cells", "grids", "figures", "claims"}
    captions = yaml.safe_load((ROOT / "workflow/report/captions.yaml").read_text())
    assert CONFIG["figures"]["r2_hessian"]["caption"] == captions["r2_hessian"]
    # the YAML anchor of the shared data block leaves no two cells sharing one dict
    a, b = CONFIG["cells"]["mlp_gd"]["run"]["data"], CONFIG["cells"]["gd_example"]["run"]["data"]
    assert a == b and a is not b


@pytest.mark.parametrize(
    ("file", "edit", "message"),
    [
        (
            "workflow/figures.yaml",
            ("max_step: 1000", "max_stpe: 1000"),
            "workflow/figures.yaml: figures.r1_train_loss",
        ),
        ("workflow/cells.yaml", ("steps: 2000", "steps: two"), "workflow/cells.yaml: cells.mlp_gd.run.steps"),
        ("workflow/claims.yaml", ("min: 1.7", "min: high"), "workflow/claims.yaml: claims.gd_sharpness"),
        (
            "workflow/report/captions.yaml",
            ("r1_train_loss:", "r1_trian_loss:"),
            "no caption for ['r1_train_loss']",
        ),
    ],
)
def test_a_bad_registry_entry_is_named_with_its_file(tmp_path, file, edit, message):
    root = _workflow(tmp_path)
    path = root / file
    assert edit[0] in path.read_text()
    path.write_text(path.read_text().replace(edit[0], edit[1], 1))
    with pytest.raises(WorkflowConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_config(root / "config.yaml")
    assert table.main(["--config", str(root / "config.yaml"), "--scale", "ci"]) == 2
