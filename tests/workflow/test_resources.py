"""The run rule's runtime and memory: read from the measured table, a fallback for unmeasured cells."""

import math

import pytest
import yaml

from centralflows.plan.grid import plan
from centralflows.plan.resources import cell_key, job_table, load_table, mem_mb, runtime_minutes
from centralflows.plan.workflow import load_config

from .conftest import ROOT

CONFIG = load_config(ROOT / "config.yaml")
RESOURCES = CONFIG["resources"]


def test_table_entry_is_used_and_scales_with_attempt(tmp_path):
    run = {"arch": {"name": "mamba"}, "opt": {"name": "gd"}, "data": {"n": 250}, "steps": 100,
           "runs": ["discrete", "central"]}  # fmt: skip
    entry = {"compile_s": 60.0, "peak_mb": 3000, "step_s": {"discrete": 1.5, "central": 4.5}}
    path = tmp_path / "resources.yaml"
    path.write_text(yaml.safe_dump({"measured_on": "cpu", "cells": {"mamba/gd/250": entry}}))
    table = load_table(path)
    resources = {**RESOURCES, "safety": 2.0, "runtime": {**RESOURCES["runtime"], "base": 10}}
    # 10 + 2 * (60 + 100 * (1.5 + 4.5)) / 60 = 32 minutes; twice that on the second attempt
    assert runtime_minutes(run, resources, table) == 32
    assert runtime_minutes(run, resources, table, attempt=2) == 64
    assert mem_mb(run, resources, table) == 6000
    # another n is another cell, not measured: the per_kstep fallback
    other = {**run, "data": {"n": 1000}}
    per_kstep, w = RESOURCES["runtime"]["per_kstep"]["mamba"], RESOURCES["runtime"]["process_weight"]
    assert runtime_minutes(other, resources, table) == math.ceil(
        10 + 0.1 * per_kstep * (w["discrete"] + w["central"])
    )


def test_every_paper_run_gets_a_runtime_and_memory():
    table = load_table(ROOT / "workflow/resources.yaml")  # the committed measurements
    assert table, "workflow/resources.yaml is missing or empty: run bench/paper_cost.py --resources"
    for entry in table.values():
        assert entry["peak_mb"] > 0 and entry["compile_s"] >= 0
        assert set(entry["step_s"]) >= {"discrete", "stable", "central", "midpoint", "ablated", "stationary"}
    runs = plan(CONFIG, "paper").runs.values()
    for run in runs:
        assert runtime_minutes(run, RESOURCES, table) > RESOURCES["runtime"]["base"]
        assert mem_mb(run, RESOURCES, table) > 0
    measured = {cell_key(run) for run in runs} & set(table)
    assert measured, "no paper cell is in the measured table"


def test_the_table_is_chosen_by_the_jobs_device(tmp_path):
    cpu = tmp_path / "cpu.yaml"
    cpu.write_text(yaml.safe_dump({"measured_on": "cpu", "cells": {"mlp/gd/1000": {"peak_mb": 1}}}))
    tables = {"cpu": str(cpu), "gpu": str(tmp_path / "not_measured_yet.yaml")}
    assert job_table({**RESOURCES, "device": "cpu", "tables": tables}) == {"mlp/gd/1000": {"peak_mb": 1}}
    assert job_table({**RESOURCES, "device": "gpu", "tables": tables}) == {}  # no table: the guesses
    assert job_table({**RESOURCES, "device": "gpu", "tables": {**tables, "gpu": None}}) == {}
    # a CPU table named for GPU jobs would ask for ~10x their time: refused, naming the setting
    with pytest.raises(ValueError, match=r"measured on 'cpu' but sizes gpu jobs.*resources.tables.gpu"):
        job_table({**RESOURCES, "device": "gpu", "tables": {**tables, "gpu": str(cpu)}})


def test_the_committed_config_sizes_cpu_jobs_from_the_measurements():
    assert RESOURCES["tables"]["cpu"] == "workflow/resources.yaml"
    table = job_table(
        {**RESOURCES, "device": "cpu", "tables": {"cpu": str(ROOT / "workflow/resources.yaml")}}
    )
    run = next(r for r in plan(CONFIG, "paper").runs.values() if cell_key(r) == "mlp/gd/1000")
    entry = table["mlp/gd/1000"]
    seconds = entry["compile_s"] + run["steps"] * sum(entry["step_s"][p] for p in run["runs"])
    expected = math.ceil(RESOURCES["runtime"]["base"] + RESOURCES["safety"] * seconds / 60)
    assert runtime_minutes(run, RESOURCES, table) == expected
