"""Checkpoints round-trip exactly, are written atomically, and the latest one is found by step."""

import os

import numpy as np
import pytest

from centralflows.runner.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip_keeps_dtypes_shapes_and_structure(tmp_path):
    tree = {
        "processes": {
            "discrete": {
                "w": np.arange(5, dtype=np.float64) / 3,
                "s": {"t": np.float32(7.0), "nu": np.zeros((2, 3), np.float32)},
                "eigs": {"key": np.array([0, 42], np.uint32), "calls": np.asarray(3), "V": np.ones((4, 0))},
                "stopped": np.asarray(""),
            }
        },
        "empty": {},
        "none": None,
        "pair": (1, 2.5),
        "ints": [np.int32(-1), True],
    }
    save_checkpoint(tmp_path / "c.npz", tree, {"step": 12, "config": {"opt": {"lr": 0.02}}})
    back, meta = load_checkpoint(tmp_path / "c.npz")
    assert meta == {"step": 12, "config": {"opt": {"lr": 0.02}}}
    d, e = back["processes"]["discrete"], tree["processes"]["discrete"]
    for got, want in [(d["w"], e["w"]), (d["s"]["t"], e["s"]["t"]), (d["s"]["nu"], e["s"]["nu"]),
                      (d["eigs"]["key"], e["eigs"]["key"]), (d["eigs"]["calls"], e["eigs"]["calls"]),
                      (d["eigs"]["V"], e["eigs"]["V"]), (d["stopped"], e["stopped"])]:  # fmt: skip
        assert got.dtype == np.asarray(want).dtype and got.shape == np.shape(want)
        np.testing.assert_array_equal(got, want)
    assert d["s"]["t"].shape == () and d["w"].dtype == np.float64
    assert back["empty"] == {} and back["none"] is None
    assert isinstance(back["pair"], tuple) and back["pair"][1].dtype == np.float64
    assert back["ints"][0].dtype == np.int32 and back["ints"][1].dtype == np.bool_


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "checkpoints" / "checkpoint_1.npz"
    save_checkpoint(path, {"w": np.ones(3)}, {"step": 1})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        save_checkpoint(path, {"w": np.zeros(3)}, {"step": 1})
    tree, _ = load_checkpoint(path)  # the old checkpoint is untouched
    np.testing.assert_array_equal(tree["w"], np.ones(3))
    assert list(path.parent.iterdir()) == [path]  # no temporary file left behind


def test_bad_keys_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="without '/'"):
        save_checkpoint(tmp_path / "c.npz", {"a/b": np.ones(1)})


def test_latest_checkpoint_orders_by_step_number(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    for step in (2, 10, 9):
        save_checkpoint(
            tmp_path / "checkpoints" / f"checkpoint_{step}.npz", {"w": np.ones(1)}, {"step": step}
        )
    (tmp_path / "checkpoints" / ".checkpoint_99.npz.123.tmp").write_bytes(b"partial")
    assert latest_checkpoint(tmp_path).name == "checkpoint_10.npz"
    assert os.path.exists(latest_checkpoint(str(tmp_path)))


def test_truncated_newest_checkpoint_falls_back_to_the_previous_with_a_warning(tmp_path, caplog):
    for step in (2, 4):
        path = tmp_path / "checkpoints" / f"checkpoint_{step}.npz"
        save_checkpoint(path, {"w": np.ones(3)}, {"step": step})
    newest = tmp_path / "checkpoints" / "checkpoint_4.npz"
    newest.write_bytes(newest.read_bytes()[:100])  # a full disk or a copy cut short
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*checkpoint_4.npz: BadZipFile"):
        load_checkpoint(newest)
    assert latest_checkpoint(tmp_path).name == "checkpoint_2.npz"
    assert "skipping cannot read checkpoint" in caplog.text and "checkpoint_4.npz" in caplog.text
