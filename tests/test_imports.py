"""Imports flow one way: notebooks -> course_lib public API -> torch.

The import graph of course_lib is read from the source (``ast``), with every import, also those inside functions.
These tests fail if any module imports one that (transitively) imports it back, or if a course_lib import hides
inside a function (the usual way to dodge a cycle), and the graph-building itself is checked on a toy package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "course_lib"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path) -> tuple[dict[str, set[str]], list[str]]:
    """``(edges, hidden)``: module -> the package-internal modules it imports; imports found inside functions."""
    files = {module_name(p, root): p for p in root.rglob("*.py")}
    package = root.name
    edges: dict[str, set[str]] = {name: set() for name in files}
    hidden = []
    for name, path in files.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), filename=str(path))
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - node.level + 1]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                submodules = [f"{source}.{alias.name}" for alias in node.names if f"{source}.{alias.name}" in files]
                names_only = len(submodules) < len(node.names)  # some imported names are not submodules
                targets = ([source] if names_only else []) + submodules
            else:
                continue
            internal = [t for t in targets if t in files]
            if not internal:
                continue
            edges[name].update(t for t in internal if t != name)
            scope = parents.get(node)
            while scope is not None and not isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef)):
                scope = parents.get(scope)
            if scope is not None:
                hidden.append(f"{name}: line {node.lineno} imports {internal} inside {scope.name}()")
    assert all(n.startswith(package) for n in edges)
    return edges, hidden


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_course_lib_has_no_import_cycle():
    edges, _ = import_graph(ROOT)
    assert len(edges) > 20 and edges["course_lib.zoo"] >= {"course_lib.training", "course_lib.evaluation"}
    assert cycles(edges) == [], "import cycle(s) in course_lib"


def test_no_course_lib_import_hides_inside_a_function():
    _, hidden = import_graph(ROOT)
    assert hidden == []


def test_recipes_describe_and_do_not_import_training_or_the_cache():
    edges, _ = import_graph(ROOT)
    assert not edges["course_lib.recipes"] & {"course_lib.zoo", "course_lib.training", "course_lib.evaluation"}


@pytest.fixture
def toy_package(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("from .sub import c\n")
    (pkg / "sub" / "__init__.py").write_text("from .c import thing\n")
    (pkg / "sub" / "c.py").write_text("def thing():\n    from ..a import x\n")
    return pkg


def test_the_checker_finds_a_cycle_and_a_hidden_import(toy_package):
    edges, hidden = import_graph(toy_package)
    assert edges["pkg.a"] == {"pkg.b"} and edges["pkg.sub"] == {"pkg.sub.c"}
    assert cycles(edges) == [["pkg.a", "pkg.b", "pkg.sub.c"]]
    assert len(hidden) == 1 and "inside thing()" in hidden[0]


def test_the_checker_passes_a_one_way_package(toy_package):
    (toy_package / "sub" / "c.py").write_text("import math\n")
    edges, hidden = import_graph(toy_package)
    assert cycles(edges) == [] and hidden == []
