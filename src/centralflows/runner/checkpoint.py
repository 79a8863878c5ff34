"""Checkpoints: a nested dict of arrays <-> one .npz file, written atomically."""

from __future__ import annotations

import json
import logging
import os
import re
import zipfile
from pathlib import Path

import numpy as np

_META, _TREE = "__meta__", "__tree__"  # reserved npz entries: JSON metadata and the tree's shape
_NAME = re.compile(r"checkpoint_(\d+)\.npz")
log = logging.getLogger("centralflows")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated or not written by `save_checkpoint`."""


_READ_ERRORS = (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile)


def _unreadable(path, err: Exception) -> CheckpointError:
    return CheckpointError(f"cannot read checkpoint {path}: {type(err).__name__}: {err}")


def _flatten(tree, prefix: str, arrays: dict):
    """Collects the leaves of `tree` into `arrays` ("a/b/0" keys) and returns its skeleton.

    The skeleton (JSON) records dicts, lists, tuples and None leaves, so that empty containers
    and None come back exactly; array leaves are recorded as "array".
    """
    if isinstance(tree, dict):
        for key in tree:
            if not isinstance(key, str) or "/" in key or key in (_META, _TREE):
                raise ValueError(f"checkpoint keys must be strings without '/': {prefix}{key!r}")
        return {"dict": {k: _flatten(v, f"{prefix}{k}/", arrays) for k, v in tree.items()}}
    if isinstance(tree, list | tuple):
        kind = "list" if isinstance(tree, list) else "tuple"
        return {kind: [_flatten(v, f"{prefix}{i}/", arrays) for i, v in enumerate(tree)]}
    if tree is None:
        return None
    array = np.asarray(tree)
    if array.dtype == object:
        raise TypeError(f"checkpoint leaf {prefix[:-1]!r} is not a numeric or string array")
    arrays[prefix[:-1]] = array
    return "array"


def _unflatten(skeleton, prefix: str, data):
    if skeleton is None:
        return None
    if skeleton == "array":
        return data[prefix[:-1]]
    ((kind, items),) = skeleton.items()
    if kind == "dict":
        return {k: _unflatten(v, f"{prefix}{k}/", data) for k, v in items.items()}
    values = [_unflatten(v, f"{prefix}{i}/", data) for i, v in enumerate(items)]
    return values if kind == "list" else tuple(values)


def save_checkpoint(path, tree, meta: dict | None = None) -> Path:
    """Writes `tree` (nested dicts/lists of arrays and scalars) and `meta` (JSON-able) to `path`.

    Arrays keep their dtype and shape exactly (float64, uint32 PRNG keys, 0-d arrays); Python
    scalars are stored as numpy 0-d arrays (a float as float64) and come back as such. The file is
    written next to `path` and renamed over it, so a reader never sees a half-written checkpoint.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict = {}
    skeleton = _flatten(tree, "", arrays)
    arrays[_TREE] = np.asarray(json.dumps(skeleton))
    arrays[_META] = np.asarray(json.dumps(meta or {}, default=str))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:  # a file object, so that numpy does not append ".npz" to the name
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_checkpoint(path) -> tuple:
    """Reads a checkpoint written by `save_checkpoint`.

    Returns:
        (tree, meta): the nested structure with numpy arrays as leaves, and the metadata dict.

    Raises:
        CheckpointError: the file is missing, truncated (e.g. a full disk) or not a checkpoint.
    """
    try:
        with np.load(path, allow_pickle=False) as data:
            skeleton = json.loads(str(data[_TREE]))
            meta = json.loads(str(data[_META]))
            return _unflatten(skeleton, "", data), meta
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None


def read_meta(path) -> dict:
    """The metadata of a checkpoint (step, config) without reading its arrays; raises CheckpointError."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return json.loads(str(data[_META]))
    except _READ_ERRORS as err:
        raise _unreadable(path, err) from None


def latest_checkpoint(out_dir) -> Path | None:
    """The readable checkpoint of the largest step in `out_dir/checkpoints`, or None.

    An unreadable newer one (a run killed by a full disk, a truncated copy) is skipped with a warning.
    """
    found = sorted(
        ((int(m[1]), p) for p in Path(out_dir, "checkpoints").glob("checkpoint_*.npz")
         if (m := _NAME.fullmatch(p.name))),
        reverse=True,
    )  # fmt: skip
    for _, path in found:
        try:
            load_checkpoint(path)
            return path
        except CheckpointError as err:
            log.warning("skipping %s (falling back to the previous checkpoint)", err)
    return None
