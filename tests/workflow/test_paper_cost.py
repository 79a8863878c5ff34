"""bench/paper_cost.py's bookkeeping: the a + b*n extrapolation, merging into the JSON, the HVP table."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from .conftest import ROOT

spec = importlib.util.spec_from_file_location("paper_cost", ROOT / "bench/paper_cost.py")
paper_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paper_cost)
sys.modules.setdefault("paper_cost", paper_cost)  # compare_cost.py imports it, as a script beside it would


def measured(n: int, hvps: float, per_hvp, mb) -> dict:
    """A worker's result at n whose step costs hvps x per_hvp(n) CPU s and whose peak RSS is mb(n)."""
    proc = {"step_cpu_s": hvps * per_hvp(n), "step_s": 3 * hvps * per_hvp(n), "compile_cpu_s": 5.0 + n / 1e3,
            "compile_s": 9.0, "hvp_equivalents_per_step": hvps}  # fmt: skip
    return {"processes": {"discrete": proc}, "peak_mb": mb(n), "n_params": 7, "jax_device": "cpu:0"}


def test_fit_extrapolates_a_linear_cost_exactly():
    per_hvp, mb = (lambda n: 0.01 + 2e-4 * n), (lambda n: 500 + 3 * n)
    by_n = {str(n): measured(n, 9, per_hvp, mb) for n in (32, 128)}
    cell = paper_cost.fit_cell(by_n, 1000)
    p = cell["processes"]["discrete"]
    assert p["step_cpu_s"] == pytest.approx(9 * (0.01 + 0.2))
    assert p["step_s"] == pytest.approx(3 * 9 * (0.01 + 0.2))
    assert p["compile_cpu_s"] == pytest.approx(5.128)  # the largest n's, not a line through noise
    assert cell["peak_mb"] == pytest.approx(3500)
    assert cell["n_measured"] == [32, 128]
    # one n is not a fit
    assert "error" in paper_cost.fit_cell({"32": measured(32, 9, per_hvp, mb)}, 1000)


def growth_at(n: int, per_hvp, mb) -> dict:
    """The HVP worker's result at n: a 3-vector HVP of 3 x per_hvp(n) s (CPU; twice that in wall)."""
    ms = 3000 * per_hvp(n)
    return {"n": n, "hvp": {"3": {"cpu_ms": ms, "wall_ms": 2 * ms}}, "peak_mb": mb(n)}


def test_one_measured_n_is_scaled_by_the_hvp_growth():
    per_hvp, mb = (lambda n: 0.05 + 0.03 * n), (lambda n: 800 + 4 * n)
    growth = {str(n): growth_at(n, per_hvp, mb) for n in (8, 1000)}
    cell = paper_cost.fit_cell({"8": measured(8, 9, per_hvp, mb)}, 1000, growth)
    p = cell["processes"]["discrete"]
    # a step of 9 HVP-equivalents costs what 9 of them cost at n = 1000, CPU and wall
    assert p["step_cpu_s"] == pytest.approx(9 * per_hvp(1000))
    # in wall time the HVP is 2x its CPU, the step 3x: the third that is not HVPs is kept
    assert p["step_s"] == pytest.approx(9 * per_hvp(8) + 2 * 9 * per_hvp(1000))
    assert p["compile_cpu_s"] == pytest.approx(5.008)  # as measured at n = 8
    assert cell["peak_mb"] == pytest.approx(mb(8) + 4 * (1000 - 8))
    assert cell["n_measured"] == [8] and "scaled by the 3-vector HVP" in cell["source"]
    # what a step does besides its HVPs does not grow with n
    overhead = measured(8, 9, per_hvp, mb)
    overhead["processes"]["discrete"]["step_cpu_s"] += 4.0
    cell = paper_cost.fit_cell({"8": overhead}, 1000, growth)
    assert cell["processes"]["discrete"]["step_cpu_s"] == pytest.approx(4.0 + 9 * per_hvp(1000))
    # without the HVP at the cell's n there is nothing to scale by
    missing = paper_cost.fit_cell({"8": measured(8, 9, per_hvp, mb)}, 1000, {"8": growth["8"]})
    assert missing == {"error": "one measured n (8) and no HVP growth measured at n = 1000"}


def test_an_hvp_that_did_not_run_at_n_is_extrapolated_from_the_two_largest_below():
    per_hvp, mb = (lambda n: 0.05 + 0.03 * n), (lambda n: 800 + 4 * n)
    growth = {str(n): growth_at(n, per_hvp, mb) for n in (8, 64, 250)}
    growth["8"]["hvp"]["3"]["cpu_ms"] *= 10  # off the line: only the two largest n are used
    growth["1000"] = {"error": "RESOURCE_EXHAUSTED: Out of memory"}
    cell = paper_cost.fit_cell({"64": measured(64, 9, per_hvp, mb)}, 1000, growth)
    assert cell["processes"]["discrete"]["step_cpu_s"] == pytest.approx(9 * per_hvp(1000))
    assert cell["peak_mb"] == pytest.approx(mb(1000))
    assert cell["source"].endswith(
        "extrapolated linearly from n = 64, 250 (at n = 1000: RESOURCE_EXHAUSTED: Out of memory)"
    )


def test_growth_check_compares_the_scaling_with_a_measured_larger_n():
    per_hvp, mb = (lambda n: 0.05 + 0.03 * n), (lambda n: 800 + 4 * n)
    growth = {str(n): growth_at(n, per_hvp, mb) for n in (32, 128)}
    by_n = {"cnn/gd": {"32": measured(32, 9, per_hvp, mb), "128": measured(128, 9, per_hvp, mb)}}
    assert paper_cost.growth_check(by_n, {"cnn": growth}) == {
        "cnn/gd: 32 -> 128": {"discrete": pytest.approx(0)}
    }
    by_n["cnn/gd"]["128"] = measured(128, 12, per_hvp, mb)  # 12 HVP-equivalents at 128, not 9: -25 %
    assert paper_cost.growth_check(by_n, {"cnn": growth})["cnn/gd: 32 -> 128"]["discrete"] == pytest.approx(
        -0.25
    )


def test_tables_only_keeps_every_measured_cell(tmp_path):
    """Re-deriving the tables from the committed JSON loses no measurement and reproduces its cells."""
    path = tmp_path / "paper_cost.json"
    shutil.copy(ROOT / "bench/results/paper_cost.json", path)
    before = json.loads(path.read_text())
    resources = tmp_path / "resources.yaml"
    subprocess.run(
        [sys.executable, str(ROOT / "bench/paper_cost.py"), "--json", str(path), "--tables-only",
         "--resources", str(resources)], check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    after = json.loads(path.read_text())
    for label, entry in before.items():
        for part in ("by_n", "paper_n", "hvp_ms_vs_n"):
            assert after[label].get(part) == entry.get(part), (label, part)
    assert after["cpu"]["cells"] == before["cpu"]["cells"]
    assert resources.read_text() == (ROOT / "workflow/resources.yaml").read_text()


def test_hvp_table_reports_growth_in_n_and_in_vectors():
    def hvp(one, three, gflop=None):
        return {"n_params": 1234, "hvp": {"1": {"cpu_ms": one}, "3": {"cpu_ms": three}}, "gflop": gflop or {}}

    flops = {"forward": 0.5, "hvp_1": 4.0}  # 4 GFLOP in 100 ms: 40 GFLOP/s, 8x the forward pass
    growth = {"mlp": {"64": hvp(10, 25), "250": hvp(30, 70), "1000": hvp(100, 240, flops)},
              "mamba": {"64": hvp(20, 50), "250": {"error": "timed out after 600 s"}}}  # fmt: skip
    rows = paper_cost.hvp_markdown(growth).splitlines()
    assert rows[2] == "| mlp | 1,234 | 10 / 25 | 30 / 70 | 100 / 240 | 10.0x | 2.4x | 4.0 (8.0x), 40 |"
    assert rows[3] == "| mamba | 1,234 | 20 / 50 | timed out after 600 s | not measured |  |  |  |"


def test_xla_flop_count_of_a_matrix_product():
    import jax.numpy as jnp

    a, b = jnp.ones((64, 128)), jnp.ones((128, 32))
    # 2 * 64 * 128 * 32 multiply-adds, as XLA counts a dot
    assert paper_cost.xla_gflop(jnp.matmul, a, b) == pytest.approx(2 * 64 * 128 * 32 / 1e9)


def test_unfinished_cell_shows_why_and_what_it_finished():
    done = {"discrete": {"step_cpu_s": 1.5}, "stable": {"step_cpu_s": 2.25}}
    by_n = {"128": {"error": "not run"}, "32": {"error": "timed out after 600 s", "partial_processes": done}}
    row = paper_cost.unfinished_row("resnet/rmsprop/1000", by_n)
    assert row == ("| resnet/rmsprop/1000 | n = 32: timed out after 600 s; n = 128: not run | |"
                   " at n = 32: 1.50 / 2.25 / -, -, - | | |")  # fmt: skip
    assert paper_cost.unfinished_row("vit/gd/1000", {}) == "| vit/gd/1000 | not measured | | | | |"
    stopped = {"32": {"processes": {"central_k1": {"step_cpu_s": 0.0}}}}
    row = paper_cost.unfinished_row("transformer/rmsprop/1000", stopped, "stopped during its measurement")
    assert row.startswith(
        "| transformer/rmsprop/1000 | n = 32: measured; not fitted: stopped during its measurement |"
    )


def test_a_stopped_worker_keeps_the_processes_it_printed():
    lines = [json.dumps({"partial": {"discrete": {"step_cpu_s": 1.0}}}), "noise",
             json.dumps({"partial": {"stable": {"step_cpu_s": 2.0}}})]  # fmt: skip
    out = "\n".join(lines)
    expected = {"partial_processes": {"discrete": {"step_cpu_s": 1.0}, "stable": {"step_cpu_s": 2.0}}}
    assert paper_cost.partial(out) == expected
    assert paper_cost.partial(out.encode()) == expected  # a timeout hands back bytes
    assert paper_cost.partial(None) == {}


def test_a_process_that_stopped_is_not_fitted():
    """A flow that stopped at its first measure (it started above the edge) did no step: no cost."""
    per_hvp, mb = (lambda n: 0.01 + 2e-4 * n), (lambda n: 500 + 3 * n)
    by_n = {str(n): measured(n, 9, per_hvp, mb) for n in (32, 128)}
    procs = by_n["128"]["processes"]
    procs["central_k1"] = {**procs["discrete"], "stopped": "S_eff 40 > 10"}
    error = "stopped during its measurement, so its times mean nothing: central_k1 at n = 128: S_eff 40 > 10"
    assert paper_cost.fit_cell(by_n, 1000) == {"error": error}
    # measured before the field was recorded: a process that did no HVP in its steps
    procs["central_k1"] = {**procs["discrete"], "hvp_equivalents_per_step": 0}
    assert "central_k1 at n = 128: no Hessian-vector product" in paper_cost.fit_cell(by_n, 1000)["error"]
    growth = {str(n): growth_at(n, per_hvp, mb) for n in (8, 1000)}
    assert "error" in paper_cost.fit_cell({"8": by_n["128"]}, 1000, growth)  # nor scaled from one n


def test_workers_run_with_the_engines_allocator_settings(tmp_path, monkeypatch):
    """A worker measures what a run costs, so it starts with the allocator settings every run gets."""
    from centralflows.runner.allocator import MALLOC_ENV

    for key in MALLOC_ENV:
        monkeypatch.delenv(key, raising=False)
    script = tmp_path / "worker.py"
    script.write_text(
        "import json, os\n"
        "print(json.dumps({'env': {k: v for k, v in os.environ.items() if k.startswith('MALLOC_')}}))\n"
    )
    result = paper_cost.subprocess_json([], timeout=60, script=str(script))
    assert result["env"] == MALLOC_ENV
    assert result["malloc_env"] == MALLOC_ENV  # recorded with the measurement
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # a value the user sets wins, as for the engine
    assert paper_cost.subprocess_json([], timeout=60, script=str(script))["env"]["MALLOC_ARENA_MAX"] == "4"


def test_compare_cost_pairs_the_cells_measured_on_both_sides(tmp_path):
    spec = importlib.util.spec_from_file_location("compare_cost", ROOT / "bench/compare_cost.py")
    compare_cost = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compare_cost)
    sides = {}
    for side, cpu, runs in (("before", 6.0, 5), ("after", 4.0, 4)):
        proc = {"step_cpu_s": cpu, "hvp_equivalents_per_step": 8.0}
        cost = {"runs": runs, "steps": 1000 * runs}
        grid = {
            f"central_k{k}": {"cells": {"lstm/gd/1000": {**cost, "core_hours": k * cpu}}} for k in (1, 2, 3)
        }
        cnn = {"processes": {"discrete": proc}} if side == "after" else {"error": "not run"}
        cells = {"lstm/gd/1000": {"processes": {"discrete": proc}}, "cnn/gd/1000": cnn}
        entry = {"cells": cells, "paper_grid": grid}
        sides[side] = tmp_path / f"{side}.json"
        sides[side].write_text(json.dumps({"cpu": entry}))
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench/compare_cost.py"), str(sides["before"]), str(sides["after"])],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "| lstm/gd/1000 | discrete | 6.0 → 4.0 | 1.50x | 8.0 → 8.0 | 1.50x |" in out
    runs = "| lstm/gd/1000 | 5 runs, 5000 steps → 4 runs, 4000 steps |"
    assert f"{runs} 6.0 → 4.0 | 12.0 → 8.0 | 18.0 → 12.0 |" in out
    assert "| cnn" not in out  # a cell with no measurement on a side is left out of the tables, and said so
    assert "not compared: cnn/gd/1000 (measured after only)" in out
    measured_cells, _ = compare_cost.cells(str(sides["after"]), "cpu")
    assert list(measured_cells) == ["lstm/gd/1000", "cnn/gd/1000"]
    assert list(compare_cost.cells(str(sides["before"]), "cpu")[0]) == ["lstm/gd/1000"]  # errors dropped
