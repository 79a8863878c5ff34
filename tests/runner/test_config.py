"""The typed run configuration: one definition of the options, the process sections and the run id."""

import dataclasses
import inspect
import os
from pathlib import Path

import pytest

from centralflows.engine.eigs import EigConfig
from centralflows.engine.registry import PROCESSES, process_class
from centralflows.engine.stationary import StationaryConfig
from centralflows.plan.grid import plan
from centralflows.plan.workflow import load_config
from centralflows.runner import config as C
from centralflows.runner.experiment import process_options

ROOT = Path(__file__).resolve().parents[2]
CELL = {"opt": {"name": "rmsprop", "lr": 1e-3}, "arch": {"name": "mlp"}, "steps": 2}


@pytest.mark.parametrize("scale", ["ci", "quick"])  # quick: CIFAR-10 cells, whose runs carry data.root
def test_the_cli_default_out_is_the_workflow_run_id(scale):
    """The two names of one trajectory agree: every run's default --out is its workflow run id."""
    p = plan(load_config(ROOT / "config.yaml"), scale)
    assert p.runs
    for run_id, run in p.runs.items():
        assert C.resolve_config(run).out == os.path.join("results", "runs", run_id)
    # command-line strings name the same run as typed values
    typed = C.resolve_config({**CELL, "opt": {"name": "rmsprop", "lr": 0.001}}).out
    assert C.resolve_config({**CELL, "opt.lr": "1e-3", "steps": "2"}).out == typed


def test_ghost_batches_keep_the_run_and_its_resume():
    """A job that ran out of memory is resubmitted in ghost batches: the same run id, and its folder's
    checkpoint resumes (the loss is the same); any other data option is another run."""
    from centralflows.plan.grid import run_id
    from centralflows.runner.experiment import config_difference

    ghost = {**CELL, "data": {"ghost_batch_size": 100}}
    assert run_id(ghost) == run_id(CELL) and run_id({**CELL, "data": {"n": 100}}) != run_id(CELL)
    assert C.resolve_config(ghost).out == C.resolve_config(CELL).out
    assert config_difference(C.resolve_config(ghost), C.resolve_config(CELL)) == []
    assert config_difference(C.resolve_config({**CELL, "data": {"n": 100}}), C.resolve_config(CELL)) == [
        "data.n"
    ]


def test_hvp_chunks_keep_the_run_and_its_resume():
    """A GPU job chooses eig.chunk_size for its memory (plan.device): the same run id, default --out and
    resumable checkpoint as the run without chunks; any other eig option is another run."""
    from centralflows.plan.grid import run_id
    from centralflows.runner.experiment import config_difference

    chunked = {**CELL, "eig": {"chunk_size": 2}}
    assert run_id(chunked) == run_id(CELL) and run_id({**CELL, "eig": {"max_k": 3}}) != run_id(CELL)
    assert C.resolve_config(chunked).out == C.resolve_config(CELL).out
    assert config_difference(C.resolve_config(chunked), C.resolve_config(CELL)) == []
    assert config_difference(C.resolve_config({**CELL, "eig": {"max_k": 3}}), C.resolve_config(CELL)) == [
        "eig.max_k"
    ]


@pytest.mark.parametrize("key, value", [("chunk_size", 2), ("hvp_batching", "unroll")])
def test_how_products_run_is_one_setting_for_all_processes(key, value):
    """The processes share one set of compiled derivative programs (engine.compiled), so a process's
    own chunk size or batching would reach its eigen-solver but not its third derivatives: refused,
    with the run-wide option named; the same value for the whole run is accepted."""
    with pytest.raises(C.ConfigError, match=rf"'central.eig.{key}' cannot differ between processes") as err:
        C.resolve_config({**CELL, "central": {"eig": {key: value}}})
    assert f"--eig.{key.replace('_', '-')}" in str(err.value)
    assert getattr(C.resolve_config({**CELL, "eig": {key: value}}).eig, key) == value
    assert C.resolve_config({**CELL, "central": {"eig": {"max_k": 3}}}).central.eig.given == {"max_k": 3}


def test_a_run_written_before_an_option_existed_still_resumes():
    """A paper run spans sessions and code updates: a stored config that lacks an option added since
    (it ran as that option's default) is the same run; a non-default value, or an option that no
    longer exists, is another."""
    from centralflows.runner.experiment import config_difference

    today = C.resolve_config(CELL)
    older = today.to_dict()
    del older["central"]["third_every"], older["eig"]["warm_start"]
    assert config_difference(older, today) == [] and config_difference(today, older) == []
    older["central"]["third_every"] = "step"
    assert config_difference(older, today) == ["central.third_every"]
    removed = {**today.to_dict(), "retired_option": 1}
    assert config_difference(removed, today) == ["retired_option"]


def test_the_stationary_solver_has_one_set_of_defaults():
    # the values the CLI and the workflow used before the Python API shared them
    expected = {"step": 0.5, "max_iter": 200, "tol": 1e-5, "tol_eig": 1e-4, "sdcp_threshold": 1.95}
    section = C.resolve_config(CELL).stationary.solver
    assert {k: getattr(section, k) for k in expected} == expected
    api = dataclasses.asdict(StationaryConfig())
    assert {k: api[k] for k in expected} == expected


@pytest.mark.parametrize(
    "section, cls, hidden", [("eig", EigConfig, ()), ("stationary", StationaryConfig, ("floor",))]
)
def test_every_engine_option_is_a_run_option(section, cls, hidden):
    fields = {f.name for f in dataclasses.fields(cls)} - set(hidden)
    assert fields <= set(C.SCHEMA[section])
    defaults = C.DEFAULTS[section]
    assert all(defaults[f] == getattr(cls(), f) for f in fields)


@pytest.mark.parametrize("name", PROCESSES)
def test_each_process_section_holds_its_constructor_keywords(name):
    config = C.resolve_config({**CELL, "runs": [name], "eig.frequency": 1})
    signature = inspect.signature(process_class(name).__init__)
    options = process_options(config, name)
    signature.bind("self", "kernels", "w", "s", "eig", 0, **options)  # raises if a key is not a keyword
    assert set(C.SCHEMA[name]) - {"eig", "stationary_every", *StationaryConfig.__dataclass_fields__} <= set(
        options
    )


def test_options_an_optimizer_lacks_are_errors():
    with pytest.raises(C.ConfigError, match="'opt.beta2' has no effect with opt.name gd"):
        C.resolve_config({**CELL, "opt": {"name": "gd", "lr": 0.1, "beta2": 0.9}})
    with pytest.raises(C.ConfigError, match="the ablated flow needs an EMA preconditioner"):
        C.resolve_config({**CELL, "opt": {"name": "gd", "lr": 0.1}, "runs": ["ablated"]})


def test_bare_no_flags_of_boolean_options_resolve_to_false():
    """The command line's `--x.no-flag` reaches resolve_config as a bare `x.no_flag`; only booleans negate."""
    config = C.resolve_config(
        {**CELL, "opt.no_bias_correction": C.NO_VALUE, "central.no_frequency_in_substeps": C.NO_VALUE}
    )
    assert config.opt.bias_correction is False and config.central.frequency_in_substeps is False
    assert C.resolve_config({**CELL, "opt.bias_correction": True}).opt.bias_correction is True
    with pytest.raises(C.ConfigError, match="unknown key 'opt.no_lr'") as err:
        C.resolve_config({**CELL, "opt.no_lr": C.NO_VALUE})  # lr is not a flag
    assert err.value.key == "opt.no_lr"
    with pytest.raises(C.ConfigError, match="contradict") as err:
        C.resolve_config({**CELL, "opt.bias_correction": C.NO_VALUE, "opt.no_bias_correction": C.NO_VALUE})
    assert (err.value.key, err.value.suggestions) == ("opt.bias_correction", ("opt.no_bias_correction",))


def test_the_command_line_conventions_of_the_authors():
    """steps 50 and cifar10's 10 classes by default, steps counted after the warm start, --overwrite read."""
    line = {"opt.name": "gd", "opt.lr": "0.1", "arch.name": "mlp", "warm_start": "3"}
    config, overwrite = C.resolve_command_line(line)
    assert (config.steps, config.data.options["classes"], overwrite) == (53, 10, False)
    config, overwrite = C.resolve_command_line({**line, "data.name": "sorting", "overwrite": C.NO_VALUE})
    assert "classes" not in config.data.options and overwrite is True
    with pytest.raises(C.ConfigError, match="invalid value for 'overwrite'"):
        C.resolve_command_line({**line, "overwrite": "maybe"})


def test_option_help_lists_the_chosen_components_or_says_why_not():
    lines, note = C.option_help({"arch.name": "mlp"})
    text = "\n".join(lines)
    assert "--opt.bias-correction / --opt.no-bias-correction" in text and "--arch.width V" in text
    assert "--discrete.eig.OPTION V" in text and note == ""
    lines, note = C.option_help({"arch.name": "nosuch"})
    assert "--arch.width" not in "\n".join(lines) and note.startswith(
        "(dataset/architecture options not listed"
    )


def test_nest_merges_dotted_and_nested_keys():
    tree = C.nest({"opt": {"lr": 1}, "opt.beta2": 0.9, "discrete.eig": {}, "data": {}, "a.b": {"c.d": 2}})
    assert tree == {
        "opt": {"lr": 1, "beta2": 0.9},
        "discrete": {"eig": {}},
        "data": {},
        "a": {"b": {"c": {"d": 2}}},
    }
    assert C.nest({"opt.lr": 1, "opt": {}}) == {"opt": {"lr": 1}}
    with pytest.raises(C.ConfigError, match="'opt.lr' conflicts with a value given for 'opt'"):
        C.nest({"opt": 3, "opt.lr": 1})
