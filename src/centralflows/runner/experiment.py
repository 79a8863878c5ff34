"""Run one experiment cell: build, warm start, advance the processes in lockstep, log, checkpoint."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import os
import resource
import shutil
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from centralflows.engine.compiled import Compiled
from centralflows.engine.optimizers import Optimizer, hyperparameters
from centralflows.engine.registry import PROCESSES, optimizer_class, process_class
from centralflows.engine.stationary import StationaryProbe
from centralflows.plan.grid import not_identity
from centralflows.runner import authors_checkpoint
from centralflows.runner.allocator import MALLOC_ENV
from centralflows.runner.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from centralflows.runner.config import ConfigError, flatten
from centralflows.runner.io import FINAL, PARTIAL, H5Logger, open_for_reading
from centralflows.runner.sections import CheckpointConfig, OptConfig, RunConfig

log = logging.getLogger("centralflows")


class RunStopped(RuntimeError):
    """The run was asked to stop (SIGTERM / SIGINT); a checkpoint of the last completed step was written.

    Attributes:
        signum: the signal received.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"signal {signum}")
        self.signum = signum


class _Signals:
    """SIGTERM and SIGINT raise RunStopped in the main thread at once, so a step of minutes is cut short.

    Python runs the handler between bytecodes, i.e. between two jitted calls (the LOBPCG iterations and
    the flows' substeps are host loops). Inside `deferred()` (HDF5 and checkpoint writes) the signal
    waits until the block ends, so no file is left half-written.
    """

    def __init__(self):
        self.pending, self.depth, self.saved = None, 0, {}

    def _handle(self, signum, frame):
        if self.depth:
            self.pending = signum
        else:
            raise RunStopped(signum)

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                self.saved[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread: no graceful stop
                pass
        return self

    def __exit__(self, *exc):
        for sig, handler in self.saved.items():
            signal.signal(sig, handler)

    @contextlib.contextmanager
    def deferred(self):
        self.depth += 1
        try:
            yield
        finally:
            self.depth -= 1
        if not self.depth and self.pending is not None:
            raise RunStopped(self.pending)


# Keys that do not change a trajectory: where it is written and how far it goes (a run may be extended).
_NOT_TRAJECTORY = (
    "out",
    "checkpoint_file",
    "steps",
    "checkpoint.",
    *[f"{section}.{k}" for section, keys in not_identity().items() for k in keys],
)


def config_difference(a: RunConfig | dict, b: RunConfig | dict) -> list[str]:
    """The dotted keys whose values differ between two run configs, ignoring _NOT_TRAJECTORY.

    Both are compared as stored (JSON of the dict form), so a config read back from a checkpoint or
    HDF5 file compares equal to the one that wrote it.
    """
    a, b = (c.to_dict() if isinstance(c, RunConfig) else c for c in (a, b))
    a, b = (flatten(json.loads(json.dumps(c, default=str))) for c in (a, b))
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


def prepare_out_dir(config: RunConfig, overwrite: bool = False, discard_other: bool = False) -> RunConfig:
    """Decides how a run uses its output folder; returns the config, with checkpoint_file set to resume.

    A folder holding the work of the same run (same config up to steps and paths) resumes from its
    newest readable checkpoint, or starts over when there is none. A folder holding another run's work
    (or a finished data.hdf5) is refused unless `overwrite` (then that work is deleted); with
    `discard_other` (the workflow, which owns its folders) another run's work is deleted silently.

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
    if stored is None:
        problem = "holds run files that cannot be read"
    elif differ := config_difference(stored, config):
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
    if checkpoint is None:
        log.warning("%s holds a partial run without a checkpoint: starting over", out_dir)
        return config
    log.info("%s holds this run's work: resuming from %s", out_dir, checkpoint)
    return dataclasses.replace(config, checkpoint_file=str(checkpoint))


def process_options(config: RunConfig, name: str) -> dict:
    """The keyword options of process `name`: its config section, less its eig overrides (see
    RunConfig.process_eig) and the central flow's probe (stationary_every); the stationary flow's solver
    options are one StationaryConfig."""
    section = getattr(config, name)
    skip = ("eig", "stationary_every")
    return {f.name: getattr(section, f.name) for f in dataclasses.fields(section) if f.name not in skip}


def build_optimizer(opt: OptConfig) -> Optimizer:
    """The optimizer of the `opt` section: its class with lr, flow_t_rate and its own hyperparameters."""
    own = {key: getattr(opt, key) for key in hyperparameters(opt.name)}
    return optimizer_class(opt.name)(lr=opt.lr, flow_t_rate=opt.flow_t_rate, **own)


def make_processes(config: RunConfig, kernels: Compiled, w, s, initialize: bool = True) -> dict:
    """The requested processes, all starting from (w, s), in the canonical order."""
    made = {}
    for offset, name in enumerate(p for p in PROCESSES if p in config.runs):
        eig, pseed = config.process_eig(name), 1000 * (config.seed + 1) + 10 * offset
        cls = process_class(name)
        options = process_options(config, name)
        if cls.is_flow:  # the flows apply F once at construction, unless a checkpoint restores them
            options["initialize"] = initialize
        made[name] = cls(kernels, w, s, eig, pseed, **options)
        every = config.central.stationary_every
        if name == "central" and every > 0:
            made[name].probe = StationaryProbe(kernels, eig, every, pseed + 5, config.stationary.solver)
    return made


def group_logs(processes: dict) -> dict:
    """Cross-process quantities: pairwise distances, GD's displacement from the central flow (`deltas`)
    and the midpoint run's oscillation about its own midpoint (`midpoint_deltas`), on Σ's eigenvectors."""
    out = {}
    for a, b in itertools.combinations(sorted(processes), 2):
        out[f"distances/{a}-{b}"] = jnp.linalg.norm(processes[a].point - processes[b].point)
    central = processes.get("central")
    if central is not None and not central.stopped:  # a stopped flow has no Σ
        if "discrete" in processes:
            out["deltas"] = central.deltas(processes["discrete"].point)
        if "midpoint" in processes:
            # the authors' key (REFERENCE §1.7): the iterate's oscillation about its own midpoint,
            # U_Σᵀ P (w_t − w*_t), read between measure and step (w = w_t, w_mid = w*_t)
            mid = processes["midpoint"]
            out["midpoint_deltas"] = central.sigma_basis.T @ (central.P * (mid.w - mid.w_mid))
    return out


def _device() -> str:
    dev = jax.devices()[0]
    return f"{dev.platform}:{getattr(dev, 'device_kind', '')}"


def peak_memory() -> dict:
    """This process's peak memory so far, as one root attribute named for what it measures.

    Returns:
        {"peak_device_memory_bytes": n} where the device reports it (GPU), else
        {"peak_host_rss_bytes": n}, the process's peak resident set (XLA:CPU reports no memory stats).
    """
    stats = jax.devices()[0].memory_stats()
    if stats and "peak_bytes_in_use" in stats:
        return {"peak_device_memory_bytes": int(stats["peak_bytes_in_use"])}
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return {"peak_host_rss_bytes": int(rss) * (1 if sys.platform == "darwin" else 1024)}


def _checkpoint_due(step: int, start: int, options: CheckpointConfig) -> bool:
    freq = options.frequency
    return step != start and ((freq > 0 and step % freq == 0) or step in options.steps)


def _load_authors(config: RunConfig, problem, dtype) -> tuple:
    """(w, s, step) of process load.from_process in a checkpoint written by the authors' code."""
    from centralflows.problem.build import arch_options

    name, options = arch_options(config.arch.component())
    load = config.load
    try:
        w, s, step = authors_checkpoint.load(
            load.path, load.from_process, name, options, problem.spec, config.opt.name
        )
    except authors_checkpoint.AuthorsCheckpointError as err:
        raise ConfigError(str(err), key="load.path") from None
    log.info("starting from the authors' checkpoint %s (%s, step %d)", load.path, load.from_process, step)
    return jnp.asarray(w, dtype), jax.tree.map(lambda a: jnp.asarray(a, dtype), s), step


def _init_attr(config: RunConfig) -> str:
    """What the initial weights are, for the HDF5 root attribute `init`."""
    if config.load.path:
        return f"loaded from {config.load.path} ({config.load.from_process})"
    if config.init == "torch":
        return f"torch: the authors' PyTorch initialisation after torch.manual_seed({config.seed})"
    return f"jax: PyTorch-style initialisation drawn from jax.random.PRNGKey({config.seed})"


def run(config: RunConfig, progress: bool = True) -> Path:
    """Runs one cell described by a resolved config (see `centralflows.runner.config`).

    Writes `config.out/data.hdf5` (the authors' layout; the file appears when the run ends)
    and checkpoints under `config.out/checkpoints/`. With `config.checkpoint_file` the run
    resumes from that checkpoint and continues the identical trajectory (in the folder's file, or in
    a new file starting at the checkpoint's step); without it, a folder holding this run's work resumes
    from its newest checkpoint and one holding other work is refused (see `prepare_out_dir`).
    SIGTERM / SIGINT stop the run within the current step: the last completed step is checkpointed, the
    file is kept as data.partial.hdf5 with status "stopped", and RunStopped is raised.

    Returns:
        The path of the finished HDF5 file.
    """
    from centralflows.problem.build import build_problem  # heavy imports (flax models) only when running

    if any(p in config.runs and config.process_eig(p).frequency < 1 for p in ("central", "ablated")):
        raise ConfigError(
            "the central flow needs eigenpairs: set --eig.frequency 1 (or --central.eig.frequency 1)"
        )
    config = prepare_out_dir(config)
    # before anything is traced: JAX's default would compute float32 products in TF32 on recent GPUs
    with _Signals() as signals, jax.default_matmul_precision(config.matmul_precision):
        return _run(config, progress, signals, build_problem)


def _problem_options(config: RunConfig) -> dict:
    """What `centralflows.problem.build.build_problem` reads: the dataset's and architecture's options
    (name first), the seed and the initialisation."""
    return {"data": config.data.component(), "arch": config.arch.component(), "seed": config.seed,
            "init": config.init}  # fmt: skip


def _read_checkpoint(config: RunConfig, key: str) -> tuple[dict, dict]:
    """Loads the checkpoint named by `key` (checkpoint_file or load.path); ConfigError if unreadable."""
    path = config.checkpoint_file if key == "checkpoint_file" else config.load.path
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        flag = "--" + key.replace("_", "-")
        raise ConfigError(f"{flag}: {err}", key=key) from None


def _run(config: RunConfig, progress: bool, signals: _Signals, build_problem) -> Path:
    if config.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    out_dir = Path(config.out)
    resume = config.checkpoint_file
    if resume:
        tree, meta = _read_checkpoint(config, "checkpoint_file")
        if differ := config_difference(meta.get("config", {}), config):
            raise ConfigError(
                f"--checkpoint-file {resume} was written by another run "
                f"(its {', '.join(differ[:4])} differ); to start from one of its points, "
                "use --load.path with --load.from-process",
                key="checkpoint_file",
            )
    problem = build_problem(_problem_options(config), dtype)
    opt = build_optimizer(config.opt)
    kernels = Compiled(problem, opt, config.eig.chunk_size)
    w, s = problem.w0, opt.init_state(problem.w0)
    attrs = {
        # the run's config; a resume is recorded by resumed_at_step / resumed_from, not in it, so a
        # resumed file describes the same run as an uninterrupted one
        "config": {**config.to_dict(), "checkpoint_file": None},
        "n_params": int(problem.n_params),
        "dataset": problem.dataset,
        "device": _device(),
        "backend": jax.default_backend(),  # JAX's version is in `versions` (H5Logger)
        "matmul_precision": config.matmul_precision,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),  # e.g. GPU determinism (runner.backend)
        # glibc's allocator settings the process started with (runner.allocator); speed only
        "malloc_env": " ".join(f"{key}={os.environ[key]}" for key in MALLOC_ENV if key in os.environ),
        "init": _init_attr(config),
    }

    if resume:
        start = int(meta["step"])
        processes = make_processes(config, kernels, w, s, initialize=False)
        for name, p in processes.items():
            p.load_state_dict(tree["processes"][name])
        with signals.deferred():
            if (out_dir / PARTIAL).exists() or (out_dir / FINAL).exists():
                logger = H5Logger.resume(out_dir, start, {"config": attrs["config"]})
            else:  # a checkpoint copied into a fresh folder: a new file from its step
                marks = {"start_step": start, "resumed_at_step": start, "resumed_from": str(resume)}
                logger = H5Logger(out_dir, {**attrs, **marks})
        log.info("resumed from %s at step %d", resume, start)
    else:
        start = 0
        load = config.load
        if load.path:
            # start every process from one process's point in a checkpoint (e.g. GD at the edge)
            if authors_checkpoint.is_authors_checkpoint(load.path):
                w, s, start = _load_authors(config, problem, dtype)
                loaded = {"path": load.path, "step": start, "format": "authors"}
            else:
                tree, meta = _read_checkpoint(config, "load")
                src = tree["processes"].get(load.from_process)
                if src is None:
                    raise ConfigError(
                        f"--load.from-process {load.from_process}: {load.path} holds only "
                        f"{', '.join(tree['processes'])}",
                        key="load.from_process",
                    )
                w = jnp.asarray(src["w"], dtype)
                s = jax.tree.map(lambda a: jnp.asarray(a, dtype), src["s"])
                start = int(meta["step"])
                loaded = {"path": load.path, "step": start}
                if (
                    "edge" in meta
                ):  # an edge checkpoint (centralflows.runner.restart): its source and criterion
                    loaded["edge"] = meta["edge"]
        warm = max(config.warm_start, 0)
        if config.steps <= start + warm:
            raise ConfigError(
                f"nothing to run: the run starts at step {start + warm} and ends at step {config.steps}",
                key="steps",
            )
        for _ in range(warm):
            w, s = opt.step(w, s, kernels.grad(w))
        start += warm
        processes = make_processes(config, kernels, w, s)
        if load.path:
            attrs["loaded_from"] = loaded  # the restart point (e.g. W1.18's edge step and its source)
        with signals.deferred():
            logger = H5Logger(out_dir, {**attrs, "start_step": start})

    def state():
        return {"processes": {name: p.state_dict() for name, p in processes.items()}}

    def checkpoint(step, tree):
        path = out_dir / "checkpoints" / f"checkpoint_{step}.npz"
        with signals.deferred():
            save_checkpoint(path, tree, {"step": step, "config": config.to_dict()})
        return path

    status, reason = "completed", ""
    done, snapshot = start, state()  # the last completed step and the processes' state after it
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps, disable=not progress,
               desc=out_dir.name, dynamic_ncols=True)  # fmt: skip
    try:
        for step in bar:
            done, snapshot = step, state()
            if _checkpoint_due(step, start, config.checkpoint):
                checkpoint(step, snapshot)
            values, times = {}, {}
            for name, p in processes.items():
                t0 = time.perf_counter()
                for key, value in p.measure().items():
                    values[f"{name}/{key}"] = value
                times[name] = time.perf_counter() - t0
            values.update(group_logs(processes))
            values = {key: np.asarray(v) for key, v in values.items()}
            for name in processes:
                values[f"{name}/times/measure"] = times[name]
            bad = [n for n in processes if not np.all(np.isfinite(values.get(f"{n}/train_loss", 0.0)))]
            if bad:
                with signals.deferred():
                    logger.log(step, values)
                status, reason = "diverged", f"non-finite train loss of {', '.join(bad)} at step {step}"
                log.warning("run diverged: %s", reason)
                break
            for name, p in processes.items():
                t0 = time.perf_counter()
                p.step()
                values[f"{name}/times/step"] = time.perf_counter() - t0
                for key, value in getattr(p, "step_logs", dict)().items():
                    values[f"{name}/{key}"] = value
                if getattr(p, "stopped", ""):
                    values[f"{name}/stopped"] = 1.0
            with signals.deferred():
                logger.log(step, values)
            _show_progress(bar, values, processes)
        else:
            done, snapshot = config.steps, None
            if config.steps > start and _checkpoint_due(config.steps, start, config.checkpoint):
                checkpoint(config.steps, state())
    except RunStopped as err:
        signals.depth += 1  # a second signal must not cut the checkpoint short
        path = checkpoint(done, snapshot if snapshot is not None else state())
        message = f"signal {err.signum} during step {done}; resume from checkpoint {path}"
        logger.close("stopped", message, finalize=False)
        raise RunStopped(err.signum, message) from None
    except BaseException as err:
        logger.close("failed", repr(err), finalize=False)
        raise
    finally:
        bar.close()
    signals.depth += 1  # the run is over: a late signal no longer stops it
    capped = {n: p.eigs.capped_steps for n, p in processes.items() if p.eigs.capped_steps}
    if capped:  # measurements at which eig.max_k bound (see eig_logs/k_capped): suspect eigenvalues
        logger.set_attrs(eig_k_capped_steps=capped)
    stops = {n: p.stopped for n, p in processes.items() if getattr(p, "stopped", "")}
    if stops and not reason:
        reason = "; ".join(f"{n} stopped: {why}" for n, why in stops.items())
    _record_run_attrs(logger, processes, stops)
    return logger.close(status, reason)


def _record_run_attrs(logger, processes: dict, stops: dict):
    """Root attributes written at the end: the peak memory, and what makes a run's numbers suspect
    (per-process stops, unconverged SDCP solves)."""
    attrs = {f"{n}_status_reason": f"stopped: {why}" for n, why in stops.items()}
    attrs.update(peak_memory())  # of this attempt when the run was resumed
    for p in processes.values():
        attrs.update(getattr(p, "run_attrs", dict)())
    unconverged = {key: v for key, v in attrs.items() if key.endswith("_sdcp_unconverged") and v}
    if unconverged:
        log.warning("unconverged SDCP solves in this run: %s", unconverged)
    logger.set_attrs(**attrs)


def _show_progress(bar, values: dict, processes: dict):
    """Progress: loss and top effective eigenvalue of the discrete run (or first process) and central flow."""
    post = {}
    for name in [n for n in ("discrete", "central") if n in processes] or list(processes)[:1]:
        loss = values.get(f"{name}/train_loss")
        eigs = values.get(f"{name}/effective_hessian_eigs")
        if loss is not None:
            post[f"{name[:4]}.loss"] = f"{float(loss):.4g}"
        if eigs is not None and np.size(eigs):
            post[f"{name[:4]}.S_eff"] = f"{float(np.nanmax(eigs)):.3f}"
    for name, p in processes.items():
        if getattr(p, "sdcp_unconverged", 0):
            post[f"{name[:4]}.UNCONVERGED_SDCP"] = p.sdcp_unconverged
        if getattr(p, "stopped", ""):
            post[f"{name[:4]}"] = "STOPPED"
    bar.set_postfix(post, refresh=False)
