# Reproduce every figure of "Understanding Optimization in Deep Learning with Central Flows".
#   snakemake --cores 4                       # paper scale, local (profiles/default applies itself)
#   snakemake --cores 4 --profile slurm       # paper scale on a SLURM cluster
#   snakemake --cores 2 --resources gpu=2 --config scale=ci   # the tiny CI scale, no download
#   snakemake check --cores 2 --config scale=ci   # ci summary vs workflow/reference/ci_summary.csv
#   snakemake all check --cores 2 --config scale=paper 'only=[W1.11,lstm]'   # a part: W1.11's LSTM cells
# Gates: `snakefmt --check .` is clean. `snakemake --lint` reports one accepted finding per rule,
# "Specify a conda environment or container": every rule imports the one package, so the whole
# workflow uses the single environment of environment.yml (per-rule envs would install JAX per rule).
from snakemake.utils import min_version, validate

from centralflows.plan.workflow import add_registries
from centralflows.runner.allocator import use_allocator_env
from centralflows.runner.stop_signals import forward_stop_signals

min_version("9.0")
# every job's process starts with the engine's allocator settings (centralflows.runner.allocator)
use_allocator_env()


configfile: "config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")
# the cells, grids, figures (with captions) and claims: registries under workflow/, each validated
add_registries(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/tables.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/check.smk"


onstart:
    check_cifar10_reachable()  # offline without the archive: stop before any job starts
    forward_stop_signals()  # SIGINT / SIGTERM reach the running jobs at once


rule all:
    default_target: True
    input:
        get_figures(),
        f"{RESULTS}/tables/summary.csv",
        f"{RESULTS}/tables/claims.csv",
