"""The edge_checkpoint step, where its source run gives no restart point: exit 2 and what to change."""

import runpy
import types

import pytest
import yaml

from tests.workflow.conftest import ROOT, write_synthetic_run

RESOURCES = yaml.safe_load((ROOT / "config.yaml").read_text())["resources"]


def run_edge_script(tmp_path, onset: int, before: int):
    source = tmp_path / "data.hdf5"
    write_synthetic_run(source, steps=120, onset=onset)
    log, output = tmp_path / "edge.log", tmp_path / "restarts" / "edge.npz"
    fake = types.SimpleNamespace(
        input=types.SimpleNamespace(hdf5=str(source)),
        # the source run's config: a whole-GPU architecture, so no GPU share is set in this process
        params=types.SimpleNamespace(before=before, run={"arch": {"name": "vit"}}),
        output=[str(output)],
        log=[str(log)],
        config={"resources": {**RESOURCES, "device": "cpu"}},
    )
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(str(ROOT / "workflow/scripts/edge_checkpoint.py"), init_globals={"snakemake": fake})
    return stop.value.code, log.read_text(), output


def test_a_source_that_never_reaches_the_edge_stops_with_what_to_change(tmp_path):
    code, log, output = run_edge_script(tmp_path, onset=10_000, before=100)  # top eigenvalue <= 1.02
    assert code == 2 and not output.exists()
    assert "never reaches 2" in log and "raise its learning rate or steps at this scale" in log
    assert "Traceback" not in log


def test_an_edge_after_the_restarted_cells_last_step_names_their_steps(tmp_path):
    code, log, output = run_edge_script(tmp_path, onset=40, before=30)  # the edge at step 40
    assert code == 2 and not output.exists()
    assert "reaches 2/eta at step 40, not before step 30" in log and "raise their `steps`" in log
