# HDF5 -> small tables: the compute/plot boundary (docs in centralflows.analysis.read).


rule aggregate:
    input:
        hdf5=rules.run.output.hdf5,
        job=rules.run.output.job,
    output:
        table=f"{RESULTS}/tables/runs/{{run_id}}.parquet",
    log:
        f"{RESULTS}/logs/aggregate/{{run_id}}.log",
    localrule: True
    script:
        "../scripts/aggregate.py"


rule summary:
    input:
        unpack(lambda wildcards: get_all_run_tables()),
    output:
        f"{RESULTS}/tables/summary.csv",
    log:
        f"{RESULTS}/logs/summary.log",
    localrule: True
    params:
        cells=PLAN.cells,
        smooth=config["scales"][SCALE]["smooth"],
    script:
        "../scripts/summary.py"


rule claims:
    input:
        summary=rules.summary.output[0],
    output:
        f"{RESULTS}/tables/claims.csv",
    log:
        f"{RESULTS}/logs/claims.log",
    localrule: True
    params:
        claims=lambda wildcards: {c: config["claims"][c] for c in PLAN.claims},
        cells=lambda wildcards: get_claim_cells(),
        scale=scale_chain(config, SCALE),  # a scale built on another inherits its claim expectations
    script:
        "../scripts/claims.py"


rule figure_table:
    input:
        unpack(get_figure_tables),
    output:
        table=f"{RESULTS}/tables/figures/{{figure}}.parquet",
        cells=f"{RESULTS}/tables/figures/{{figure}}.cells.csv",
    log:
        f"{RESULTS}/logs/figure_table/{{figure}}.log",
    localrule: True
    params:
        cells=lambda wildcards: {
            c: PLAN.cells[c] for c in get_figure_cells(wildcards.figure)
        },
        entry=lambda wildcards: config["figures"][wildcards.figure],
        figure=lambda wildcards: wildcards.figure,
        roles=lambda wildcards: get_figure_roles(wildcards.figure),
        reads=lambda wildcards: get_figure_reads(wildcards.figure),
    script:
        "../scripts/figure_table.py"
