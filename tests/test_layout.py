"""The library's architecture, checked: three floors — the shared machinery and the
domain modules, the studies, and the applications on top (runner, sweeps, book, command
line) — imports only downwards, no study importing another, no import cycle, and no
study module grown past ~500 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from privbias_lib.study import ROOT

PACKAGE = ROOT / "privbias_lib"
APPLICATIONS = {
    "privbias_lib.runner",
    "privbias_lib.sweeps",
    "privbias_lib.book",
    "privbias_lib.cli",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """privbias_lib modules imported by ``path`` (relative imports resolved)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target.startswith("privbias_lib"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("privbias_lib"))
    modules = {_module_name(p) for p in PACKAGE.rglob("*.py")}
    return {m for m in found if m in modules and m != name}


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _floor(module: str) -> int:
    if module in APPLICATIONS:
        return 2
    if module.startswith("privbias_lib.studies"):
        return 1
    return 0


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_only_downwards(module):
    for target in _imports(MODULES[module], top_level_only=False):
        assert _floor(target) <= _floor(module), f"{module} imports {target} from above"
        if _floor(module) == 1 and _floor(target) == 1 and module.count(".") >= 3:
            mine, theirs = module.split(".")[2], target.split(".")
            assert len(theirs) < 3 or theirs[2] == mine, f"{module} imports another study"


def test_there_is_no_import_cycle():
    graph = {m: _imports(p, top_level_only=True) for m, p in MODULES.items()}
    # a package's __init__ is imported before its submodules: edges to a parent package
    # from inside it are not cycles at import time
    for module, targets in graph.items():
        graph[module] = {t for t in targets if not module.startswith(t + ".")}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*path, node, nxt]))
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [])


def test_no_study_module_is_longer_than_about_500_lines():
    long = {
        m: n
        for m, p in MODULES.items()
        if m.startswith("privbias_lib.studies") and (n := len(p.read_text().splitlines())) > 520
    }
    assert not long
