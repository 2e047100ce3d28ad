"""The house's rules on imports, read from the source: packages import downward only, and no two
modules import each other, directly or around a circle, not even from inside a function.

``datasets`` imports no other package of ours; ``models`` may import ``datasets``; ``explain``
may import both, never ``training``; ``training`` may import all three. A package's
``__init__`` importing its own plug-ins (the built-in tasks, experiments) is how a registry
fills itself and is not counted as an edge; every other import is, wherever it stands, except
under ``if TYPE_CHECKING:``.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGES = ("datasets", "models", "explain", "training")
MAY_IMPORT = {"datasets": set(), "models": {"datasets"}, "explain": {"datasets", "models"},
              "training": {"datasets", "models", "explain"}}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            lines |= {n.lineno for n in ast.walk(node) if hasattr(n, "lineno")}
    return lines


def imported_modules(name: str) -> set[str]:
    """The project's modules that module ``name`` imports (a ``from X import Y`` of a module Y counts as X.Y)."""
    path = MODULES[name]
    tree = ast.parse(path.read_text())
    skipped, found = _type_checking_lines(tree), set()
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    is_package = path.name == "__init__.py"
    return {m for m in found if m in MODULES and m != name
            and not (is_package and m.startswith(name + "."))}


GRAPH = {name: imported_modules(name) for name in MODULES}


def test_packages_import_downward_only():
    upward = [f"{a} imports {b}" for a, targets in GRAPH.items() for b in targets
              if b.split(".")[0] != a.split(".")[0] and b.split(".")[0] not in MAY_IMPORT[a.split(".")[0]]]
    assert not upward


def test_no_modules_import_each_other_around_a_circle():
    """Break tried: ``explain.loading`` importing ``explain.images`` inside a function (images
    imports loading), the way the old ``explain.concepts`` main imported its report, which
    imported it back; the circle loading -> images -> loading is then named."""
    circles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for target in sorted(GRAPH[node]):
            if state.get(target) == "open":
                circles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, [*path, target])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])
    assert not circles
