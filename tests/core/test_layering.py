"""The core's imports go one way (issue 19): no cycles, and the layers below stay below.

Reads the module-level imports of every ``track_core`` module with ``ast`` (imports inside
functions are lazy on purpose, and ``if TYPE_CHECKING:`` blocks are for the type checker only).
"""

from __future__ import annotations

import ast
from pathlib import Path

import track_core

PACKAGE = Path(track_core.__file__).parent

#: The modules users and integrations build on: they import nothing of the engine.
LEAVES = {"context", "errors", "names", "params", "redaction", "status", "values"}
#: What each module of the contracts and the engine may import from the core.
ALLOWED = {
    "protocols": LEAVES,
    "backend": LEAVES,
    "lifecycle": {"status"},
    "spool": LEAVES | {"backend"},
    "deferred": LEAVES | {"backend"},
}
#: The engine: the contracts never import these.
ENGINE = {"run", "writer", "writer_process", "lifecycle", "spool", "api", "fanout", "deferred"}


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts) or "__init__"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _top_level_imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()

    def visit(statements: list[ast.stmt]) -> None:
        for node in statements:
            if isinstance(node, ast.If) and _is_type_checking(node):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                if isinstance(node, ast.Try):
                    for handler in node.handlers:
                        visit(handler.body)
                    visit(node.finalbody)
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "track_core":
                    found.update(alias.name for alias in node.names)
                elif node.module.startswith("track_core."):
                    found.add(node.module.removeprefix("track_core."))
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("track_core."):
                        found.add(alias.name.removeprefix("track_core."))

    visit(tree.body)
    return found


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        graph[name] = {target for target in _top_level_imports(tree) if target != name}
    return graph


def test_the_graph_is_read() -> None:
    graph = import_graph()
    assert "writer" in graph["run"]
    assert "backend" in graph["writer"]
    assert {"run", "api", "protocols"} <= set(graph)


def test_there_are_no_import_cycles() -> None:
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph or target.startswith("testing") or node == "__init__":
                continue
            if state.get(target) == 1:
                cycle = [*stack[stack.index(target) :], target]
                raise AssertionError(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                walk(target)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state and not node.startswith("testing") and node != "__init__":
            walk(node)


def test_each_layer_imports_only_what_is_below_it() -> None:
    graph = import_graph()
    for leaf in LEAVES:
        engine = graph[leaf] - LEAVES
        assert not engine, f"{leaf} is a leaf but imports {sorted(engine)}"
    for module, allowed in ALLOWED.items():
        extra = graph[module] - allowed
        assert not extra, f"{module} may import only {sorted(allowed)}, imports {sorted(extra)}"
    for contract in ("protocols", "backend", "values", "context"):
        assert not graph[contract] & ENGINE, f"{contract} imports the engine"
