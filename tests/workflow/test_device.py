"""What a run job asks of its GPU: chunking that fits its memory (checked against XLA's own memory
analysis), a share of a GPU with its memory fraction and slot, and a node-local compilation cache."""

import pytest

from centralflows.plan import device as D
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config

from .conftest import ROOT

CONFIG = load_config(ROOT / "config.yaml")
RESOURCES = CONFIG["resources"]
GB = 1e9
# a made-up architecture: 1 GB fixed, 10 MB per example for the first vector and 5 MB for each further
ENTRY = {p: {"fixed": GB, "per_example": 10e6, "per_example_vector": 5e6} for p in ("hvp", "third")}


def test_chunking_keeps_all_at_once_where_it_fits_then_ghost_batches_then_fewer_vectors():
    # 10 vectors over 1000 examples: 1 + 1000 x (10 + 9 x 5) MB = 56 GB
    assert D.choose_chunking(ENTRY, 1000, 10, 6, 60 * GB) == {}
    # ghost batches first (the vmap keeps sharing the network's passes): 250 examples -> 14.75 GB
    assert D.choose_chunking(ENTRY, 1000, 10, 6, 20 * GB) == {"data": {"ghost_batch_size": 250}}
    # at MIN_GHOST examples 10 vectors need 6.5 GB: fewer vectors at once (6: 4.5 GB)
    assert D.choose_chunking(ENTRY, 1000, 10, 6, 4.6 * GB) == {
        "eig": {"chunk_size": 6},
        "data": {"ghost_batch_size": D.MIN_GHOST},
    }
    # below one vector over MIN_GHOST examples (2 GB): smaller ghost batches, one vector at a time
    assert D.choose_chunking(ENTRY, 1000, 10, 6, 1.5 * GB) == {
        "eig": {"chunk_size": 1},
        "data": {"ghost_batch_size": 50},
    }
    with pytest.raises(ValueError, match="one vector over one example"):
        D.choose_chunking(ENTRY, 1000, 10, 6, 0.5 * GB)


def test_small_runs_take_a_share_of_a_gpu_and_its_memory():
    small, large = {"arch": {"name": "lstm"}}, {"arch": {"name": "vit"}}
    per_gpu = RESOURCES["small_runs"]["per_gpu"]
    assert D.gpu_percent(large, RESOURCES) == 100 and D.job_env(large, RESOURCES) == {}
    assert D.gpu_percent(small, RESOURCES) == 100 // per_gpu
    # together the small runs of one GPU take what one JAX process takes by default (75 %)
    fraction = float(D.job_env(small, RESOURCES)["XLA_PYTHON_CLIENT_MEM_FRACTION"])
    assert fraction * per_gpu == pytest.approx(D.JAX_POOL)


def test_local_jobs_fill_one_gpu_with_small_runs_and_give_large_runs_a_whole_one(tmp_path):
    slots, devices = 4, ["0", "1"]
    small = [D.try_gpu_slot(25, devices, tmp_path, slots) for _ in range(5)]
    assert [device for device, _ in small] == ["0", "0", "0", "0", "1"]  # GPU 0 first, then GPU 1
    assert D.try_gpu_slot(100, devices, tmp_path, slots) is None  # no GPU is whole
    for f in small[4][1]:  # the small run on GPU 1 ends (its process exit closes the files)
        f.close()
    device, held = D.try_gpu_slot(100, devices, tmp_path, slots)
    assert device == "1" and len(held) == slots


def test_a_job_pins_its_gpu_before_jax_starts_except_under_slurm_or_without_a_gpu(tmp_path):
    run = {"arch": {"name": "transformer"}}
    fraction = D.job_env(run, RESOURCES)["XLA_PYTHON_CLIENT_MEM_FRACTION"]
    environ = {"CUDA_VISIBLE_DEVICES": "3,5"}  # a local machine's GPUs (the user's choice of them)
    env, held = D.take_gpu(run, RESOURCES, environ, tmp_path)
    assert env == environ == {"CUDA_VISIBLE_DEVICES": "3", "XLA_PYTHON_CLIENT_MEM_FRACTION": fraction}
    assert len(held) == 1
    slurm = {"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "1"}  # SLURM's GPU is kept
    assert D.take_gpu(run, RESOURCES, slurm, tmp_path)[0] == {"XLA_PYTHON_CLIENT_MEM_FRACTION": fraction}
    assert slurm["CUDA_VISIBLE_DEVICES"] == "1"
    cpu = {"CUDA_VISIBLE_DEVICES": ""}  # no GPU: nothing to pin (the fraction is read by a GPU only)
    assert D.take_gpu({"arch": {"name": "vit"}}, RESOURCES, cpu, tmp_path) == ({}, [])


def test_slurm_jobs_keep_the_compilation_cache_on_their_node():
    assert D.compilation_cache_dir("results/jax-cache", {}) == "results/jax-cache"  # local: as configured
    node = D.compilation_cache_dir("results/jax-cache", {"SLURM_JOB_ID": "7", "USER": "ada"})
    assert node == "/tmp/ada/centralflows-jax-cache"
    assert D.compilation_cache_dir(None, {"SLURM_JOB_ID": "7"}) is None  # off stays off


def test_every_paper_architecture_has_a_measured_memory_entry():
    table = D.load_memory_table(ROOT / RESOURCES["memory_table"])
    archs = {run["arch"]["name"] for run in plan(CONFIG, "paper").runs.values()}
    assert archs <= set(table), f"not in {RESOURCES['memory_table']}: {archs - set(table)}"
    for entry in table.values():
        assert all(entry[p]["per_example"] >= 0 <= entry[p]["per_example_vector"] for p in ("hvp", "third"))
    assert table["vit"]["hvp"]["per_example"] > 1e6  # a ViT HVP holds megabytes per CIFAR image


@pytest.mark.slow  # compiles (never runs) two ViT and two ResNet programs at n = 1000: minutes on 2 cores
@pytest.mark.parametrize("arch", ["vit", "resnet"])
def test_the_chunking_chosen_for_a_40_gb_gpu_fits_by_xla_memory_analysis(arch):
    """XLA's memory analysis of the LOBPCG block (max_k vectors) and of the third derivatives (6 pairs,
    k_c = 3) of a paper job at n = 1000 (CIFAR-shaped stand-in), compiled with the chunking chosen for a
    40 GB GPU, stays within the part of JAX's pool the choice aims at, so under 40 GB."""
    from centralflows.problem.build import build_problem
    from centralflows.runner.config import resolve_config

    run = next(r for r in plan(CONFIG, "paper").runs.values() if r["arch"]["name"] == arch)
    data = {k: v for k, v in run["data"].items() if k != "root"} | {"name": "synthetic-cifar10", "n": 1000}
    keep = {k: v for k, v in run.items() if k not in ("data", "load", "checkpoint", "warm_start")}
    config = resolve_config({**keep, "data": data, "steps": 1}).to_dict()  # device.py works on the dict form
    resources = {**RESOURCES, "gpu_memory_gb": 40}
    chunking = D.device_chunking(config, resources, D.load_memory_table(ROOT / RESOURCES["memory_table"]))
    assert chunking  # all 10 vectors over all 1000 examples would not fit
    config = D.apply_chunking(config, chunking)
    problem = build_problem(config["data"], config["arch"], config["seed"], config["init"])
    budget = D.HEADROOM * D.JAX_POOL * 40 * GB
    chunk, max_k = config["eig"]["chunk_size"], config["eig"]["max_k"]
    used = {p: D.compiled_bytes(problem, p, v, chunk) for p, v in (("hvp", max_k), ("third", 3))}
    print(f"{arch}: {chunking} -> " + ", ".join(f"{p} {b / GB:.2f} GB" for p, b in used.items()))
    assert max(used.values()) <= budget < 40 * GB, (chunking, used)
