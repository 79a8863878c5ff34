"""A run's output folder: whether it holds this run's work (resume), another's (refuse or delete) or none."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path

from centralflows.plan.grid import not_identity
from centralflows.runner.checkpoint import latest_checkpoint, load_checkpoint
from centralflows.runner.config import ConfigError, flatten, resolve_config
from centralflows.runner.io import FINAL, PARTIAL, open_for_reading
from centralflows.runner.options import nest
from centralflows.runner.sections import RunConfig

log = logging.getLogger("centralflows")


# Keys that do not change a trajectory: where it is written and how far it goes (a run may be extended).
_NOT_TRAJECTORY = (
    "out",
    "checkpoint_file",
    "steps",
    "checkpoint.",
    *[f"{section}.{k}" for section, keys in not_identity().items() for k in keys],
)


def _completed(config: RunConfig | dict) -> dict:
    """A run config as stored (JSON of the dict form), an older version's with today's options added.

    A run written before an option existed ran as that option's default does (a new option keeps the
    old behaviour by default), so its stored config is completed with the defaults: a long run resumes
    across a code update instead of starting over. A config that no longer resolves (an option since
    removed or renamed) is compared as it is, and so differs.
    """
    if not isinstance(config, RunConfig):
        try:
            config = resolve_config(config)
        except ConfigError:
            pass
    config = config.to_dict() if isinstance(config, RunConfig) else config
    return flatten(json.loads(json.dumps(config, default=str)))


def config_difference(a: RunConfig | dict, b: RunConfig | dict) -> list[str]:
    """The dotted keys whose values differ between two run configs, ignoring _NOT_TRAJECTORY.

    Both are compared as stored (JSON of the dict form), so a config read back from a checkpoint or
    HDF5 file compares equal to the one that wrote it; options that one of them lacks (written by an
    older version) count at their defaults.
    """
    a, b = _completed(a), _completed(b)
    keys = [k for k in dict.fromkeys([*a, *b]) if not k.startswith(_NOT_TRAJECTORY)]
    return [k for k in keys if a.get(k) != b.get(k)]


def _stored_config(out_dir: Path, checkpoint: Path | None) -> tuple[dict | None, str]:
    """(the config of the run whose work is in out_dir, or None if unreadable; its status or "")."""
    if checkpoint is not None:
        return load_checkpoint(checkpoint)[1].get("config"), ""
    for name in (PARTIAL, FINAL):
        if (out_dir / name).exists():
            try:
                with open_for_reading(out_dir / name) as f:
                    return json.loads(f.attrs["config"]), str(f.attrs.get("status", ""))
            except (OSError, KeyError, ValueError):
                return None, ""
    return None, ""


def _keep_started_defaults(config: RunConfig, stored: dict, set_keys, differ: list[str]) -> RunConfig | None:
    """`config` with the stored values of the differing options outside `set_keys`; None if any is set.

    The run whose settings (`set_keys`) name the folder started when those options had other defaults:
    it goes on with the values it started with, so a changed default neither discards nor alters it.
    None also when a stored value no longer resolves (an option since removed or renamed).
    """
    if any(k in set_keys for k in differ):
        return None
    old, today = _completed(stored), flatten(config.to_dict())
    try:
        kept = resolve_config(nest({**today, **{k: old[k] for k in differ if k in old}}))
    except ConfigError:
        return None
    if config_difference(stored, kept):
        return None
    log.warning(
        "%s: continuing with the values this run started with for options whose defaults changed since: %s",
        config.out,
        ", ".join(f"{k} = {old.get(k)!r} (default now {today.get(k)!r})" for k in differ),
    )
    return kept


def prepare_out_dir(
    config: RunConfig, overwrite: bool = False, discard_other: bool = False, set_keys=None
) -> RunConfig:
    """Decides how a run uses its output folder; returns the config, with checkpoint_file set to resume.

    A folder holding the work of the same run (same config up to steps and paths) resumes from its
    newest readable checkpoint, or starts over when there is none. A folder holding another run's work
    (or a finished data.hdf5) is refused unless `overwrite` (then that work is deleted); with
    `discard_other` (the workflow, which owns its folders) another run's work is deleted silently.

    `set_keys` (the workflow: the dotted options its run id hashes, so the folder's name stands for
    them) makes a stored config that differs only in other options this run's work under older
    defaults: it resumes with its stored values for those (logged), instead of being deleted. Without
    it (the command line, whose --out names no settings) any difference is another run.

    Raises:
        ConfigError: `out` is not a usable folder, or it holds work that this run must not touch.
    """
    out_dir = Path(config.out)
    for path in (out_dir, *out_dir.parents):
        if path.exists() and not path.is_dir():
            raise ConfigError(f"--out {out_dir}: {path} is a file, not a folder; choose another --out", "out")
    if config.checkpoint_file:  # the checkpoint is checked against the config when it is loaded
        stored, _ = _stored_config(out_dir, None)
        if stored is not None and (differ := config_difference(stored, config)):
            raise ConfigError(
                f"--out {out_dir} holds the file of another run (its {', '.join(differ[:4])} differ); "
                "resume into a fresh --out",
                key="out",
            )
        return config
    work = [p for p in (out_dir / FINAL, out_dir / PARTIAL) if p.exists()]
    if any((out_dir / "checkpoints").glob("checkpoint_*.npz")):
        work.append(out_dir / "checkpoints")
    if not work:
        return config
    checkpoint = latest_checkpoint(out_dir)
    stored, status = _stored_config(out_dir, checkpoint)
    finished = (out_dir / FINAL).exists() and not (out_dir / PARTIAL).exists()
    differ, kept = [], config
    if stored is None:
        problem = "holds run files that cannot be read"
    elif (differ := config_difference(stored, config)) and not (
        set_keys is not None and (kept := _keep_started_defaults(config, stored, set(set_keys), differ))
    ):
        problem = f"holds the work of another run (its {', '.join(differ[:4])} differ)"
    elif finished:
        status = status or _stored_config(out_dir, None)[1]
        problem = f"holds a finished run (status {status}; --checkpoint-file continues it)"
    else:
        problem = ""
    if problem and not (overwrite or discard_other):
        raise ConfigError(
            f"--out {out_dir} {problem}; pass --overwrite to delete it and start over, "
            "or choose another --out",
            key="out",
        )
    if problem or overwrite:
        log.warning("deleting %s (%s)", ", ".join(map(str, work)), problem or "--overwrite")
        for path in work:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        return config
    config = kept  # with the values it started with, where defaults changed since
    if checkpoint is None:
        log.warning("%s holds a partial run without a checkpoint: starting over", out_dir)
        return config
    log.info("%s holds this run's work: resuming from %s", out_dir, checkpoint)
    return dataclasses.replace(config, checkpoint_file=str(checkpoint))
