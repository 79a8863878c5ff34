"""The pre-flight cost: what each scale's runs cost on the device at hand, from the resources tables."""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass

from centralflows.plan.device import visible_gpus
from centralflows.plan.grid import plan
from centralflows.plan.resources import load_table, run_seconds

DAY_H = 24.0  # a scale "fits" this machine when its runs take at most a day of wall time here


@dataclass(frozen=True)
class ScaleCost:
    """One scale's runs on one device: device-hours (CPU core-hours or GPU-hours) and how many runs' costs
    were measured (the others are the resources.runtime guesses)."""

    scale: str
    runs: int
    hours: float
    measured: int


def machine() -> tuple[str, int]:
    """The device a local run job computes on and how many there are: ("gpu", GPUs) when GPUs are visible
    and JAX has a CUDA plugin installed, else ("cpu", the cores this process may use). Starts no JAX."""
    gpus = visible_gpus()
    cuda = any(
        (d.metadata["Name"] or "").lower().replace("_", "-").startswith("jax-cuda")
        for d in importlib.metadata.distributions()
    )
    if gpus and cuda:
        return "gpu", len(gpus)
    return "cpu", len(os.sched_getaffinity(0))


def scale_cost(config: dict, scale: str, device: str, runs: list[dict] | None = None) -> ScaleCost:
    """The runs of a scale (planned unless given) and their summed hours on `device`
    (resources.tables[device], run_seconds)."""
    resources = config["resources"]
    table = load_table(resources["tables"][device], device)
    runs = list(plan(config, scale).runs.values()) if runs is None else runs
    costs = [run_seconds(run, resources, table) for run in runs]
    return ScaleCost(scale, len(runs), sum(s for s, _ in costs) / 3600, sum(m for _, m in costs))


def duration(hours: float) -> str:
    """A rough wall time: minutes, hours, days or years."""
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 2 * DAY_H:
        return f"{hours:.1f} h"
    if hours < 730 * DAY_H:
        return f"{hours / DAY_H:,.0f} days"
    return f"{hours / DAY_H / 365:.1f} years"


def _amount(hours: float) -> str:
    return f"{hours:,.0f}" if hours >= 10 else f"{hours:.2g}"


def _source(cost: ScaleCost) -> str:
    if cost.measured == cost.runs:
        return "measured"
    if cost.measured == 0:
        return "guessed: no run measured"
    return f"{cost.measured} of {cost.runs} runs measured, the rest guessed"


def preflight(
    config: dict, scale: str, runs: list[dict] | None = None, device: str | None = None, units: int = 1
) -> str:
    """The lines printed before the first job: the selected scale's runs, device-hours and wall time on
    this machine; when it takes more than a day here, every other scale's too, which fit in a day, and
    (on a machine without a GPU) the selected scale on GPUs, where its run jobs are meant to go. Hours
    are the tables' (a cpu table sizes central at k = 3) or the runtime guesses, without job margins.

    Args:
        runs: the selected scale's run configs (planned unless given).
        device, units: "cpu" or "gpu" and how many (default: `machine()`).
    """
    if device is None:
        device, units = machine()
    kind, unit = ("CPU core-hours", "cores") if device == "cpu" else ("GPU-hours", "GPUs")
    costs = [scale_cost(config, scale, device, runs)]
    if costs[0].hours / units > DAY_H:  # say which scales would fit
        costs += [scale_cost(config, s, device) for s in config["scales"] if s != scale]
    where = "this CPU-only machine" if device == "cpu" else "this machine"
    lines = [f"Pre-flight: what the scale costs on {where} ({units} {unit}), from the resources tables:"]
    for cost in costs:
        mark = "  <- selected" if cost.scale == scale and len(costs) > 1 else ""
        lines.append(
            f"  scale={cost.scale}: {cost.runs} runs, ~{_amount(cost.hours)} {kind} "
            f"(~{duration(cost.hours / units)} on {units} {unit}; {_source(cost)}){mark}"
        )
    if len(costs) > 1:
        fits = [c.scale for c in costs if c.hours / units <= DAY_H]
        lines.append(f"  fits in a day here: {', '.join(fits) if fits else 'none'}")
    if device == "cpu" and len(costs) > 1:
        gpu = scale_cost(config, scale, "gpu")
        lines.append(
            f"  on GPUs (profiles/slurm): scale={scale} ~{_amount(gpu.hours)} GPU-hours ({_source(gpu)}; "
            "one run per GPU)"
        )
    return "\n".join(lines)
