"""HDF5 logger in the authors' layout (REFERENCE §3.9): readable while running and after a crash.

Layout: a root dataset `step` [rows] and one float64 dataset [rows, ...] per logged key, the key's
slashes making groups ("discrete/train_loss", "central/opt.nu" is dataset "opt.nu" in group
"central", "distances/central-discrete", "deltas"). NaN marks values never written: rows before a key
first appeared, and the padding when a key's trailing shape grows (more tracked eigenvalues).

Crash safety. The file is written as `data.partial.hdf5` in SWMR mode and flushed after every
`flush_every` rows, so a reader opening it with `h5py.File(path, "r", libver="latest", swmr=True)`
sees every flushed row, also after the writer was killed. SWMR forbids creating datasets or
attributes, and a file killed while open for writing without SWMR cannot be opened at all, so every
structural change (new keys, attributes, the final status) is made on a copy that then replaces the
file with os.replace: at any moment the path holds a readable file. A reader already holding the
file open keeps seeing the old copy after such a change; it reopens the file to see new keys (and
calls `dataset.refresh()` to see new rows). Readers belong in another process: HDF5 shares one open
file between the handles of a process, so a reader there would keep the file "open for write" and
the copy would fail. `close()` renames the result to `data.hdf5`.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np

PARTIAL, FINAL = "data.partial.hdf5", "data.hdf5"
STATUSES = ("running", "completed", "diverged", "stopped", "failed")  # the root attribute `status`
_PACKAGES = ("jax", "jaxlib", "optax", "flax", "h5py", "numpy")


def versions() -> dict:
    """Versions of Python and the numerical packages (None for a package that is not installed)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The commit of the source tree this package runs from, "+dirty" if modified; None outside git."""
    here = Path(__file__).parent

    def git(*args):
        return subprocess.run(["git", "-C", str(here), *args], capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _attr(value):
    """HDF5 attributes hold scalars and strings; anything nested is stored as JSON."""
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str)
    return "" if value is None else value


def _open_swmr(path: Path) -> h5py.File:
    # Opening straight into SWMR-write mode (rather than r+ then swmr_mode = True) leaves no moment at
    # which a kill would mark the file "open for write" without SWMR, i.e. unreadable.
    fapl = h5py.h5p.create(h5py.h5p.FILE_ACCESS)
    fapl.set_libver_bounds(h5py.h5f.LIBVER_LATEST, h5py.h5f.LIBVER_LATEST)
    fid = h5py.h5f.open(os.fsencode(path), h5py.h5f.ACC_RDWR | h5py.h5f.ACC_SWMR_WRITE, fapl=fapl)
    return h5py.File(fid)


def open_for_reading(path) -> h5py.File:
    """Opens a finished, running or killed run's file for reading (SWMR read mode)."""
    return h5py.File(path, "r", libver="latest", swmr=True)


class H5Logger:
    """Appends one row per `log` call to `out_dir/data.partial.hdf5`; `close` renames it data.hdf5.

    Args:
        out_dir: the run's directory (created if needed).
        attrs: root attributes, e.g. config, n_params, device (dicts and lists stored as JSON).
            `versions`, `git_commit` and `status` = "running" are added.
        flush_every: flush (make rows visible and durable) every this many rows.

    Example:
        logger = H5Logger(out, {"config": config, "n_params": d})
        logger.log(0, {"discrete/train_loss": 2.3, "discrete/hessian_eigs": [40.1, 12.0]})
        logger.close("completed")  # -> out/data.hdf5
    """

    def __init__(self, out_dir, attrs: dict | None = None, flush_every: int = 1, _existing: bool = False):
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / PARTIAL
        self.flush_every = flush_every
        self.file: h5py.File | None = None
        if not _existing:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            attrs = {"versions": versions(), "git_commit": git_commit(), **(attrs or {}), "status": "running"}
            tmp = self._tmp(self.path)
            with h5py.File(tmp, "w", libver="latest") as f:
                f.create_dataset(
                    "step", shape=(0,), maxshape=(None,), chunks=(1024,), dtype="i8", fillvalue=-1
                )
                f.attrs.update({k: _attr(v) for k, v in attrs.items()})
            os.replace(tmp, self.path)
        self._reopen()

    @staticmethod
    def _tmp(path: Path) -> Path:
        return path.with_name(f".{path.name}.{os.getpid()}.tmp")

    def _reopen(self):
        self.file = _open_swmr(self.path)
        self.rows = self.file["step"].shape[0]
        self.datasets = {}

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and name != "step":
                self.datasets[name] = obj

        self.file.visititems(visit)

    def _edit(self, change, target: Path | None = None):
        """Applies `change(h5py.File)` to a copy of the file, then swaps it in (or moves it to target)."""
        self.file.close()
        tmp = self._tmp(self.path)
        shutil.copyfile(self.path, tmp)
        with h5py.File(tmp, "r+", libver="latest") as f:
            change(f)
        os.replace(tmp, target or self.path)

    def log(self, step: int, values: dict):
        """Appends row `self.rows` holding `step` and `values` ({key: scalar or array}).

        Keys seen before but missing here get a NaN row; new keys get NaN in earlier rows; a value
        larger than its dataset's trailing shape grows it (NaN padded). The rank must not change.
        """
        arrays = {key: np.asarray(value, dtype=np.float64) for key, value in values.items()}
        new = {key: a for key, a in arrays.items() if key not in self.datasets}
        for key, a in arrays.items():
            if key in self.datasets and a.ndim != self.datasets[key].ndim - 1:
                raise ValueError(
                    f"{key}: a value of shape {a.shape} for a dataset of shape {self.datasets[key].shape}"
                )
        if new:

            def create(f):
                for key, a in new.items():
                    chunk_rows = max(16, 4096 // max(1, a.size))
                    f.create_dataset(
                        key, shape=(self.rows, *a.shape), maxshape=(None,) * (a.ndim + 1), dtype="f8",
                        chunks=(chunk_rows, *(max(1, n) for n in a.shape)), fillvalue=np.nan,
                    )  # fmt: skip

            self._edit(create)
            self._reopen()
        row = self.rows
        self.file["step"].resize((row + 1,))
        self.file["step"][row] = step
        for key, ds in self.datasets.items():
            a = arrays.get(key)
            trailing = (
                ds.shape[1:]
                if a is None
                else tuple(max(m, n) for m, n in zip(ds.shape[1:], a.shape, strict=True))
            )
            ds.resize((row + 1, *trailing))
            if a is not None and a.size:
                ds[(row, *(slice(0, n) for n in a.shape))] = a
        self.rows += 1
        if self.rows % self.flush_every == 0:
            self.file.flush()

    def flush(self):
        self.file.flush()

    def set_attrs(self, **attrs):
        """Sets root attributes (nested values as JSON)."""
        self._edit(lambda f: f.attrs.update({k: _attr(v) for k, v in attrs.items()}))
        self._reopen()

    def close(self, status: str = "completed", reason: str = "", finalize: bool = True) -> Path:
        """Records `status` and `status_reason`, and with `finalize` renames the file to data.hdf5.

        Args:
            status: one of running, completed, diverged, stopped, failed.
            reason: why the run ended that way.
            finalize: False keeps data.partial.hdf5 (a stopped run that will be resumed).

        Returns:
            The path of the file.
        """
        if status not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}, got {status!r}")
        if self.file is None:
            raise RuntimeError("the logger is already closed")
        self.file.flush()
        target = self.out_dir / FINAL if finalize else self.path
        self._edit(lambda f: f.attrs.update(status=status, status_reason=reason), target)
        if finalize:
            self.path.unlink()
        self.file = None
        return target

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if self.file is not None and error is not None:
            self.close("failed", repr(error), finalize=False)
        elif self.file is not None:
            self.close("completed")

    @classmethod
    def resume(cls, out_dir, step: int, attrs: dict | None = None, flush_every: int = 1) -> H5Logger:
        """Reopens a run's file (partial, else final) keeping only the rows with step < `step`.

        The kept rows are copied into a fresh data.partial.hdf5 (a killed SWMR file can only be
        read, not reopened for writing), which replaces the old one; a final data.hdf5 is removed,
        since its rows now live in the partial file. `attrs` are added to the root attributes.
        """
        out_dir = Path(out_dir)
        source = out_dir / PARTIAL if (out_dir / PARTIAL).exists() else out_dir / FINAL
        target = out_dir / PARTIAL
        tmp = cls._tmp(target)
        with open_for_reading(source) as src, h5py.File(tmp, "w", libver="latest") as dst:
            later = np.flatnonzero(src["step"][:] >= step)
            keep = int(later[0]) if later.size else src["step"].shape[0]

            def copy(name, obj):
                if isinstance(obj, h5py.Dataset):
                    ds = dst.create_dataset(
                        name, shape=(keep, *obj.shape[1:]), dtype=obj.dtype, maxshape=obj.maxshape,
                        chunks=obj.chunks, fillvalue=obj.fillvalue,
                    )  # fmt: skip
                    rows = min(keep, obj.shape[0])  # a killed writer may have left a dataset short
                    if rows:
                        ds[:rows] = obj[:rows]

            src.visititems(copy)
            dst.attrs.update(dict(src.attrs))
            dst.attrs.update({k: _attr(v) for k, v in (attrs or {}).items()})
            dst.attrs.update(status="running", status_reason="", resumed_at_step=step)
        os.replace(tmp, target)
        if source != target:
            source.unlink()
        return cls(out_dir, flush_every=flush_every, _existing=True)
