"""The command line: the authors' README commands, aliases, both option forms, errors without tracebacks."""

import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from centralflows.runner import cli
from centralflows.runner import config as C
from centralflows.runner.checkpoint import save_checkpoint
from centralflows.runner.config import ConfigError

# Small stand-ins for the dataset and architecture registries, so these tests do not depend on them.
FAKE = {
    "data": {
        "cifar10": {"classes": 4, "n": 1000, "criterion": "mse", "root": "data"},
        "synthetic-cifar10": {"classes": 4, "n": 1000, "noise": 1.0},
        "sorting": {"n": 1000, "vocab_size": 4, "length": 8},
    },
    "arch": {"mlp": {"width": 256, "activation": "gelu"}, "resnet": {"stage_sizes": (3, 3, 3), "norm": True}},
}


@pytest.fixture(autouse=True)
def fake_registries(monkeypatch):
    def component(kind, name):
        for candidate in (name, name.replace("_", "-")):
            if candidate in FAKE[kind]:
                return candidate, types.SimpleNamespace(DEFAULTS=FAKE[kind][candidate])
        raise ConfigError(f"unknown {kind} '{name}'", key=f"{kind}.name")

    monkeypatch.setattr(C, "_component", component)


GD = "opt:gd data:cifar10 arch:mlp --data.classes=4 --data.n=1000 --data.criterion=mse --opt.lr=0.02"
RMSPROP = (
    "opt:rmsprop data:cifar10 arch:mlp --data.classes=4 --data.n=1000 --data.criterion=mse --opt.lr=2e-5 "
    "--opt.beta2=0.99 --opt.eps=1e-7 --opt.bias-correction --runs discrete central --steps=500 "
    "--eig.frequency=1 --warm-start 5 --eig.track-threshold 1.75"
)


def parse(line: str) -> dict:
    """The resolved config of a command line, in its dict form (as the HDF5 file stores it)."""
    config = cli.parse_args(line.split())
    assert isinstance(config, C.RunConfig)
    return config.to_dict()


def test_readme_gd_command():
    c = parse(GD + " --runs discrete central --steps=1000 --eig.frequency=1")
    assert c["opt"] == {"name": "gd", "lr": 0.02, "beta2": 0.99, "eps": 0.0, "bias_correction": False,
                        "flow_t_rate": "step"}  # fmt: skip
    assert c["data"] == {"name": "cifar10", "criterion": "mse", "n": 1000, "root": "data", "classes": 4,
                         "ghost_batch_size": -1}  # fmt: skip
    assert c["arch"] == {"name": "mlp", "width": 256, "activation": "gelu"}
    assert c["runs"] == ["discrete", "central"] and c["steps"] == 1000 and c["eig"]["frequency"] == 1
    assert re.fullmatch(r"results/runs/mlp-gd-lr0\.02-cifar10-[0-9a-f]{8}", c["out"])


def test_readme_rmsprop_command():
    c = parse(RMSPROP)
    assert c["opt"] == {"name": "rmsprop", "lr": 2e-5, "beta2": 0.99, "eps": 1e-7, "bias_correction": True,
                        "flow_t_rate": "step"}  # fmt: skip
    # --steps counts after the warm start (the authors' main.py): 500 rows, steps 5..504
    assert c["warm_start"] == 5 and c["eig"]["track_threshold"] == 1.75 and c["steps"] == 505
    assert re.fullmatch(r"results/runs/mlp-rmsprop-lr2e-05-cifar10-[0-9a-f]{8}", c["out"])


def test_equals_and_space_forms_dashes_underscores_and_aliases():
    a = parse(
        "opt:scalar-rmsprop arch:mlp --opt.lr 0.1 --steps 3 --eig.initial-neigs 2 --stable.max-Seff 50 "
        "--warm_start=2 --central.sdcp_threshold 1.9 --central.frequency-in-substeps --opt.no-bias-correction"
    )
    b = parse(
        "opt:scalar_rmsprop arch:mlp --opt.lr=0.1 --steps=3 --eig.initial_k=2 --stable.max_seff=50 "
        "--warm-start 2 --central.sdcp-threshold=1.9 --central.frequency_in_substeps=true "
        "--opt.bias_correction=false"
    )
    assert a == b
    assert (
        a["opt"]["name"] == "scalar_rmsprop"
        and a["eig"]["initial_k"] == 2
        and a["stable"]["max_seff"] == 50.0
    )
    assert a["central"]["frequency_in_substeps"] is True and a["data"]["name"] == "cifar10"  # default dataset


def test_every_reference_option(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save_checkpoint("a.npz", {"processes": {}}, {"step": 7})
    c = parse(
        "opt:rmsprop data:sorting arch:resnet --opt.lr 1e-3 --steps 10 "
        "--runs discrete midpoint stable central "
        "--eig.frequency 1 --discrete.eig.frequency -1 --central.eig.initial-k 3 --central.nsubsteps 8 "
        "--stable.min-nsubsteps 6 --checkpoint.frequency 5 --checkpoint.steps 3 7 --checkpoint-file ck.npz "
        "--load.path a.npz --load.from-process discrete --out res/x --data.root /d --seed 3 --dtype float64 "
        "--arch.stage-sizes 2 2 2 --data.vocab-size 6 --eig.chunk-size none --eig.track-threshold none"
    )
    assert c["runs"] == ["discrete", "midpoint", "stable", "central"]
    typed = C.RunConfig.from_dict(c)
    assert typed.process_eig("discrete").frequency == -1 and typed.process_eig("midpoint").frequency == 1
    assert typed.process_eig("central").initial_k == 3 and typed.eig.initial_k == 1
    assert typed.arch.options["stage_sizes"] == [2, 2, 2] and typed.to_dict() == c
    assert c["central"]["nsubsteps"] == 8 and c["stable"]["min_nsubsteps"] == 6
    assert c["steps"] == 17  # 10 steps after the loaded checkpoint's step 7
    assert c["checkpoint"] == {"frequency": 5, "steps": [3, 7]} and c["checkpoint_file"] == "ck.npz"
    assert c["load"] == {"path": "a.npz", "from_process": "discrete"}
    assert (c["out"], c["data"]["root"], c["seed"], c["dtype"]) == ("res/x", "/d", 3, "float64")
    assert c["arch"]["stage_sizes"] == [2, 2, 2] and c["data"]["vocab_size"] == 6
    assert c["eig"]["chunk_size"] is None and c["eig"]["track_threshold"] is None


def test_dict_overrides_resolve_like_the_command_line():
    c = C.resolve_config(
        {"opt": {"name": "gd", "lr": 0.02}, "arch.name": "mlp", "steps": 1000, "data.n": 1000}
    ).to_dict()
    line = parse(GD + " --steps 1000")
    # the default --out names the overrides given (the workflow's run id), and these differ
    assert {**c, "out": None} == {**line, "out": None}
    assert c["out"].startswith("results/runs/mlp-gd-lr0.02-cifar10-")
    assert C.DEFAULTS["eig"]["track_threshold"] == 1.5 and C.DEFAULTS["central"]["nsubsteps"] == 4


@pytest.mark.parametrize(
    "extra, message",
    [
        ("--eig.frequncy 1", "unknown option --eig.frequncy; did you mean --eig.frequency?"),
        ("--discrete.eig.frequncy 1", "did you mean --discrete.eig.frequency?"),
        ("--lr 0.1", "did you mean --opt.lr?"),
        ("--data.clases 4", "did you mean --data.classes?"),
        ("--runs discrete centrl", "allowed: a list of values from discrete, midpoint, stable, central"),
        ("--runs", "--runs is empty"),
        ("--opt.beta2 1.5", "allowed: a number in (0, 1)"),
        ("--opt.beta2 nan", "allowed: a number in (0, 1)"),
        ("--steps -1", "allowed: an integer >= 0"),
        ("--steps 0", "--steps: 0 (allowed: an integer >= 1"),
        ("--steps 2.5", "invalid value for --steps"),
        ("--steps", "--steps needs a value"),
        ("--dtype float16", "one of float32, float64"),
        ("--opt.lr abc", "allowed: a number > 0"),
        ("--opt.lr inf", "invalid value for --opt.lr: 'inf' (allowed: a number > 0"),
        ("--opt.lr nan", "invalid value for --opt.lr: 'nan'"),
        ("--opt.lr -0.1", "invalid value for --opt.lr"),
        ("--opt.eps inf", "invalid value for --opt.eps"),
        ("--eig.tol inf", "invalid value for --eig.tol"),
        ("--eig.track-threshold nan", "invalid value for --eig.track-threshold"),
        ("--warm-start -2", "invalid value for --warm-start"),
        ("--central.nsubsteps 0", "invalid value for --central.nsubsteps"),
        ("--eig.frequency 0", "invalid value for --eig.frequency"),
        ("--checkpoint.steps -3", "invalid value for --checkpoint.steps"),
        ("--load.path a.npz", "--load.from-process is required"),
        ("--load.path nowhere.npz --load.from-process discrete", "cannot read checkpoint nowhere.npz"),
        ("--steps=5 stray", "unexpected argument 'stray'"),
        # conflicting input: the last value used to win silently
        ("opt:gd", "opt:NAME is given twice"),
        ("--steps 3 --steps 4", "--steps is given twice"),
        ("--eig.initial-k 2 --eig.initial-neigs 3", "--eig.initial-k is given twice"),
        ("--opt.bias-correction --opt.no-bias-correction", "and --opt.no-bias-correction contradict"),
        # `no-` negates a flag only: on another option it is an unknown option
        ("--opt.no-lr", "unknown option --opt.no-lr; did you mean --opt.lr?"),
        ("--data.no-n", "unknown option --data.no-n; did you mean --data.n?"),
        ("--out x --expid y", "--expid and --out both name the output folder"),
        # the authors' options that are accepted only with the values this engine offers
        ("--eig.solver scipy", "--eig.solver scipy: the Lanczos solver is not offered"),
        ("--central.eig.solver arpack", "invalid value for --central.eig.solver"),
        ("--device tpu", "invalid value for --device: 'tpu' (allowed: cpu, cuda)"),
    ],
)
def test_bad_input_exits_2_naming_the_option(extra, message, capsys):
    line = "opt:rmsprop arch:mlp " + extra + ("" if "--opt.lr" in extra else " --opt.lr 1e-3")
    assert cli.main(line.split()) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err


def test_required_and_optimizer_specific_options(capsys):
    assert cli.main("arch:mlp --opt.lr 0.1 --steps 3".split()) == 2
    assert "opt:NAME is required: one of gd, scalar_rmsprop, rmsprop" in capsys.readouterr().err
    assert cli.main("opt:gd --opt.lr 0.1 --steps 3".split()) == 2
    assert "arch:NAME is required" in capsys.readouterr().err
    assert cli.main("opt:adam arch:mlp --opt.lr 0.1 --steps 3".split()) == 2
    assert cli.main(GD.split() + ["--steps", "3", "--opt.beta2", "0.9"]) == 2
    assert "no effect with opt.name gd" in capsys.readouterr().err


def test_help_lists_every_option(capsys):
    assert cli.main(["opt:gd", "arch:resnet", "--help"]) == 0
    out = capsys.readouterr().out
    for key in C.flatten(C.SCHEMA):
        if not key.endswith(".name"):
            assert C.flag(key) in out, key
    assert (
        "--opt.no-bias-correction" in out and "--arch.stage-sizes" in out and "--discrete.eig.OPTION" in out
    )


def test_main_prints_the_data_path_then_runs(tmp_path):
    argv = ["opt:gd", "data:synthetic-cifar10", "arch:mlp", "--arch.width", "4", "--data.n", "8",
            "--data.n-test", "8", "--opt.lr", "0.01", "--steps", "2", "--out", str(tmp_path)]  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "centralflows", *argv], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"Saving data to: {tmp_path / 'data.hdf5'}"
    assert (tmp_path / "data.hdf5").exists()


def test_module_entry_point_exits_2_without_traceback():
    # An invalid option is rejected before any dataset, model or experiment code is imported.
    proc = subprocess.run(
        [sys.executable, "-m", "centralflows", *GD.split(), "--stepz", "10"], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: unknown option --stepz; did you mean --steps?")
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_real_registries_resolve(monkeypatch):
    monkeypatch.undo()  # the real centralflows.problem.data / centralflows.problem.models registries
    pytest.importorskip("centralflows.problem.data")
    pytest.importorskip("centralflows.problem.models")
    c = C.resolve_config(
        {"opt.name": "gd", "opt.lr": 0.02, "arch.name": "mlp", "steps": 1, "data.name": "sorting"}
    )
    assert c.data.name == "sorting" and c.arch.name == "mlp"
    with pytest.raises(ConfigError, match="unknown dataset"):
        C.resolve_config(
            {"opt.name": "gd", "opt.lr": 0.02, "arch.name": "mlp", "steps": 1, "data.name": "mnist"}
        )


@pytest.mark.skipif(
    importlib.util.find_spec("jax_cuda12_plugin") is not None, reason="a CUDA JAX is installed here"
)
def test_device_cuda_without_cuda_is_a_clear_error(tmp_path):
    argv = [*GD.split(), "--steps", "1", "--device", "cuda", "--out", str(tmp_path / "o")]
    proc = subprocess.run([sys.executable, "-m", "centralflows", *argv], capture_output=True, text=True)
    assert proc.returncode == 2 and "--device cuda: JAX has no cuda backend" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def test_central_max_seff_option():
    config = cli.parse_args("opt:gd arch:mlp --opt.lr 0.1 --steps 3 --central.max-seff 20".split())
    assert config.central.max_seff == 20.0


def test_the_workflow_run_schema_is_the_one_generated_from_the_run_configuration():
    import yaml

    from centralflows.runner.config import RUN_JSON_SCHEMA, run_json_schema

    committed = yaml.safe_load((Path(__file__).resolve().parents[2] / RUN_JSON_SCHEMA).read_text())
    assert committed == run_json_schema(), "regenerate it: see the header of " + RUN_JSON_SCHEMA
