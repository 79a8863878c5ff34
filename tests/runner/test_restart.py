"""Restart points (W1.18): the first crossing of 2/η; the edge checkpoint is the source's state there."""

import json

import h5py
import jax
import numpy as np
import pytest

from centralflows.analysis.onset import EDGE_CRITERION, NoOnset, edge_step, first_crossing
from centralflows.runner.checkpoint import load_checkpoint
from centralflows.runner.config import resolve_config
from centralflows.runner.experiment import run
from centralflows.runner.restart import edge_checkpoint


def test_first_crossing_is_the_first_step_at_or_above_the_threshold():
    steps = np.arange(5, 15)
    top = np.array([np.nan, 1.2, 1.9, 1.999, 2.0, 2.3, 1.8, 2.1, 2.2, 1.9])
    eigs = np.column_stack([top, np.full(10, 2.5)])  # a larger value in column 1 is not the top one
    assert first_crossing(steps, eigs) == 9  # 2.0 itself counts (S ≥ 2/η), the later dips do not
    assert first_crossing(steps, top, threshold=2.2) == 10
    with pytest.raises(NoOnset, match="never reaches 3 .largest: 2.3"):
        first_crossing(steps, top, threshold=3.0)


CELL = {
    "data": {"name": "synthetic-cifar10", "n": 32, "n_test": 16},
    "arch": {"name": "mlp", "width": 16},
    "opt": {"name": "gd", "lr": 0.05},
    "eig": {"frequency": 1},
    "runs": ["discrete"],
    "steps": 6,
    "init": "jax",  # from it GD reaches 2/eta at step 2; from the torch init it starts above (2.04)
}


@pytest.mark.slow
@pytest.mark.parametrize("saved", [[1], []], ids=["from-a-checkpoint", "from-the-start"])
def test_edge_checkpoint_is_the_source_trajectorys_state_at_its_edge_step(tmp_path, saved):
    source = run(
        resolve_config({**CELL, "out": str(tmp_path / "src"), "checkpoint": {"steps": saved}}), False
    )
    step = edge_step(source)
    with h5py.File(source, "r") as f:
        top = f["discrete/effective_hessian_eigs"][:, 0]
    assert top[step - 1] < 2 <= top[step] and step > 1  # GD reaches 2/eta at step 2 here
    dense = run(
        resolve_config({**CELL, "out": str(tmp_path / "dense"), "checkpoint": {"frequency": 1}}), False
    )
    path, got = edge_checkpoint(source, tmp_path / "restarts" / "edge.npz", step, EDGE_CRITERION)
    assert got == step
    tree, meta = load_checkpoint(path)
    ref, _ = load_checkpoint(dense.parent / "checkpoints" / f"checkpoint_{step}.npz")
    got_state, ref_state = tree["processes"]["discrete"], ref["processes"]["discrete"]
    for a, b in zip(
        jax.tree.leaves([got_state["w"], got_state["s"]]),
        jax.tree.leaves([ref_state["w"], ref_state["s"]]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)  # bitwise: the source's own discrete process advanced it
    assert meta["step"] == step and meta["edge"]["criterion"] == "discrete/effective_hessian_eigs[0] >= 2"
    assert meta["edge"]["advanced_from"].endswith("checkpoint_1.npz" if saved else "the source's start")
    # the restarted run records where it started
    load = {"path": str(path), "from_process": "discrete"}
    restarted = run(
        resolve_config({**CELL, "out": str(tmp_path / "re"), "steps": step + 2, "load": load}), False
    )
    with h5py.File(restarted, "r") as f:
        assert list(f["step"]) == [step, step + 1] and f.attrs["start_step"] == step
        loaded = json.loads(f.attrs["loaded_from"])
        assert loaded["step"] == step and loaded["edge"]["source"] == str(source)
