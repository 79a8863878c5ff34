"""Starting a run from a checkpoint written by the authors' PyTorch code (their src/saving.py), without torch.

Their Checkpointer writes `<experiment>/checkpoints/checkpoint_<i>.npz` with `np.savez`: one array per
process and field ("discrete.w", "discrete.state", "central.w", ..., "midpoint.w_prev") and "step", the
loop index i at which it was written (not counting a warm start). `w` is their flat parameter vector,
`named_parameters()` concatenated in torch's layout; `state` is their optimizer state flattened the
same way: [t] for GD, [t, ν] for Scalar RMSProp, [t, ν₁ … ν_d] for RMSProp (ν in w's layout).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from centralflows.engine.optimizers import make_optimizer
from centralflows.problem.build import arch_options
from centralflows.problem.models import torch_init

_NAME = re.compile(r"checkpoint_(\d+)\.npz")


class AuthorsCheckpointError(ValueError):
    """The authors' checkpoint cannot start this run (missing process, other architecture, ...)."""


def find(path) -> Path:
    """The checkpoint file `path` names: the file itself, or the largest step's checkpoint_<i>.npz in
    the folder `path` or in its checkpoints/ subfolder (the authors' experiment folder)."""
    path = Path(path)
    if path.is_file():
        return path
    for folder in (path, path / "checkpoints"):
        found = [(int(m[1]), p) for p in folder.glob("checkpoint_*.npz") if (m := _NAME.fullmatch(p.name))]
        if found:
            return max(found)[1]
    raise AuthorsCheckpointError(f"no checkpoint_<step>.npz in {path} or {path / 'checkpoints'}")


def is_authors_checkpoint(path) -> bool:
    """True when `path` (a file or folder, see find) holds the authors' layout, not this package's."""
    try:
        with np.load(find(path), allow_pickle=False) as data:
            return "__meta__" not in data.files and any(k.endswith(".w") for k in data.files)
    except (AuthorsCheckpointError, OSError, ValueError):
        return False


def load(path, from_process: str, arch_config: dict, spec, optimizer: str) -> tuple:
    """Reads the authors' checkpoint and maps process `from_process` onto this package's layout.

    Args:
        path: a checkpoint file, or a folder holding checkpoints (see find).
        from_process: their process name ("discrete", "central", "midpoint", "stable").
        arch_config: the architecture's name and options, which must be the checkpoint's.
        spec: the dataset's DataSpec.
        optimizer: a name of `centralflows.engine.registry.OPTIMIZERS`, which must be the checkpoint's.

    Returns:
        (w, s, step): the flat parameter vector in this package's order (float64 numpy), the optimizer
        state {"t", "nu"?} and the checkpoint's step.

    Raises:
        AuthorsCheckpointError: the process is missing, or w or the state do not fit the run.
    """
    file = find(path)
    with np.load(file, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    processes = sorted({k.split(".")[0] for k in arrays if "." in k})
    if f"{from_process}.w" not in arrays:
        raise AuthorsCheckpointError(
            f"{file} has no process '{from_process}'; it has {', '.join(processes)}: set load.from_process"
        )
    arch, options = arch_options(arch_config)
    try:
        w = torch_init.flax_vector(arch, options, spec, arrays[f"{from_process}.w"])
    except ValueError as err:
        raise AuthorsCheckpointError(
            f"{file}: {err}; check arch and its options against the authors' run"
        ) from None
    state = np.asarray(arrays[f"{from_process}.state"], np.float64).reshape(-1)
    # the authors' state vector is (t, ν...), ν a scalar or one entry per weight: the layout of ours
    template = make_optimizer(optimizer, 1.0).init_state(np.zeros(w.size))
    size = sum(np.size(leaf) for leaf in template.values())
    if state.size != size:
        raise AuthorsCheckpointError(
            f"{file}: the optimizer state has {state.size} entries, {optimizer} needs {size}; "
            "check opt.name against the authors' run"
        )
    s = {"t": state[0]}
    if "nu" in template and np.ndim(template["nu"]) == 0:
        s["nu"] = state[1]
    elif "nu" in template:
        s["nu"] = torch_init.flax_vector(arch, options, spec, state[1:])
    return w, s, int(arrays["step"])
