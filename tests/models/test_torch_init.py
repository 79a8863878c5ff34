"""The numpy replay of the authors' PyTorch initialisation against references made with torch.

The references (tests/models/data/torch_init_refs.json, authors_checkpoint/) come from
tests/models/make_torch_init_refs.py, run once with torch and the authors' code; torch is not needed here.
"""

import hashlib
import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from centralflows.problem import models
from centralflows.problem.build import build_problem
from centralflows.problem.data.spec import DataSpec
from centralflows.problem.models import torch_init
from centralflows.runner import authors_checkpoint

DATA = Path(__file__).parent / "data"
REFS = json.loads((DATA / "torch_init_refs.json").read_text())
IMAGE = DataSpec("image", (32, 32, 3), 4)
SEQUENCE = DataSpec("sequence", (15,), 4, 4)


def spec_of(arch):
    return SEQUENCE if arch in ("lstm", "transformer", "mamba") else IMAGE


def options_of(case):
    return {**models.get_architecture(case["arch"]).DEFAULTS, **case["options"]}


def sample_index(n):  # as make_torch_init_refs.sample_index
    return np.unique(np.linspace(0, n - 1, min(16, n)).round().astype(np.int64))


def assert_matches(name, a, ref):
    assert list(a.shape) == ref["shape"], name
    assert a.dtype == np.float32, name
    flat = a.reshape(-1)
    np.testing.assert_array_equal(flat[sample_index(flat.size)].view(np.uint32), ref["bits"], err_msg=name)
    assert math.isclose(float(a.astype(np.float64).sum()), ref["sum"], rel_tol=1e-12, abs_tol=1e-12), name
    assert hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() == ref["sha256"], name


def test_generator_draws_equal_torch():
    g = torch_init.Generator(7)
    for op in REFS["generator"]:
        draw = g.uniform if op["kind"] == "uniform" else g.normal
        assert_matches(f"{op['kind']}({op['n']})", draw((op["n"],), op["a"], op["b"]), op)


CASES = REFS["cases"]
IDS = [
    f"{c['arch']}-{'-'.join(f'{k}{v}' for k, v in c['options'].items()) or 'default'}-s{c['seed']}"
    for c in CASES
]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_initial_weights_equal_torch(case):
    """Every parameter, value for value (float32 bytes), in the authors' named_parameters() order."""
    params = torch_init.torch_parameters(case["arch"], options_of(case), spec_of(case["arch"]), case["seed"])
    assert list(params) == list(case["params"])
    for name, ref in case["params"].items():
        assert_matches(name, params[name], ref)


def probe_inputs(arch):  # as make_torch_init_refs.probe_inputs, images transposed to NHWC
    if arch in ("lstm", "transformer", "mamba"):
        return ((np.arange(30) * 7 + 3) % 4).reshape(2, 15).astype(np.int32)
    x = np.sin(0.01 * np.arange(2 * 3 * 32 * 32)).reshape(2, 3, 32, 32).astype(np.float32)
    return x.transpose(0, 2, 3, 1)


SMALL = [c for c in CASES if c["options"]]


@pytest.mark.slow
@pytest.mark.parametrize("case", SMALL, ids=[i for i, c in zip(IDS, CASES, strict=True) if c["options"]])
def test_mapped_weights_compute_the_authors_function(case):
    """The Flax model at the mapped weights gives torch's outputs: transposes and flatten orders are right."""
    arch, options = case["arch"], options_of(case)
    spec = spec_of(arch)
    params = torch_init.to_flax(
        arch, options, spec, torch_init.torch_parameters(arch, options, spec, case["seed"])
    )
    model = models.get_architecture(arch).build(options, spec)
    out = np.asarray(model.apply({"params": params}, probe_inputs(arch)))
    np.testing.assert_allclose(out, np.array(case["outputs"]), rtol=2e-4, atol=2e-5)


def run_config(init=None):
    config = {"data": {"name": "synthetic-cifar10", "n": 8, "n_test": 8}, "arch": {"name": "mlp", "width": 8}}
    return config | ({"init": init} if init else {}) | {"seed": 3}


@pytest.mark.slow
def test_build_problem_starts_from_torch_init_by_default():
    spec = DataSpec("image", (32, 32, 3), 4)
    options = {**models.get_architecture("mlp").DEFAULTS, "width": 8}
    expected = torch_init.to_flax("mlp", options, spec, torch_init.torch_parameters("mlp", options, spec, 3))
    w0 = np.asarray(build_problem(**run_config()).w0)
    np.testing.assert_array_equal(w0, np.asarray(ravel_pytree(expected)[0]))
    w_jax = np.asarray(build_problem(**run_config("jax")).w0)
    assert w_jax.shape == w0.shape and not np.array_equal(w_jax, w0)


CHECKPOINT = REFS["checkpoint"]


@pytest.mark.slow
def test_authors_checkpoint_continues_their_trajectory():
    """Their checkpoint folder → our w and ν, which give the authors' network outputs at their w."""
    arch, options = CHECKPOINT["arch"], options_of(CHECKPOINT)
    assert authors_checkpoint.is_authors_checkpoint(DATA / "authors_checkpoint")
    w, s, step = authors_checkpoint.load(
        DATA / "authors_checkpoint", "discrete", {"name": arch, **options}, IMAGE, "rmsprop"
    )
    assert step == CHECKPOINT["step"] and s["t"] == 3.0
    np.testing.assert_array_equal(s["nu"], w.astype(np.float32) ** 2)  # their ν = w² entrywise, in torch

    model = models.get_architecture(arch).build(options, IMAGE)
    template = jax.eval_shape(model.init, jax.random.PRNGKey(0), probe_inputs(arch))["params"]
    unravel = ravel_pytree(jax.tree.map(lambda a: np.zeros(a.shape, np.float32), template))[1]
    out = np.asarray(model.apply({"params": unravel(w.astype(np.float32))}, probe_inputs(arch)))
    np.testing.assert_allclose(out, np.array(CHECKPOINT["discrete_outputs"]), rtol=2e-4, atol=2e-5)

    central = authors_checkpoint.load(
        DATA / "authors_checkpoint", "central", {"name": arch, **options}, IMAGE, "rmsprop"
    )[0]
    np.testing.assert_allclose(central - w, 0.25, atol=1e-6)


def test_authors_checkpoint_errors_name_the_problem():
    folder = DATA / "authors_checkpoint"
    RESNET = {"name": "resnet", **CHECKPOINT["options"]}
    with pytest.raises(
        authors_checkpoint.AuthorsCheckpointError, match="no process 'stable'.*central, discrete"
    ):
        authors_checkpoint.load(folder, "stable", RESNET, IMAGE, "rmsprop")
    with pytest.raises(authors_checkpoint.AuthorsCheckpointError, match="check arch"):
        authors_checkpoint.load(folder, "discrete", {"name": "mlp"}, IMAGE, "gd")
    with pytest.raises(authors_checkpoint.AuthorsCheckpointError, match="gd needs 1"):
        authors_checkpoint.load(folder, "discrete", RESNET, IMAGE, "gd")


@pytest.mark.slow
def test_run_records_the_initialisation_and_continues_an_authors_checkpoint(tmp_path):
    """The HDF5 root attribute `init` names the start; a run from the authors' checkpoint starts at their
    step with their optimizer count (its weights are checked above)."""
    import h5py

    from centralflows.runner.config import resolve_config
    from centralflows.runner.experiment import run

    base = {
        "data": {"name": "synthetic-cifar10", "n": 8, "n_test": 8},
        "arch": {"name": "resnet", "width": 2, "stage_sizes": [1]},
        "opt": {"name": "rmsprop", "lr": 1e-4},
        "steps": 4,
    }
    fresh = run(resolve_config({**base, "steps": 1, "out": str(tmp_path / "fresh")}), progress=False)
    loaded = run(
        resolve_config(
            {**base, "out": str(tmp_path / "loaded"),
             "load": {"path": str(DATA / "authors_checkpoint"), "from_process": "central"}}
        ),
        progress=False,
    )  # fmt: skip
    with h5py.File(fresh) as f:
        assert f.attrs["init"].startswith("torch: the authors' PyTorch initialisation")
    with h5py.File(loaded) as f:
        assert "loaded from" in f.attrs["init"] and "(central)" in f.attrs["init"]
        assert f.attrs["start_step"] == CHECKPOINT["step"]
        assert list(f["step"][:]) == [3] and f["discrete/opt.t"][0] == 4.0  # their t = 3, one more step
