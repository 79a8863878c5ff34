"""Run one experiment cell: build, warm start, advance the processes in lockstep, log, checkpoint."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from centralflows.engine.compiled import Compiled
from centralflows.engine.optimizers import Optimizer, hyperparameters
from centralflows.engine.predictions import deltas
from centralflows.engine.registry import PROCESSES, optimizer_class, process_class
from centralflows.engine.stationary import StationaryProbe
from centralflows.runner import authors_checkpoint
from centralflows.runner.allocator import MALLOC_ENV
from centralflows.runner.attempts import peak_rss_bytes
from centralflows.runner.checkpoint import (
    CheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from centralflows.runner.config import ConfigError
from centralflows.runner.io import FINAL, PARTIAL, H5Logger
from centralflows.runner.out_dir import config_difference, prepare_out_dir  # noqa: F401 (re-exported)
from centralflows.runner.sections import CheckpointConfig, OptConfig, RunConfig
from centralflows.runner.stop_signals import RunStopped, Signals  # noqa: F401 (RunStopped re-exported)

log = logging.getLogger("centralflows")


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
        every = config.central.stationary_every
        if name == "central" and every > 0:
            options["probe"] = StationaryProbe(kernels, eig, every, pseed + 5, config.stationary.solver)
        made[name] = cls(kernels, w, s, eig, pseed, **options)
    return made


def group_logs(measured: dict) -> dict:
    """Cross-process quantities of one step's measurements ({process: Measurement}): pairwise distances,
    GD's displacement from the central flow (`deltas`) and the midpoint run's oscillation about its own
    midpoint (`midpoint_deltas`), on Σ's eigenvectors."""
    out = {}
    for a, b in itertools.combinations(sorted(measured), 2):
        out[f"distances/{a}-{b}"] = jnp.linalg.norm(measured[a].point - measured[b].point)
    central = measured.get("central")
    if central is not None and central.carry is not None:  # a stopped flow has no Σ
        U, P = central.carry.sigma_basis, central.carry.P
        if "discrete" in measured:
            out["deltas"] = deltas(U, P, measured["discrete"].point, central.point)
        if "midpoint" in measured:
            # the authors' key (REFERENCE §1.7): the iterate's oscillation about its own midpoint,
            # U_Σᵀ P (w_t − w*_t) (the midpoint run reports w*_t and carries w_t)
            mid = measured["midpoint"]
            out["midpoint_deltas"] = deltas(U, P, mid.carry.w, mid.point)
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
    return {"peak_host_rss_bytes": peak_rss_bytes()}


def _checkpoint_due(step: int, start: int, options: CheckpointConfig) -> bool:
    freq = options.frequency
    return step != start and ((freq > 0 and step % freq == 0) or step in options.steps)


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
    with Signals() as signals, jax.default_matmul_precision(config.matmul_precision):
        return _run(config, progress, signals, build_problem)


def _read_checkpoint(config: RunConfig, key: str) -> tuple[dict, dict]:
    """Loads the checkpoint named by `key` (checkpoint_file or load.path); ConfigError if unreadable."""
    path = config.checkpoint_file if key == "checkpoint_file" else config.load.path
    try:
        return load_checkpoint(path)
    except CheckpointError as err:
        flag = "--" + key.replace("_", "-")
        raise ConfigError(f"{flag}: {err}", key=key) from None


def _root_attrs(config: RunConfig, problem) -> dict:
    """The root attributes of a run's file known at its start."""
    return {
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


def _loaded_point(config: RunConfig, problem, dtype) -> tuple:
    """(w, s, step, the `loaded_from` attribute) of load.from_process in the checkpoint load.path, written
    by this package or by the authors' code."""
    load = config.load
    if authors_checkpoint.is_authors_checkpoint(load.path):
        try:
            w, s, step = authors_checkpoint.load(
                load.path, load.from_process, config.arch.component(), problem.spec, config.opt.name
            )
        except authors_checkpoint.AuthorsCheckpointError as err:
            raise ConfigError(str(err), key="load.path") from None
        log.info("starting from the authors' checkpoint %s (%s, step %d)", load.path, load.from_process, step)
        loaded = {"path": load.path, "step": step, "format": "authors"}
    else:
        tree, meta = _read_checkpoint(config, "load")
        src = tree["processes"].get(load.from_process)
        if src is None:
            held = ", ".join(tree["processes"])
            message = f"--load.from-process {load.from_process}: {load.path} holds only {held}"
            raise ConfigError(message, key="load.from_process")
        w, s, step = src["w"], src["s"], int(meta["step"])
        loaded = {"path": load.path, "step": step}
        if "edge" in meta:  # an edge checkpoint (centralflows.runner.restart): its source and criterion
            loaded["edge"] = meta["edge"]
    return jnp.asarray(w, dtype), jax.tree.map(lambda a: jnp.asarray(a, dtype), s), step, loaded


@dataclasses.dataclass
class _Lockstep:
    """A run in progress: its processes, its file, the step it started at and the signal guard."""

    config: RunConfig
    processes: dict
    logger: H5Logger
    start: int
    signals: Signals

    def state(self) -> dict:
        return {"processes": {name: p.state_dict() for name, p in self.processes.items()}}

    def checkpoint(self, step: int, tree: dict) -> Path:
        path = Path(self.config.out) / "checkpoints" / f"checkpoint_{step}.npz"
        with self.signals.deferred():
            save_checkpoint(path, tree, {"step": step, "config": self.config.to_dict()})
        return path


def resolve_hvp_batching(config: RunConfig) -> RunConfig:
    """The config with `eig.hvp_batching` "auto" made concrete, so the run's file records what ran: on
    XLA:CPU the architecture's CPU_HVP_BATCHING (set where it was measured faster: bench/README.md,
    "Vectors one by one"), "vmap" on other devices (not measured there) and with ghost batches (a loop
    over the examples, which the unrolled products each repeat: measured no faster). Equal results to
    round-off."""
    if config.eig.hvp_batching != "auto":
        return config
    from centralflows.problem.models import get_architecture

    batching = "vmap"
    if jax.default_backend() == "cpu" and config.data.ghost_batch_size < 0:
        batching = getattr(get_architecture(config.arch.name), "CPU_HVP_BATCHING", "vmap")
    return dataclasses.replace(config, eig=dataclasses.replace(config.eig, hvp_batching=batching))


def _starting_point(config: RunConfig, signals: Signals, build_problem) -> _Lockstep:
    """Builds the problem and the processes at the run's first step (a resumed checkpoint, a loaded
    point, or the initial weights after the warm start) and opens the run's file."""
    config = resolve_hvp_batching(config)
    if config.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if config.dtype == "float64" else jnp.float32
    out_dir, resume = Path(config.out), config.checkpoint_file
    if resume:
        tree, meta = _read_checkpoint(config, "checkpoint_file")
        if differ := config_difference(meta.get("config", {}), config):
            raise ConfigError(
                f"--checkpoint-file {resume} was written by another run "
                f"(its {', '.join(differ[:4])} differ); to start from one of its points, "
                "use --load.path with --load.from-process",
                key="checkpoint_file",
            )
    problem = build_problem(config.data.component(), config.arch.component(), config.seed, config.init, dtype)
    opt = build_optimizer(config.opt)
    kernels = Compiled(problem, opt, config.eig.chunk_size, config.eig.hvp_batching == "unroll")
    w, s = problem.w0, opt.init_state(problem.w0)
    attrs = _root_attrs(config, problem)
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
        return _Lockstep(config, processes, logger, start, signals)
    start = 0
    if config.load.path:  # start every process from one process's point in a checkpoint (GD at the edge)
        w, s, start, attrs["loaded_from"] = _loaded_point(config, problem, dtype)
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
    with signals.deferred():
        logger = H5Logger(out_dir, {**attrs, "start_step": start})
    return _Lockstep(config, processes, logger, start, signals)


def _lockstep_step(run: _Lockstep, step: int) -> tuple[dict, list]:
    """Measures every process, then (unless a train loss is not finite) steps each from its own
    measurement, and logs the step. Returns (the values logged, the processes that diverged)."""
    measured, values, times = {}, {}, {}
    for name, p in run.processes.items():
        t0 = time.perf_counter()
        measured[name] = p.measure()
        values.update({f"{name}/{key}": value for key, value in measured[name].logs.items()})
        times[name] = time.perf_counter() - t0
    values.update(group_logs(measured))
    values = {key: np.asarray(v) for key, v in values.items()}
    for name in run.processes:
        values[f"{name}/times/measure"] = times[name]
    bad = [n for n in run.processes if not np.all(np.isfinite(values.get(f"{n}/train_loss", 0.0)))]
    for name, p in run.processes.items() if not bad else ():
        t0 = time.perf_counter()
        step_values = p.step(measured[name])
        values[f"{name}/times/step"] = time.perf_counter() - t0
        values.update({f"{name}/{key}": value for key, value in step_values.items()})
        if p.stopped:
            values[f"{name}/stopped"] = 1.0
    with run.signals.deferred():
        run.logger.log(step, values)
    return values, bad


def _run(config: RunConfig, progress: bool, signals: Signals, build_problem) -> Path:
    run = _starting_point(config, signals, build_problem)
    status, reason = "completed", ""
    done, snapshot = run.start, run.state()  # the last completed step and the processes' state after it
    bar = tqdm(range(run.start, config.steps), initial=run.start, total=config.steps, disable=not progress,
               desc=Path(config.out).name, dynamic_ncols=True)  # fmt: skip
    try:
        for step in bar:
            done, snapshot = step, run.state()
            if _checkpoint_due(step, run.start, config.checkpoint):
                run.checkpoint(step, snapshot)
            values, bad = _lockstep_step(run, step)
            if bad:
                status, reason = "diverged", f"non-finite train loss of {', '.join(bad)} at step {step}"
                log.warning("run diverged: %s", reason)
                break
            _show_progress(bar, values, run.processes)
        else:
            done, snapshot = config.steps, None
            if config.steps > run.start and _checkpoint_due(config.steps, run.start, config.checkpoint):
                run.checkpoint(config.steps, run.state())
    except RunStopped as err:
        signals.depth += 1  # a second signal must not cut the checkpoint short
        path = run.checkpoint(done, snapshot if snapshot is not None else run.state())
        message = f"signal {err.signum} during step {done}; resume from checkpoint {path}"
        run.logger.close("stopped", message, finalize=False)
        raise RunStopped(err.signum, message) from None
    except BaseException as err:
        run.logger.close("failed", repr(err), finalize=False)
        raise
    finally:
        bar.close()
    signals.depth += 1  # the run is over: a late signal no longer stops it
    return _finish(run, status, reason)


def _finish(run: _Lockstep, status: str, reason: str) -> Path:
    """Records the end-of-run attributes: the steps at which eig.max_k bound, the processes' stops and
    their own attributes (`run_attrs`), the peak memory; closes the file with `status`."""
    processes, logger = run.processes, run.logger
    capped = {n: p.eigs.capped_steps for n, p in processes.items() if p.eigs.capped_steps}
    if capped:  # measurements at which eig.max_k bound (see eig_logs/k_capped): suspect eigenvalues
        logger.set_attrs(eig_k_capped_steps=capped)
    stops = {n: p.stopped for n, p in processes.items() if p.stopped}
    if stops and not reason:
        reason = "; ".join(f"{n} stopped: {why}" for n, why in stops.items())
    attrs = {f"{n}_status_reason": f"stopped: {why}" for n, why in stops.items()}
    attrs.update(peak_memory())  # of this attempt when the run was resumed
    for p in processes.values():
        attrs.update(p.run_attrs())
    unconverged = {key: v for key, v in attrs.items() if key.endswith("_sdcp_unconverged") and v}
    if unconverged:
        log.warning("unconverged SDCP solves in this run: %s", unconverged)
    logger.set_attrs(**attrs)
    return logger.close(status, reason)


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
        if p.sdcp_unconverged:
            post[f"{name[:4]}.UNCONVERGED_SDCP"] = p.sdcp_unconverged
        if p.stopped:
            post[f"{name[:4]}"] = "STOPPED"
    bar.set_postfix(post, refresh=False)
