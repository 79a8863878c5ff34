# One job per run: the GPU-heavy part. Retries resume from the run's newest checkpoint.


rule run:
    input:
        get_run_data,
    output:
        hdf5=f"{RESULTS}/runs/{{run_id}}/data.hdf5",
        job=f"{RESULTS}/runs/{{run_id}}/job.json",
    log:
        f"{RESULTS}/logs/run/{{run_id}}.log",
    retries: config["resources"]["retries"]
    group:
        get_run_group
    resources:
        gpu=get_gpu,
        gres=get_gres,
        gpu_percent=get_gpu_percent,
        runtime=get_runtime,
        mem_mb=get_mem_mb,
    params:
        run=get_run_config,
        cells=get_run_cells,
        out_dir=lambda wildcards: f"{RESULTS}/runs/{wildcards.run_id}",
        compilation_cache=config["compilation_cache"],
    script:
        "../scripts/run_cell.py"


# `start_from.step: edge` (W1.18): the source run's discrete state where its sharpness first reaches
# 2/eta, advanced from its newest checkpoint before that step; the restarted run loads it.
rule edge_checkpoint:
    input:
        hdf5=rules.run.output.hdf5,
    output:
        f"{RESULTS}/restarts/{{run_id}}/edge.npz",
    log:
        f"{RESULTS}/logs/edge_checkpoint/{{run_id}}.log",
    resources:
        gpu=config["resources"]["gpu"],
        gpu_percent=get_gpu_percent,
        runtime=get_runtime,
        mem_mb=get_mem_mb,
    params:
        run=get_run_config,
        before=get_edge_deadline,
    script:
        "../scripts/edge_checkpoint.py"
