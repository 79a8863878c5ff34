"""README "Extending", an architecture: a module in models/ plus its name in ARCHITECTURES is enough for
`init: jax`; `init: torch` (the default) also needs the module's `torch_parameters` and `to_flax`, and
without them a run stops at once with a message naming the architecture (exit 2 from the CLI)."""

import importlib
import sys

import h5py
import numpy as np
import pytest

from centralflows.problem import models
from centralflows.problem.models import torch_init
from centralflows.runner import cli
from centralflows.runner.config import ConfigError, resolve_config
from centralflows.runner.experiment import run

MODULE = """
import flax.linen as nn

from centralflows.problem.models.torch_init import dense_of, torch_linear

DEFAULTS = {"width": 8}


class Tiny(nn.Module):
    width: int
    num_outputs: int

    @nn.compact
    def __call__(self, x):
        x = nn.tanh(nn.Dense(self.width)(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.num_outputs)(x)


def build(options, spec):
    return Tiny(options["width"], spec.num_outputs)
"""

AUTHORS = """

def torch_parameters(g, o, spec):
    P = {}
    torch_linear(g, P, "0", int(np.prod(spec.input_shape)), o["width"])
    torch_linear(g, P, "2", o["width"], spec.num_outputs)
    return P


def to_flax(P, o, spec):
    return {"Dense_0": dense_of(P, "0"), "Dense_1": dense_of(P, "2")}
"""


@pytest.fixture
def register(tmp_path, monkeypatch):
    """Writes models/<name>.py (in a folder added to the package's path) and adds it to ARCHITECTURES."""
    added = []

    def add(name: str, text: str):
        (tmp_path / f"{name}.py").write_text(text)
        monkeypatch.setattr(models, "__path__", [*models.__path__, str(tmp_path)])
        monkeypatch.setattr(models, "ARCHITECTURES", (*models.ARCHITECTURES, name))
        importlib.invalidate_caches()
        added.append(f"{models.__name__}.{name}")

    yield add
    for module in added:
        sys.modules.pop(module, None)


def one_step(tmp_path, arch: str, init: str):
    config = resolve_config(
        {
            "data": {"name": "synthetic-cifar10", "n": 16, "n_test": 8, "classes": 4},
            "arch": {"name": arch},
            "opt": {"name": "gd", "lr": 0.05},
            "runs": ["discrete"],
            "eig": {"frequency": -1},
            "steps": 1,
            "init": init,
            "out": str(tmp_path / f"{arch}-{init}"),
        }
    )
    with h5py.File(run(config, progress=False), "r") as f:
        assert f.attrs["status"] == "completed" and list(f["step"]) == [0]
        return f["discrete/train_loss"][0]


def test_an_architecture_with_the_authors_constructor_runs_under_both_inits(tmp_path, register):
    register("tiny_authors", "import numpy as np\n" + MODULE + AUTHORS)
    losses = {init: one_step(tmp_path, "tiny_authors", init) for init in ("torch", "jax")}
    assert all(np.isfinite(v) for v in losses.values()) and losses["torch"] != losses["jax"]


def test_an_architecture_without_it_runs_under_init_jax_and_names_itself_under_torch(
    tmp_path, register, capsys
):
    register("tiny_plain", MODULE)
    assert np.isfinite(one_step(tmp_path, "tiny_plain", "jax"))
    with pytest.raises(ConfigError, match="architecture 'tiny_plain' has no authors' PyTorch init"):
        resolve_config({"arch": {"name": "tiny_plain"}, "opt": {"name": "gd", "lr": 0.1}, "steps": 1})
    line = "opt:gd data:synthetic-cifar10 arch:tiny_plain --opt.lr 0.05 --steps 1"
    assert cli.main([*line.split(), "--out", str(tmp_path / "cli")]) == 2
    err = capsys.readouterr().err
    assert "'tiny_plain'" in err and "use --init jax" in err and "torch_parameters" in err
    with pytest.raises(torch_init.NoTorchInit, match="tiny_plain"):  # the library path says the same
        torch_init.torch_parameters("tiny_plain", {"width": 8}, None, 0)
