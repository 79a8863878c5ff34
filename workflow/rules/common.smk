# The plan of the selected scale (cells -> run ids -> run configs) and the get_* input functions.
import os
import re
import sys

from centralflows.plan.cost import preflight
from centralflows.plan.device import gpu_percent, is_small
from centralflows.plan.grid import plan, scale_chain
from centralflows.plan.tree import get_path
from centralflows.plan.resources import job_table, mem_mb, runtime_minutes

PLAN = plan(config)
SCALE = PLAN.scale
RESULTS = f"results/{SCALE}"
FIGURES = f"figures/{SCALE}"
CIFAR_ARCHIVE = f"{config['data_root']}/cifar-10-python.tar.gz"

if workflow.is_main_process:  # once: not again in each SLURM job's own parse
    print(preflight(config, SCALE, list(PLAN.runs.values())), file=sys.stderr)


def _validate_runs_with_engine():
    """Every run config through the engine's own validation, so a bad arch option stops the parse."""
    try:
        from centralflows.runner.config import resolve_config
    except ModuleNotFoundError as error:
        if error.name != "centralflows.runner.config":
            raise
        return  # the engine's config module is not there yet: the JSON Schema alone applies
    for run_id, run in PLAN.runs.items():
        try:
            resolve_config(run)
        except Exception as error:
            raise ValueError(
                f"cells {PLAN.cells_of(run_id)} (run {run_id}): {error}"
            ) from error


_validate_runs_with_engine()


wildcard_constraints:
    run_id="|".join(map(re.escape, PLAN.runs)) or "NONE",
    figure="|".join(PLAN.figures) or "NONE",


def get_run_config(wildcards):
    """The run-config overrides of one run (the engine's defaults are applied by run_cell.py)."""
    return PLAN.runs[wildcards.run_id]


def get_run_cells(wildcards):
    """The cell names computed by one run."""
    return PLAN.cells_of(wildcards.run_id)


def get_run_data(wildcards):
    """The CIFAR-10 archive when the run trains on the real CIFAR-10, else nothing."""
    run = PLAN.runs[wildcards.run_id]
    needs = [CIFAR_ARCHIVE] if get_path(run, "data.name") == "cifar10" else []
    load = get_path(run, "load.path") or ""
    if load.startswith(
        f"{RESULTS}/runs/"
    ):  # a `start_from` cell waits for its source run
        run_dir = os.path.dirname(
            os.path.dirname(load)
        )  # <run>/checkpoints/checkpoint_N.npz
        needs.append(os.path.join(run_dir, "data.hdf5"))
    elif load.startswith(
        f"{RESULTS}/restarts/"
    ):  # `start_from.step: edge`: the source's edge state
        needs.append(load)
    return needs


def get_edge_deadline(wildcards):
    """The smallest `steps` of the runs restarted from this run's edge: the edge must come before."""
    edge = f"{RESULTS}/restarts/{wildcards.run_id}/edge.npz"
    return min(
        run["steps"] for run in PLAN.runs.values() if get_path(run, "load.path") == edge
    )


RESOURCE_TABLE = job_table(config["resources"])


def get_runtime(wildcards, attempt):
    """Minutes from the measured resources table (centralflows.plan.resources), else per_kstep."""
    run = PLAN.runs[wildcards.run_id]
    return runtime_minutes(run, config["resources"], RESOURCE_TABLE, attempt)


def get_mem_mb(wildcards, attempt):
    """MB from the measured resources table (centralflows.plan.resources), else base + per_kexample."""
    return mem_mb(
        PLAN.runs[wildcards.run_id], config["resources"], RESOURCE_TABLE, attempt
    )


def get_gpu_percent(wildcards):
    """The share of a GPU a run takes (a small run 100 / per_gpu): default profile `gpu_percent=100`."""
    return gpu_percent(PLAN.runs[wildcards.run_id], config["resources"])


def packed(wildcards):
    """Whether a run is a small run packed with others into one SLURM job: only where
    profiles/slurm sets `group-components: small_runs=N` (opt-in; read after the parse).
    """
    components = workflow.group_settings.group_components.get("small_runs", 1)
    return components > 1 and is_small(PLAN.runs[wildcards.run_id], config["resources"])


def get_run_group(wildcards):
    """`small_runs` for a packed small run (a SLURM group job of several, one GPU), else no group."""
    return "small_runs" if packed(wildcards) else None


def get_gpu(wildcards):
    """GPUs a run's SLURM job asks for (`--gpus`): none for a packed run, whose group asks `gres`."""
    return 0 if packed(wildcards) else config["resources"]["gpu"]


def get_gres(wildcards):
    """`gpu:1` for a packed small run: one GPU for its group job, however many runs share it."""
    return "gpu:1" if packed(wildcards) else ""


def get_all_run_tables():
    """The run table (Parquet, its info in the metadata) of every run of the scale."""
    return {
        "tables": expand(f"{RESULTS}/tables/runs/{{run_id}}.parquet", run_id=PLAN.runs)
    }


def get_figure_roles(figure):
    """A figure's roles: role -> its cell or its list of cells (grids expanded), in registry order."""
    from centralflows.plan.grid import figure_roles

    return figure_roles(config, figure, PLAN.scale)


def get_figure_cells(figure):
    """The cell names a figure reads, grids expanded, in registry order."""
    from centralflows.analysis.contract import members

    return [c for value in get_figure_roles(figure).values() for c in members(value)]


def get_figure_script(figure):
    """The script that draws a figure: `workflow/scripts/figures/<script or id>.py`."""
    return config["figures"][figure].get("script", figure)


def get_figure_reads(figure):
    """The READS declaration of a figure's script, its roles checked against the registry's."""
    from centralflows.analysis.contract import check_roles, script_reads

    reads = script_reads(f"workflow/scripts/figures/{get_figure_script(figure)}.py")
    check_roles(figure, reads, config["figures"][figure]["cells"])
    return reads


def get_figure_tables(wildcards):
    """The run tables of the runs a figure reads (only those: a figure never waits on others)."""
    runs = dict.fromkeys(PLAN.cells[c] for c in get_figure_cells(wildcards.figure))
    return {"tables": expand(f"{RESULTS}/tables/runs/{{run_id}}.parquet", run_id=runs)}


def get_claim_cells():
    """Claim id -> the cell names it is checked on."""
    from centralflows.plan.grid import resolve_names

    return {
        c: resolve_names(config, config["claims"][c]["cells"], PLAN.scale)
        for c in PLAN.claims
    }


def get_figures():
    """PDF and PNG of every figure of the scale."""
    return expand(
        f"{FIGURES}/{{figure}}.{{ext}}", figure=PLAN.figures, ext=["pdf", "png"]
    )


def check_cifar10_reachable():
    """Offline, stop before any job starts: a run started now could not finish the job without the data."""
    import sys
    import urllib.request

    from centralflows.problem.data import cifar10

    if not any(j.rule.name == "download_cifar10" for j in workflow.dag.needrun_jobs()):
        return
    try:
        request = urllib.request.Request(cifar10.URL, method="HEAD")
        urllib.request.urlopen(request, timeout=30).close()
    except OSError as error:  # URLError, timeouts, refused connections
        sys.exit(
            f"error: the CIFAR-10 archive {CIFAR_ARCHIVE} is missing and {cifar10.URL} cannot be "
            f"reached ({error}).\n{cifar10.fetch_hint(config['data_root'])}\nNo job was started."
        )
