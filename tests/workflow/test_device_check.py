"""bench/device_check.py (bash bench/gpu.sh): its verdict on the machine, its job order, the resources table
it builds, and the whole script on CPU (`--cpu-test`), offline, without the packages the GPU machines lack."""

import importlib.util
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import pytest

from centralflows.plan.resources import load_table, runtime_minutes

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("device_check", ROOT / "bench/device_check.py")
device_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(device_check)

GPU_ENV = {
    "jax": device_check.TESTED_JAX,
    "backend": "gpu",
    "missing": [],
    "packages": {"jsonschema": "4", "referencing": "0.3", "scipy": "1"},
    "imports": {"centralflows.problem.build": "ok"},
    "precisions": {"highest": "ok", "tensorfloat32": "ok"},
    "config": "config validated by its schemas",
}


def test_the_verdict_says_what_differs_and_what_stops_the_check():
    assert device_check.preflight_verdict(GPU_ENV, cpu_test=False) == ([], "")
    notes, fatal = device_check.preflight_verdict({**GPU_ENV, "jax": "0.11.2"}, cpu_test=False)
    assert not fatal and notes == [
        f"JAX 0.11.2, not the {device_check.TESTED_JAX} this project is tested with"
    ]
    # no GPU backend: nothing is measured, and the message says why
    _, fatal = device_check.preflight_verdict({**GPU_ENV, "backend": "cpu"}, cpu_test=False)
    assert "backend is cpu, not gpu" in fatal
    assert device_check.preflight_verdict({**GPU_ENV, "backend": "cpu"}, cpu_test=True)[1] == ""
    _, fatal = device_check.preflight_verdict({**GPU_ENV, "missing": ["tqdm"]}, cpu_test=False)
    assert "missing Python packages tqdm" in fatal and "bench/wheels" in fatal
    notes, fatal = device_check.preflight_verdict({**GPU_ENV, "packages": {}}, cpu_test=False)
    assert not fatal and any("jsonschema not installed" in line for line in notes)
    _, fatal = device_check.preflight_verdict({"missing": [], "error": "boom"}, cpu_test=False)
    assert "preflight failed: boom" in fatal


def args(**kw):
    base = {"parts": ",".join(device_check.PARTS), "archs": None, "cpu_test": False, "resume": False}
    return SimpleNamespace(**{**base, **kw})


def test_jobs_run_the_most_valuable_first_and_resume_skips_what_is_done():
    names = [device_check.job_name(p, a) for p, a, _ in device_check.plan_jobs(args(), {})]
    assert names[:5] == ["preflight", "hvp:mlp", "hvp:lstm", "hvp:vit", "hvp:resnet"]
    assert names.index("memory:vit") < names.index("steps:vit") < names.index("check")
    assert len(names) == len(set(names)) == 1 + 3 * 7 + 1  # every part of every architecture, once
    assert sum(cap for *_, cap in device_check.plan_jobs(args(archs="mlp,lstm"), {})) < 450
    only = [
        device_check.job_name(p, a)
        for p, a, _ in device_check.plan_jobs(args(archs="vit", parts="steps"), {})
    ]
    assert only == ["preflight", "steps:vit"]
    done = {"preflight": "done", "hvp:mlp": "done", "hvp:lstm": "stopped at its time cap"}
    resumed = [device_check.job_name(p, a) for p, a, _ in device_check.plan_jobs(args(resume=True), done)]
    assert resumed[:3] == ["preflight", "hvp:lstm", "hvp:vit"]
    cpu = [device_check.job_name(p, a) for p, a, _ in device_check.plan_jobs(args(cpu_test=True), {})]
    assert cpu == device_check.CPU_TEST


def test_steps_start_past_the_variants_the_memory_part_found_too_large():
    oom = {"xla": {"total_mb": 9e5}, "error": "MemoryError: RESOURCE_EXHAUSTED (XLA's analysis): ..."}
    ok = {"xla": {"total_mb": 10.0}, "ms": 1.0}
    full = lambda program: {"full_batch": {"lobpcg_block": ok, "third_pairs": program}}
    assert device_check.steps_from({}) == 0
    assert device_check.steps_from({"variants": full(ok)}) == 0
    ghost = {"ghost_batch_100": {"lobpcg_block": ok, "third_pairs": ok}}
    assert device_check.STEP_VARIANTS[device_check.steps_from({"variants": {**ghost, **full(oom)}})] == (
        None,
        100,
    )
    ghost = {"ghost_batch_100": {"lobpcg_block": oom, "third_pairs": ok}}
    assert device_check.STEP_VARIANTS[device_check.steps_from({"variants": {**ghost, **full(oom)}})] == (
        1,
        100,
    )


def steps(discrete=(1.0, 10), central=(4.0, 84), stable=(2.0, 45), peak=(3000, 20000)):
    proc = lambda s, h: {"step_s": s, "hvp_equivalents_per_step": h, "compile_s": 30.0,
                         "device_memory": {"peak_mb": peak[1]}}  # fmt: skip
    return {"processes": {"discrete": proc(*discrete), "central_k3": proc(*central), "stable": proc(*stable)},
            "host_peak_mb": peak[0]}  # fmt: skip


def test_the_resources_table_sizes_steps_at_the_edge_and_scales_other_optimizers():
    entry = {"steps": {"vit": steps()}, "hvp": {"vit": {"1": {"ms": 50.0}, "3": {"ms": 120.0}}}}
    cpu = {
        "vit/gd/1000": {
            "step_s": {"discrete": 1, "stable": 1, "central": 2},
            "compile_s": 10,
            "peak_mb": 100,
        },
        "vit/rmsprop/1000": {
            "step_s": {"discrete": 3, "stable": 2, "central": 3},
            "compile_s": 20,
            "peak_mb": 150,
        },
    }
    cells = ["vit/gd/1000", "vit/rmsprop/1000", "vit/scalar_rmsprop/1000", "cnn/gd/1000"]
    table, how = device_check.resources_table(entry, cpu, cells, "gpu")
    assert table["measured_on"] == "gpu" and set(table["cells"]) == set(how) == {
        "vit/gd/1000",
        "vit/rmsprop/1000",
    }
    gd = table["cells"]["vit/gd/1000"]
    # the discrete step did 10 HVP-equivalents, 45 at the edge: 35 more 1-vector HVPs of 50 ms
    assert gd["step_s"]["discrete"] == pytest.approx(1.0 + 35 * 0.05)
    assert gd["step_s"]["central"] == pytest.approx(4.0)  # already 84
    assert gd["step_s"]["stationary"] == pytest.approx(5 * 4.0)  # paper_cost's aliases
    assert gd["step_s"]["midpoint"] == gd["step_s"]["discrete"] and gd["compile_s"] == 30.0
    assert gd["peak_mb"] == 3000 and gd["device_peak_mb"] == 20000
    rms = table["cells"]["vit/rmsprop/1000"]  # the GD figures x (3 + 2 + 3) / (1 + 1 + 2) on CPU
    assert rms["step_s"]["central"] == pytest.approx(2 * 4.0) and rms["compile_s"] == 60.0
    assert rms["peak_mb"] == 4500


@pytest.mark.slow
def test_the_script_runs_on_cpu_offline_and_fills_every_section(tmp_path):
    """`bash bench/gpu.sh --cpu-test` (3-4 min on 2 shared cores): every part done, TF32 equal to
    float32 on CPU, the CPU-vs-device check identical, and a resources table the workflow reads."""
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(ROOT / "bench/gpu.sh"), "--cpu-test", "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    label = "gpu-script-test-cpu"
    entry = json.loads((tmp_path / f"{label}.json").read_text())[label]
    assert entry["status"] == dict.fromkeys(device_check.CPU_TEST, "done"), entry["status"]
    env = entry["environment"]
    assert (
        env["backend"] == "cpu" and env["packages"]["jsonschema"] is None
    )  # left out, as on the GPU machines
    assert env["config"].startswith("config read without schema validation")
    assert entry["fatal"] == "" and entry["device"]["name"] == "cpu"
    for arch in ("mlp", "lstm"):
        hvp = entry["hvp"][arch]
        for k in ("1", "3"):
            assert (
                hvp[k]["ms"] > 0 and hvp[k]["gflop"] > 0 and hvp[k]["tflops"] > 0 and hvp[k]["compile_s"] > 0
            )
        unrolled = hvp["3_unroll"]  # eig.hvp_batching "unroll": the same products, timed beside vmap's
        assert unrolled["ms"] > 0 and unrolled["rel_diff_to_highest"] < 1e-5, unrolled
        precision = entry["precision"][arch]
        assert precision["tensorfloat32"]["rel_diff_to_highest"] < 1e-6  # XLA:CPU computes float32 either way
        eigs = precision["eigs"]
        assert (
            eigs["highest"]["converged"]
            and eigs["tensorfloat32"]["iterations"] >= eigs["highest"]["iterations"]
        )
        assert max(eigs["rel_diff"]) < 1e-5
    memory = entry["memory"]["mlp"]
    assert set(memory["variants"]) == {"ghost_batch_8", "eig_chunk_2", "full_batch"}
    for variant in memory["variants"].values():
        for program in ("lobpcg_block", "third_pairs"):
            assert variant[program]["xla"]["total_mb"] > 0 and variant[program]["ms"] > 0
    assert variant["vectors"] == 10 and variant["pairs"] == 6
    processes = entry["steps"]["mlp"]["processes"]
    for name in ("discrete", "central_k3", "stable"):
        assert processes[name]["step_s"] > 0 and processes[name]["hvp_equivalents_per_step"] > 0
    check = entry["check"]
    assert check["cell"] == "mlp_gd_central" and check["reference_device"] == "cpu:0"
    for run in ("device_highest", "device_tensorfloat32"):
        assert "processes" in check["runs"][run], (run, check["runs"][run])  # not skipped for time, no error
        for name, diff in check["max_rel_diff"][run].items():
            assert diff["steps"] == device_check.CHECK_STEPS, (run, name)
            assert diff["train_loss"] < 1e-6 and diff["effective_hessian_eigs"] < 1e-6, (run, name, diff)
    assert len(check["side_by_side"]["central"]) == device_check.CHECK_STEPS
    # the table: readable by the workflow, labelled so it never sizes GPU jobs
    path = tmp_path / f"resources_{label}.yaml"
    table = load_table(path, label)
    assert set(table) == {"mlp/gd/1000", "mlp/rmsprop/1000"} == set(entry["resources"]["cells"])
    with pytest.raises(ValueError, match="measured on 'gpu-script-test-cpu'"):
        load_table(path, "gpu")
    resources = {"runtime": {"base": 10}, "safety": 2.0}
    assert (
        runtime_minutes(
            {"arch": {"name": "mlp"}, "opt": {"name": "gd"}, "data": {"n": 1000}}, resources, table
        )
        > 10
    )
