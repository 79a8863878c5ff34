"""A truncated finished data.hdf5 under results/ is named by the table step, with the command to recompute."""

import runpy
import types

import pytest

from tests.workflow.conftest import ROOT, write_synthetic_run


def test_aggregate_names_a_truncated_file_and_how_to_recompute_it(tmp_path):
    run_dir = tmp_path / "results" / "ci" / "runs" / "r1"
    run_dir.mkdir(parents=True)
    path = run_dir / "data.hdf5"
    write_synthetic_run(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # e.g. a copy cut short
    fake = types.SimpleNamespace(
        input=types.SimpleNamespace(hdf5=str(path), job=str(run_dir / "job.json")),
        output=types.SimpleNamespace(table=str(tmp_path / "t.parquet")),
        wildcards=types.SimpleNamespace(run_id="r1"),
        log=[str(tmp_path / "aggregate.log")],
    )
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "workflow/scripts/aggregate.py"), init_globals={"snakemake": fake})
    message = str(stop.value.code)
    assert f"{path} cannot be read" in message and f"rm -r {run_dir} && snakemake" in message
    assert not (tmp_path / "t.parquet").exists()
