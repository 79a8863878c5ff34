"""A real Snakemake run of a tiny ci subset in a copy of the workflow (needs the engine)."""

import json
import shutil

import pandas as pd

from .conftest import ROOT, snakemake


def test_ci_subset_end_to_end(tmp_path):
    for name in ("Snakefile", "config.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    targets = ["figures/ci/r1_train_loss.png", "figures/ci/r2_hessian.pdf"]
    result = snakemake("--cores", "2", "--config", "scale=ci", "--", *targets, cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for target in targets:
        assert (tmp_path / target).stat().st_size > 0
    (info,) = (tmp_path / "results/ci/tables/runs").glob("*.json")  # the one run both figures share
    assert json.loads(info.read_text())["attrs"]["status"] == "completed"
    table = pd.read_csv(tmp_path / "results/ci/tables/figures/r2_hessian.csv")
    assert set(table["quantity"]) == {"hessian_eigs"} and table["value"].notna().all()
