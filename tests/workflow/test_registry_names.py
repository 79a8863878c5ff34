"""The workflow config names datasets, architectures and processes from the package's registries."""

import copy
from pathlib import Path

import pytest

from centralflows.plan import grid
from centralflows.plan.workflow import load_config

ROOT = Path(__file__).resolve().parents[2]
CONFIG = load_config(ROOT / "config.yaml")


def test_the_config_names_only_registered_names():
    grid.check_names(CONFIG)


@pytest.mark.parametrize(
    "path, key",
    [
        (("scales", "ci", "datasets"), "cifar11"),
        (("scales", "ci", "archs"), "vitt"),
        (("resources", "runtime", "per_kstep"), "vitt"),
        (("resources", "runtime", "process_weight"), "centrall"),
    ],
)
def test_a_misspelled_name_is_named(path, key):
    config = copy.deepcopy(CONFIG)
    node = config
    for part in path:
        node = node.setdefault(part, {})
    node[key] = {}
    with pytest.raises(ValueError, match=f"{'.'.join(path)}: unknown name '{key}'"):
        grid.plan(config, "ci")
