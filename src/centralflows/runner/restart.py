"""Restart points derived from a finished run: where its sharpness first reaches 2/η (W1.18)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import h5py
import numpy as np

from centralflows.engine.registry import EOS, onset_index
from centralflows.runner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

EDGE_KEY = "discrete/effective_hessian_eigs"  # S_eff = η·S for GD: ≥ 2 where S ≥ 2/η


class RestartError(ValueError):
    """The source run has no restart point (it never reaches the edge)."""


def first_crossing(steps, values, threshold: float = EOS) -> int:
    """The first step whose value is ≥ threshold (NaN, i.e. not logged, never crosses).

    Args:
        steps: the logged steps [rows].
        values: [rows] or [rows, k] (the top eigenvalue is column 0).

    Raises:
        RestartError: no value reaches the threshold.
    """
    values = np.asarray(values, float)
    top = values[:, 0] if values.ndim == 2 else values
    first = onset_index(top, threshold)
    if first is None:
        largest = np.nanmax(top, initial=-np.inf)
        raise RestartError(f"the value never reaches {threshold:g} (largest: {largest:g})")
    return int(np.asarray(steps)[first])


def edge_step(hdf5) -> int:
    """The first step of a run where its discrete process's top effective eigenvalue reaches 2."""
    with h5py.File(hdf5, "r") as f:
        if EDGE_KEY not in f:
            raise RestartError(f"{hdf5} has no {EDGE_KEY}: the source run must log eigenvalues")
        try:
            return first_crossing(f["step"][:], f[EDGE_KEY][:])
        except RestartError as error:
            raise RestartError(f"{hdf5}: the discrete sharpness never reaches 2/eta ({error})") from None


def _checkpoint_at_or_before(run_dir: Path, step: int) -> Path | None:
    found = []
    for path in Path(run_dir, "checkpoints").glob("checkpoint_*.npz"):
        saved = int(path.stem.split("_")[-1])
        if saved <= step:
            found.append((saved, path))
    return max(found)[1] if found else None


def edge_checkpoint(source_hdf5, out) -> tuple[Path, int]:
    """Writes to `out` a checkpoint of the source run's discrete process at its edge step N.

    The source's newest checkpoint at or before N (or its start when there is none) is advanced to N
    by the engine's own discrete process with the source's resolved config, so the state is the
    source trajectory's own (bitwise: the same code and dtype). The checkpoint's meta records N, the
    source and the criterion.

    Returns:
        (out, N).
    """
    from centralflows.runner.experiment import run  # the engine only when a checkpoint is made
    from centralflows.runner.sections import RunConfig

    source_hdf5, out = Path(source_hdf5), Path(out)
    step = edge_step(source_hdf5)
    with h5py.File(source_hdf5, "r") as f:
        config = json.loads(f.attrs["config"])
    base = _checkpoint_at_or_before(source_hdf5.parent, step)
    config.update(runs=["discrete"], steps=step, checkpoint={"frequency": -1, "steps": [step]})
    config["eig"] = {**config["eig"], "frequency": -1}  # eigenvalues do not change the trajectory
    config["discrete"] = {**config.get("discrete", {}), "eig": {}}
    config["checkpoint_file"] = None  # a fresh run, not a resume (run() reads a resolved config)
    # a source written before the option existed computed float32 on CPU, where all of them ran
    config.setdefault("matmul_precision", "float32")
    if base is not None:  # the checkpoint already holds the warm start
        config.update(load={"path": str(base), "from_process": "discrete"}, warm_start=-1)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        if base is not None and int(load_checkpoint(base)[1]["step"]) == step:
            made = base
        else:
            run(RunConfig.from_dict({**config, "out": tmp}), progress=False)
            made = latest_checkpoint(tmp)
        if made is None:
            raise RestartError(f"{source_hdf5}: the edge is the run's first step {step}; no state to restart")
        tree, meta = load_checkpoint(made)
    origin = {"source": str(source_hdf5), "criterion": f"{EDGE_KEY}[0] >= {EOS:g}",
              "advanced_from": str(base) if base else "the source's start"}  # fmt: skip
    save_checkpoint(out, tree, {**meta, "step": step, "edge": origin})
    return out, step
