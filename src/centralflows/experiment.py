"""Run one experiment cell: build, warm start, advance the processes in lockstep, log, checkpoint."""

from __future__ import annotations

import itertools
import logging
import signal
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from centralflows.ablated import AblatedFlow
from centralflows.checkpoint import load_checkpoint, save_checkpoint
from centralflows.config import ConfigError
from centralflows.eigs import EigConfig
from centralflows.io import H5Logger
from centralflows.optimizers import make_optimizer
from centralflows.processes import PROCESSES, CentralFlow, Discrete, Kernels, Midpoint, StableFlow
from centralflows.stationary import StationaryConfig, StationaryFlow, StationaryProbe

log = logging.getLogger("centralflows")


class RunStopped(RuntimeError):
    """The run was asked to stop (SIGTERM / SIGINT); a checkpoint of the current step was written."""


def eig_config(config: dict, process: str) -> EigConfig:
    """The global `eig` options merged with the process's own overrides (e.g. discrete.eig.frequency)."""
    return EigConfig.from_dict({**config["eig"], **config.get(process, {}).get("eig", {})})


def make_processes(config: dict, kernels: Kernels, w, s, initialize: bool = True) -> dict:
    """The requested processes, all starting from (w, s), in the canonical order."""
    seed = config.get("seed", 0)
    made = {}
    for offset, name in enumerate(p for p in PROCESSES if p in config["runs"]):
        eig, pseed = eig_config(config, name), 1000 * (seed + 1) + 10 * offset
        if name == "discrete":
            made[name] = Discrete(kernels, w, s, eig, pseed)
        elif name == "midpoint":
            made[name] = Midpoint(kernels, w, s, eig, pseed)
        elif name == "stable":
            opts = config["stable"]
            made[name] = StableFlow(
                kernels, w, s, eig, pseed, opts["min_nsubsteps"], opts["max_seff"], initialize
            )
        elif name in ("central", "ablated"):
            opts, cls = config[name], CentralFlow if name == "central" else AblatedFlow
            made[name] = cls(
                kernels, w, s, eig, pseed, opts["nsubsteps"], opts["sdcp_threshold"],
                opts["frequency_in_substeps"], initialize, opts.get("max_seff", CentralFlow.max_seff),
            )  # fmt: skip
            if name == "central" and opts["stationary_every"] > 0:
                made[name].probe = StationaryProbe(
                    kernels, eig, opts["stationary_every"], pseed + 5, stationary_solver(config)
                )
        else:
            nsubsteps = config["stationary"]["nsubsteps"]
            solver = stationary_solver(config)
            made[name] = StationaryFlow(kernels, w, s, eig, pseed, nsubsteps, solver, initialize)
    return made


def stationary_solver(config: dict) -> StationaryConfig:
    """The ν̄ / P̂ fixed-point solver options (the `stationary` block), shared by the flow and the probe."""
    opts = config["stationary"]
    return StationaryConfig(
        step=opts["step"], max_iter=opts["max_iter"], tol=opts["tol"], tol_eig=opts["tol_eig"],
        sdcp_threshold=opts["sdcp_threshold"],
    )  # fmt: skip


def group_logs(processes: dict) -> dict:
    """Cross-process quantities: pairwise distances, and the displacement of GD from the central flow."""
    out = {}
    for a, b in itertools.combinations(sorted(processes), 2):
        out[f"distances/{a}-{b}"] = jnp.linalg.norm(processes[a].point - processes[b].point)
    central = processes.get("central")
    if central is not None and not central.stopped:  # a stopped flow has no Σ
        if "discrete" in processes:
            out["deltas"] = central.deltas(processes["discrete"].point)
        if "midpoint" in processes:
            out["midpoint_deltas"] = central.deltas(processes["midpoint"].point)
    return out


def _device() -> str:
    dev = jax.devices()[0]
    return f"{dev.platform}:{getattr(dev, 'device_kind', '')}"


def _checkpoint_due(step: int, start: int, options: dict) -> bool:
    freq = options.get("frequency", -1)
    return step != start and ((freq > 0 and step % freq == 0) or step in options.get("steps", []))


def run(config: dict, progress: bool = True) -> Path:
    """Runs one cell described by a resolved config (see `centralflows.config`).

    Writes `config["out"]/data.hdf5` (the authors' layout; the file appears when the run ends)
    and checkpoints under `config["out"]/checkpoints/`. With `config["checkpoint_file"]` the run
    resumes from that checkpoint and continues the identical trajectory.

    Returns:
        The path of the finished HDF5 file.
    """
    from centralflows.problem import build_problem  # heavy imports (flax models) only when running

    if any(p in config["runs"] and eig_config(config, p).frequency < 1 for p in ("central", "ablated")):
        raise ConfigError(
            "the central flow needs eigenpairs: set --eig.frequency 1 (or --central.eig.frequency 1)"
        )

    if config.get("dtype", "float32") == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = jnp.float64 if config.get("dtype") == "float64" else jnp.float32
    out_dir = Path(config["out"])
    problem = build_problem(config, dtype)
    o = config["opt"]
    opt = make_optimizer(
        o["name"], o["lr"], o.get("beta2", 0.99), o.get("eps", 0.0), o.get("bias_correction", False)
    )
    kernels = Kernels(problem, opt, config["eig"].get("chunk_size"))
    w, s = problem.w0, opt.init_state(problem.w0)

    resume = config.get("checkpoint_file")
    if resume:
        tree, meta = load_checkpoint(resume)
        start = int(meta["step"])
        processes = make_processes(config, kernels, w, s, initialize=False)
        for name, p in processes.items():
            p.load_state_dict(tree["processes"][name])
        logger = H5Logger.resume(out_dir, start)
        log.info("resumed from %s at step %d", resume, start)
    else:
        start = 0
        load = config.get("load") or {}
        if load.get("path"):
            # start every process from one process's point in a checkpoint (e.g. GD at the edge)
            tree, meta = load_checkpoint(load["path"])
            src = tree["processes"][load["from_process"]]
            w = jnp.asarray(src["w"], dtype)
            s = jax.tree.map(lambda a: jnp.asarray(a, dtype), src["s"])
            start = int(meta["step"])
        warm = max(config.get("warm_start", -1), 0)
        for _ in range(warm):
            w, s = opt.step(w, s, kernels.grad(w))
        start += warm
        processes = make_processes(config, kernels, w, s)
        attrs = {
            "config": config,
            "n_params": int(problem.n_params),
            "dataset": problem.dataset,
            "device": _device(),
            "start_step": start,
        }
        logger = H5Logger(out_dir, attrs)

    stop_requested = []
    handlers = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            handlers[sig] = signal.signal(sig, lambda signum, frame: stop_requested.append(signum))
        except ValueError:  # not in the main thread: no graceful stop
            pass

    def checkpoint(step):
        tree = {"processes": {name: p.state_dict() for name, p in processes.items()}}
        path = out_dir / "checkpoints" / f"checkpoint_{step}.npz"
        save_checkpoint(path, tree, {"step": step, "config": config})
        return path

    status, reason = "completed", ""
    bar = tqdm(range(start, config["steps"]), initial=start, total=config["steps"], disable=not progress,
               desc=out_dir.name, dynamic_ncols=True)  # fmt: skip
    try:
        for step in bar:
            if stop_requested:
                path = checkpoint(step)
                raise RunStopped(f"signal {stop_requested[0]} at step {step}; checkpoint {path}")
            if _checkpoint_due(step, start, config.get("checkpoint", {})):
                checkpoint(step)
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
            logger.log(step, values)
            _show_progress(bar, values, processes)
        else:
            if config["steps"] > start and _checkpoint_due(
                config["steps"], start, config.get("checkpoint", {})
            ):
                checkpoint(config["steps"])
    except RunStopped as err:
        logger.close("stopped", str(err), finalize=False)
        raise
    finally:
        bar.close()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    stops = {n: p.stopped for n, p in processes.items() if getattr(p, "stopped", "")}
    if stops and not reason:
        reason = "; ".join(f"{n} stopped: {why}" for n, why in stops.items())
    _record_run_attrs(logger, processes, stops)
    return logger.close(status, reason)


def _record_run_attrs(logger, processes: dict, stops: dict):
    """Root attributes that make a run's numbers suspect: per-process stops and unconverged SDCP solves."""
    attrs = {f"{n}_status_reason": f"stopped: {why}" for n, why in stops.items()}
    for p in processes.values():
        attrs.update(getattr(p, "run_attrs", dict)())
    unconverged = {key: v for key, v in attrs.items() if key.endswith("_sdcp_unconverged") and v}
    if unconverged:
        log.warning("unconverged SDCP solves in this run: %s", unconverged)
    if attrs:
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
