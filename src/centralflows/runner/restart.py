"""Restart points of a finished run: its state at a step such as its edge step (W1.18, found by
centralflows.analysis.onset.edge_step)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import h5py

from centralflows.runner.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint


class RestartError(ValueError):
    """The source run has no state to restart from at the step asked for."""


def _checkpoint_at_or_before(run_dir: Path, step: int) -> Path | None:
    found = []
    for path in Path(run_dir, "checkpoints").glob("checkpoint_*.npz"):
        saved = int(path.stem.split("_")[-1])
        if saved <= step:
            found.append((saved, path))
    return max(found)[1] if found else None


def edge_checkpoint(source_hdf5, out, step: int, criterion: str) -> tuple[Path, int]:
    """Writes to `out` a checkpoint of the source run's discrete process at step N = `step` (W1.18: its
    edge step, `centralflows.analysis.onset.edge_step`, with that module's EDGE_CRITERION as `criterion`).

    The source's newest checkpoint at or before N (or its start when there is none) is advanced to N
    by the engine's own discrete process with the source's resolved config, so the state is the
    source trajectory's own (bitwise: the same code and dtype). The checkpoint's meta records N, the
    source and the criterion (how N was found).

    Returns:
        (out, N).
    """
    from centralflows.runner.experiment import run  # the engine only when a checkpoint is made
    from centralflows.runner.sections import RunConfig

    source_hdf5, out = Path(source_hdf5), Path(out)
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
    origin = {"source": str(source_hdf5), "criterion": criterion,
              "advanced_from": str(base) if base else "the source's start"}  # fmt: skip
    save_checkpoint(out, tree, {**meta, "step": step, "edge": origin})
    return out, step
