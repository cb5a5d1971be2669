"""Aim's internals stay in track_aim/_aim_private.py, so that raising the Aim pin is reviewed there."""

from __future__ import annotations

import ast
from pathlib import Path

import track_aim

PACKAGE = Path(track_aim.__file__).parent
#: The Aim names other modules may import: Aim's public classes.
PUBLIC = {
    ("aim.sdk.repo", "Repo"),
    ("aim.sdk.run", "Run"),
    ("aim.sdk.objects.distribution", "Distribution"),
    ("aim.sdk.objects.text", "Text"),
}


def _aim_imports(path: Path) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "aim":
            found += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.startswith("aim.")]
    return found


def _private_attributes(path: Path) -> list[str]:
    """``x._name`` where x is not ``self`` / ``cls`` (track_aim's own objects)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
        ):
            found.append(f"{path.name}:{node.lineno} .{node.attr}")
    return found


def test_only_aim_private_touches_aim_internals() -> None:
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name != "_aim_private.py")
    assert len(modules) >= 8
    imports = {module.name: set(_aim_imports(module)) - PUBLIC for module in modules}
    assert {name: found for name, found in imports.items() if found} == {}
    # track_aim's own private helpers reached through their module are fine
    own = {
        "._backend",
        "._read_session",
        "._open_repo",
        "._open_run",
        "._hash",
        "._lock",
        "._process",
    }
    attributes = [
        found
        for module in modules
        for found in _private_attributes(module)
        if found.split(" ")[1] not in own
    ]
    assert attributes == []
    assert _aim_imports(PACKAGE / "_aim_private.py")  # and that one does
