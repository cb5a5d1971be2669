"""Every package's warnings derive from ``TrackWarning`` (issue 19), so that one filter
(``warnings.simplefilter("error", track.TrackWarning)``) reaches all of them: no warning class of
track's derives from another base, and no package warns with a bare ``UserWarning``."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2] / "packages"
BARE = {"UserWarning", "Warning", "RuntimeWarning", "DeprecationWarning", "FutureWarning"}


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def test_warning_classes_derive_from_track_warning_and_none_warns_bare() -> None:
    classes: dict[str, list[str]] = {}
    bare_calls: list[str] = []
    for path in sorted(PACKAGES.glob("track-*/src/**/*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(PACKAGES))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Warning"):
                classes[f"{where}:{node.name}"] = [_name(base) for base in node.bases]
            if isinstance(node, ast.Call) and _name(node.func) == "warn":
                category = node.args[1] if len(node.args) > 1 else None
                for keyword in node.keywords:
                    if keyword.arg == "category":
                        category = keyword.value
                if category is not None and _name(category) in BARE:
                    bare_calls.append(f"{where}:{node.lineno}")
    assert len(classes) >= 10  # the scan sees the packages' warning classes
    ours = {key.rsplit(":", 1)[1] for key in classes} | {"TrackWarning"}
    for key, bases in classes.items():
        if key.endswith(":TrackWarning"):
            assert bases == ["UserWarning"]
        else:
            assert bases and all(base in ours for base in bases), f"{key} derives from {bases}"
    assert not bare_calls, f"warned with a bare warning class at {bare_calls}"
