"""The core's imports go one way (issue 19): no cycles, and the layers below stay below.

Reads the module-level imports of every ``track_core`` module with ``ast`` (imports inside
functions are lazy on purpose, and ``if TYPE_CHECKING:`` blocks are for the type checker only).
"""

from __future__ import annotations

import ast
from pathlib import Path
from types import ModuleType

import track_core

PACKAGE = Path(track_core.__file__).parent

#: The modules users and integrations build on: they import nothing of the engine.
LEAVES = {"context", "errors", "_names", "params", "redaction", "status", "values"}
#: What each module of the contracts and the engine may import from the core.
ALLOWED = {
    "protocols": LEAVES,
    "backend": LEAVES,
    "_lifecycle": {"status"},
    "_spool": LEAVES | {"backend"},
    "_deferred": LEAVES | {"backend"},
}
#: The engine: private modules, free to change; the contracts never import them.
ENGINE = {
    "_run",
    "_writer",
    "_writer_process",
    "_lifecycle",
    "_spool",
    "_views",
    "_names",
    "_fanout",
    "_deferred",
    "api",
}


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
    assert "_writer" in graph["_run"]
    assert "backend" in graph["_writer"]
    assert {"_run", "api", "protocols"} <= set(graph)


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
        assert not graph[contract] & (ENGINE - LEAVES), f"{contract} imports the engine"


def test_the_engine_modules_are_private() -> None:
    """Every engine module's name starts with an underscore, so that no one builds on it."""
    modules = {name for name in import_graph() if "." not in name}
    assert not {name.lstrip("_") for name in ENGINE - {"api"}} & modules
    assert ENGINE <= modules


def test_integrations_and_backends_use_only_the_public_core() -> None:
    """The other packages import ``track_core``, its public modules and ``track_core.testing``,
    never an engine module: the engine is free to change under them."""
    packages = PACKAGE.parents[2]
    assert packages.name == "packages"
    found = []
    for path in sorted(packages.glob("track-*/src/**/*.py")):
        if path.is_relative_to(PACKAGE):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + (
                    [f"track_core.{a.name}" for a in node.names]
                    if node.module == "track_core"
                    else []
                )
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [
                f"{path.relative_to(packages)}:{node.lineno} {name}"
                for name in names
                if name.startswith("track_core._")
            ]
    assert not found, f"private core modules imported: {found}"


def test_the_top_level_is_the_user_api() -> None:
    """``track_core`` exports what users call and the types they get back; backend authors'
    names live in ``track_core.backend`` only."""
    import track_core.backend

    assert {"start_run", "open_run", "replay", "Context", "Status", "WriterOptions"} <= set(
        track_core.__all__
    )
    contract = {"Backend", "Capability", "RunInfo", "RunReader", "RunSpec", "RunWriter"}
    contract |= {"SequenceInfo", "TrackedPoint"}
    assert not contract & set(track_core.__all__)
    assert all(hasattr(track_core.backend, name) for name in contract)
    exported = {
        name
        for name in dir(track_core)
        if not name.startswith("_") and not isinstance(getattr(track_core, name), ModuleType)
    }
    assert set(track_core.__all__) == exported | {"distributed"}
