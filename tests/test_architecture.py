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


# ---------------------------------------------------------------------------------------------------
# The workflow uses only the package's public names


WORKFLOW_CODE = ("Snakefile", "workflow/rules/*.smk", "workflow/scripts/**/*.py")


def _private_uses(path: Path):
    """(line, use) of every private name (leading underscore, not dunder) of a centralflows module that
    a workflow file imports or reads through a module it bound (`from centralflows.x import y as z`,
    `import centralflows.x as z`). Read as text: Snakemake files are not Python."""
    text = path.read_text()
    aliases = set()
    for match in re.finditer(r"^\s*from (centralflows[\w.]*) import (?:\(([^)]*)\)|([^\n]+))", text, re.M):
        for item in (match.group(2) or match.group(3)).replace("\n", " ").split(","):
            name, _, alias = item.strip().partition(" as ")
            if name:
                aliases.add(alias.strip() or name)
            if name.startswith("_") and not name.startswith("__"):
                yield text.count("\n", 0, match.start()) + 1, f"{match.group(1)}.{name}"
    aliases |= set(re.findall(r"^\s*import centralflows[\w.]* as (\w+)", text, re.M))
    for alias in aliases:
        for match in re.finditer(rf"(?<![\w.]){re.escape(alias)}\.(_(?!_)\w*)", text):
            yield text.count("\n", 0, match.start()) + 1, f"{alias}.{match.group(1)}"


def test_the_workflow_calls_no_private_name_of_the_package():
    bad = [
        f"{path.relative_to(ROOT)}:{line} {use}"
        for pattern in WORKFLOW_CODE
        for path in sorted(ROOT.glob(pattern))
        for line, use in _private_uses(path)
    ]
    assert not bad, "the workflow uses private names of the package; make them public:\n" + "\n".join(bad)


def test_the_private_name_reader_sees_a_use(tmp_path):
    rule = tmp_path / "common.smk"
    rule.write_text(
        "def f():\n    from centralflows.problem.data import cifar10\n\n    return cifar10._hint(1)\n"
        "from centralflows.plan.grid import (\n    plan,\n    _select as sel,\n)\n"
    )
    assert sorted(_private_uses(rule)) == [(4, "cifar10._hint"), (5, "centralflows.plan.grid._select")]


# ---------------------------------------------------------------------------------------------------
# The floor plan: README's Layout and docs/design.md list exactly the modules that exist


def _names(text: str) -> set:
    """The module names of a listing such as `grid (cells -> runs), data/, models/; names`: the text
    outside parentheses, split at commas and semicolons; each item must be a single name."""
    while re.search(r"\([^()]*\)", text):
        text = re.sub(r"\([^()]*\)", "", text)
    items = [item.strip() for item in re.split(r"[,;]", text) if item.strip()]
    bad = [item for item in items if not re.fullmatch(r"\w+/?", item)]
    assert not bad, f"not a module name in a module listing: {bad}"
    return set(items)


def _existing(folder: Path) -> set:
    """The modules (`name`) and subpackages (`name/`) directly in `folder`, without __init__."""
    files = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    return files | {f"{p.name}/" for p in folder.iterdir() if (p / "__init__.py").exists()}


def _code_block_after(text: str, marker: str) -> list:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(marker))
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("```"))
    return lines[start + 1 : end]


def _readme_layout() -> dict:
    """{layer: modules listed} from README's Layout: `  engine/   a, b (note),` plus indented lines."""
    listed, layer = {}, None
    for line in _code_block_after((ROOT / "README.md").read_text(), "src/centralflows/"):
        head = re.match(r"  (\w+)/\s+(.*)", line)
        if head:
            layer = head.group(1)
            listed[layer] = head.group(2)
        elif line.startswith("    ") and layer:
            listed[layer] += " " + line.strip()
        else:
            break
    return {layer: _names(text) for layer, text in listed.items()}


def test_the_readme_layout_lists_every_module_of_each_layer():
    listed = _readme_layout()
    assert list(listed) == list(LAYERS)
    for layer in LAYERS:
        assert listed[layer] == _existing(SRC / layer), (
            f"README.md Layout, {layer}/: missing {sorted(_existing(SRC / layer) - listed[layer])}, "
            f"not there {sorted(listed[layer] - _existing(SRC / layer))}"
        )


def _design_tree() -> dict:
    """{folder relative to src/centralflows: modules listed} from docs/design.md's package tree: a
    top-level `  name.py`, a layer `  engine`, its `    name.py` and `    name/   its modules`."""
    tree, layer, folder, text = {"": set()}, None, None, {}
    lines = _code_block_after((ROOT / "docs" / "design.md").read_text(), "src/centralflows/")
    for line in lines:
        if m := re.fullmatch(r"  (\w+)\.py\s+.*", line):
            tree[""].add(m.group(1))
        elif m := re.fullmatch(r"  (\w+)", line):
            layer, folder = m.group(1), None
            tree[""].add(f"{layer}/")
            tree[layer] = set()
        elif m := re.fullmatch(r"    (\w+)(\.py|/)\s*(.*)", line):
            name, kind, rest = m.groups()
            tree[layer].add(name if kind == ".py" else f"{name}/")
            folder = f"{layer}/{name}" if kind == "/" else None
            if folder:
                text[folder] = rest
        elif folder and line.startswith(" " * 8):
            text[folder] += " " + line.strip()
    return tree | {folder: _names(listing) for folder, listing in text.items()}


def test_design_md_lists_every_module_and_subpackage():
    tree = _design_tree()
    assert set(tree) == {"", *LAYERS} | {f"{p.parent.relative_to(SRC)}" for p in SRC.glob("*/*/__init__.py")}
    for folder, listed in tree.items():
        there = _existing(SRC / folder)
        assert listed == there, (
            f"docs/design.md, src/centralflows/{folder}: missing {sorted(there - listed)}, "
            f"not there {sorted(listed - there)}"
        )


def test_the_floor_plan_reader_sees_a_missing_module():
    assert _names("grid (cells, grids -> ids), data/; models/ (Flax (linen)), losses") == {
        "grid",
        "data/",
        "models/",
        "losses",
    }
    with pytest.raises(AssertionError, match="not a module name"):
        _names("the summary and one module per family")
