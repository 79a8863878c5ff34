"""The package's house rules, read from the source: layer order, public names, one registry per list."""

import ast
import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from centralflows.engine.registry import OPTIMIZERS, PROCESSES
from centralflows.problem.data import DATASETS
from centralflows.problem.losses import CRITERIA
from centralflows.problem.models import ARCHITECTURES

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "centralflows"
LAYERS = ("engine", "problem", "plan", "runner", "analysis")  # each may import only itself and earlier ones
SUBPACKAGES = ("engine", "problem", "plan", "runner")


def _modules():
    return sorted(p for p in SRC.rglob("*.py") if p.relative_to(SRC).parts[0] in LAYERS)


def _imports(path: Path):
    """(module imported, names imported from it, line) for every import in the file, nested ones too."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, (), node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, tuple(a.name for a in node.names), node.lineno


def test_a_module_imports_only_its_own_layer_and_those_before_it():
    bad = []
    for path in _modules():
        layer = LAYERS.index(path.relative_to(SRC).parts[0])
        for module, _, line in _imports(path):
            parts = module.split(".")
            if parts[0] == "centralflows" and len(parts) > 1 and parts[1] in LAYERS:
                if LAYERS.index(parts[1]) > layer:
                    bad.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert not bad, (
        "imports against the layer order engine < problem < plan < runner < analysis:\n" + "\n".join(bad)
    )


def test_no_module_uses_private_names_of_another():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        aliases = (
            set()
        )  # names bound to a centralflows module (`from centralflows.runner import config as C`)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("centralflows"):
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {node.module}.{a.name}" for a in node.names
                        if a.name.startswith("_")]  # fmt: skip
                aliases |= {a.asname or a.name for a in node.names}
            elif isinstance(node, ast.Import):
                aliases |= {a.asname for a in node.names if a.name.startswith("centralflows") and a.asname}
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                if node.attr.startswith("_") and not node.attr.startswith("__"):
                    bad.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_layer_test_sees_a_violation(tmp_path):
    """The rule's reader finds an upward import, also one inside a function."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from centralflows.runner.config import resolve_config\n")
    assert ("centralflows.runner.config", ("resolve_config",), 2) in list(_imports(bad))


@pytest.mark.parametrize("package", ["centralflows", *(f"centralflows.{p}" for p in SUBPACKAGES)])
def test_public_names_are_re_exported_and_resolve(package):
    module = importlib.import_module(package)
    assert module.__all__
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    with pytest.raises(AttributeError):
        module.no_such_name  # noqa: B018


def test_import_centralflows_is_light():
    code = "import sys, centralflows, centralflows.engine, centralflows.runner; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# each list is defined once, where its entries are implemented; nothing else spells it out
REGISTRIES = {
    "OPTIMIZERS": (set(OPTIMIZERS), "engine/registry.py"),
    "PROCESSES": (set(PROCESSES), "engine/registry.py"),
    "ARCHITECTURES": (set(ARCHITECTURES), "problem/models/__init__.py"),
    "DATASETS": (set(DATASETS), "problem/data/__init__.py"),
    "CRITERIA": (set(CRITERIA), "problem/losses.py"),
}


def _enumerations(names: set):
    """(file, line) of every literal sequence that spells out all of `names` (and nothing else) in src/ and
    workflow/: Python tuples, lists and sets, and YAML/Snakemake `[a, b, c]` flow lists. (A dict keyed by
    the names is a per-name table, such as an implementation's dispatch, not a second list.)"""
    files = [*SRC.rglob("*.py"), *(ROOT / "workflow").rglob("*.py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Tuple | ast.List | ast.Set) and node.elts:
                values = [
                    n.value for n in node.elts if isinstance(n, ast.Constant) and isinstance(n.value, str)
                ]
                if len(values) == len(node.elts) and set(values) == names:
                    yield path, node.lineno
    texts = [*(ROOT / "workflow").rglob("*.yaml"), *(ROOT / "workflow").rglob("*.smk"), ROOT / "Snakefile"]
    texts += [ROOT / "config.yaml"]
    for path in texts:
        for number, text in enumerate(path.read_text().splitlines(), 1):
            for flow in re.findall(r"\[([^\[\]]+)\]", text):
                if {v.strip().strip("'\"") for v in flow.split(",")} == names:
                    yield path, number


def test_the_enumeration_reader_finds_a_copy(tmp_path, monkeypatch):
    copy = tmp_path / "workflow" / "copy.py"
    copy.parent.mkdir()
    copy.write_text("NAMES = ('gd', 'rmsprop', 'scalar_rmsprop')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "SRC", tmp_path / "src")
    (tmp_path / "Snakefile").write_text("x = [rmsprop, gd, scalar_rmsprop]\n")
    (tmp_path / "config.yaml").write_text("")
    assert [(p.name, line) for p, line in _enumerations(set(OPTIMIZERS))] == [
        ("copy.py", 1),
        ("Snakefile", 1),
    ]


@pytest.mark.parametrize("registry", REGISTRIES)
def test_each_registry_is_enumerated_once(registry):
    names, home = REGISTRIES[registry]
    found = [f"{p.relative_to(ROOT)}:{line}" for p, line in _enumerations(names)]
    defined = f"src/centralflows/{home}:{_line_of(home, registry)}"
    found = [f for f in found if f != defined]
    assert not found, f"{registry} is spelled out outside its registry; import it instead:\n" + "\n".join(
        found
    )


def _line_of(home: str, registry: str) -> int:
    for node in ast.walk(ast.parse((SRC / home).read_text())):
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == registry for t in targets):
                return node.value.lineno
    raise AssertionError(f"{registry} not defined in {home}")
