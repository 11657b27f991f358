"""The import graph of ``gradxform._src``: dependencies run one way.

The graph is built from the source with ``ast`` (nothing is imported): an edge ``a -> b`` for
every ``import`` of ``b`` anywhere in ``a``, at module level or inside a function, where ``b``
is a module of the package. Imports under ``if TYPE_CHECKING:`` are not edges (they never run;
they are how a type annotation names a module above). The tests assert that the graph has no
cycle and that the base stays at the bottom; ``python tests/test_imports.py`` prints the layers
(layer 0 imports nothing of the package, layer k only from layers below k).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "gradxform"
SRC = Path(__file__).resolve().parents[1] / PACKAGE / "_src"
ROOT = SRC.parent.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except in ``if TYPE_CHECKING:`` bodies."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from _imports(node)


def _targets(node: ast.Import | ast.ImportFrom, package: str, known: set[str]) -> set[str]:
    """The package's modules an import statement loads (``from m import name`` loads ``m``,
    and ``m.name`` too when that is a module); ``package`` resolves relative imports."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            parts = package.split(".")
            parts = parts[: len(parts) - (node.level - 1)]
            base = ".".join(parts + ([base] if base else []))
        names = [base] + [f"{base}.{alias.name}" for alias in node.names]
    found = set()
    for name in names:
        # a submodule import loads its parent packages too; keep the deepest known module
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    """``{module: modules of the package it imports}`` for every module of ``gradxform._src``."""
    found = modules()
    known = set(found) | {PACKAGE}
    graph: dict[str, set[str]] = {}
    for name, path in found.items():
        tree = ast.parse(path.read_text(), str(path))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps: set[str] = set()
        for node in _imports(tree):
            deps |= _targets(node, package, known)
        parents = {".".join(name.split(".")[:i]) for i in range(2, name.count(".") + 1)}
        graph[name] = deps - {name} - parents
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """Modules by layer: 0 for those importing nothing of the package, else one more than the
    highest layer they import from (the graph must be acyclic)."""
    level: dict[str, int] = {}

    def depth(v: str) -> int:
        if v not in level:
            level[v] = 1 + max((depth(w) for w in graph.get(v, ()) if w in graph), default=-1)
        return level[v]

    for v in graph:
        depth(v)
    out: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
    for v, k in level.items():
        out[k].append(v)
    return [sorted(layer) for layer in out]


def _short(name: str) -> str:
    return name.removeprefix(f"{PACKAGE}._src.")


GRAPH = import_graph()


def test_the_graph_is_read():
    """A sanity floor: the modules are found and the edges too (a parser that saw nothing
    would find no cycle either)."""
    assert len(GRAPH) > 50
    assert f"{PACKAGE}._src.base" in GRAPH[f"{PACKAGE}._src.combine"]
    assert f"{PACKAGE}._src.module" in GRAPH[f"{PACKAGE}._src.base"]
    # an import inside a function body counts
    source = "def f():\n    from gradxform._src import base\n"
    nodes = list(_imports(ast.parse(source)))
    assert _targets(nodes[0], f"{PACKAGE}._src", set(GRAPH)) == {f"{PACKAGE}._src",
                                                                  f"{PACKAGE}._src.base"}
    relative = ast.parse("from ..base import hyper\n").body[0]
    assert isinstance(relative, ast.ImportFrom)
    assert _targets(relative, f"{PACKAGE}._src.transforms", set(GRAPH)) == {
        f"{PACKAGE}._src.base"}
    # and one under TYPE_CHECKING does not
    assert not list(_imports(ast.parse("if TYPE_CHECKING:\n    import gradxform._src.base\n")))


def test_no_import_cycle():
    found = cycles(GRAPH)
    assert not found, "import cycles in gradxform._src:\n" + "\n".join(
        " <-> ".join(map(_short, c)) for c in found)


def test_the_internals_do_not_import_the_public_package():
    offenders = sorted(m for m, deps in GRAPH.items() if PACKAGE in deps)
    assert not offenders, f"gradxform._src modules importing gradxform itself: {offenders}"


def test_the_base_knows_nothing_of_what_is_built_on_it():
    """module.py (values) and the dtype policy import nothing of the package but each other;
    the protocol (base.py) nothing of transformations, optimizers or wrappers."""
    below = {f"{PACKAGE}._src.{m}" for m in ("module", "dtypes", "types")}
    assert GRAPH[f"{PACKAGE}._src.module"] <= below
    assert GRAPH[f"{PACKAGE}._src.dtypes"] == set()
    upper = (".transforms", ".optimizers", ".wrappers", ".combine")
    base_deps = GRAPH[f"{PACKAGE}._src.base"]
    assert not [d for d in base_deps if any(u in d for u in upper)], base_deps


def test_cycles_are_detected():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert layers({"a": set(), "b": {"a"}, "c": {"a", "b"}}) == [["a"], ["b"], ["c"]]


if __name__ == "__main__":
    print(f"{len(GRAPH)} modules, {sum(map(len, GRAPH.values()))} edges, "
          f"cycles: {cycles(GRAPH) or 'none'}")
    for k, layer in enumerate(layers(GRAPH)):
        print(f"layer {k}: {', '.join(map(_short, layer))}")
