"""A real Snakemake run of a tiny ci subset in a copy of the workflow (needs the engine), and its report."""

import pandas as pd
import pytest

from centralflows.analysis.read import read_run_info

from .conftest import snakemake


@pytest.mark.slow
def test_ci_subset_end_to_end_and_its_report(workflow_copy):
    targets = ["figures/ci/r1_train_loss.png", "figures/ci/r2_hessian.pdf"]
    result = snakemake("--cores", "2", "--config", "scale=ci", "--", *targets, cwd=workflow_copy, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    for target in targets:
        assert (workflow_copy / target).stat().st_size > 0
    (run,) = (workflow_copy / "results/ci/tables/runs").glob("*.parquet")  # the one run both figures share
    assert read_run_info(run)["attrs"]["status"] == "completed"
    table = pd.read_parquet(workflow_copy / "results/ci/tables/figures/r2_hessian.parquet")
    assert set(table["quantity"]) == {"hessian_eigs"} and table["value"].notna().all()
    (meta,) = pd.read_csv(workflow_copy / "results/ci/tables/figures/r2_hessian.cells.csv").itertuples()
    assert meta.run_id == run.stem and meta.lr == read_run_info(run)["attrs"]["config"]["opt"]["lr"]
    # `snakemake --report` on the outputs just built: the templated script path and the caption render
    report = workflow_copy / "report.html"
    result = snakemake(
        "--report", str(report), "--config", "scale=ci", "--", *targets, cwd=workflow_copy, timeout=300
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    html = report.read_text(errors="replace")
    assert "r2_hessian" in html and "Top Hessian eigenvalues of GD" in html  # its caption
