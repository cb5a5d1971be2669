"""One version source per package (its ``__version__``, read by hatchling), the packages released
in step, and sibling pins that admit the siblings' version (issue 19)."""

from __future__ import annotations

import ast
import re
import tomllib
from pathlib import Path

PACKAGES = Path(__file__).resolve().parents[2] / "packages"


def version_of(package_dir: Path) -> str:
    config = tomllib.loads((package_dir / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in config["project"], f"{package_dir.name}: a second version source"
    assert config["project"]["dynamic"] == ["version"]
    source = package_dir / config["tool"]["hatch"]["version"]["path"]
    tree = ast.parse(source.read_text(encoding="utf-8"))
    versions = [
        node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(versions) == 1, f"{source}: one literal __version__"
    return str(versions[0])


def test_every_package_has_one_version_source_and_they_agree() -> None:
    versions = {path.name: version_of(path) for path in sorted(PACKAGES.glob("track-*"))}
    assert len(versions) == 6
    assert len(set(versions.values())) == 1, versions


def test_sibling_pins_admit_the_siblings_version_and_not_the_next_minor() -> None:
    version = version_of(PACKAGES / "track-core")
    major, minor = (int(part) for part in version.split(".")[:2])
    pins: list[str] = []
    for path in sorted(PACKAGES.glob("track-*/pyproject.toml")):
        config = tomllib.loads(path.read_text(encoding="utf-8"))
        requirements = list(config["project"].get("dependencies", []))
        for extra in config["project"].get("optional-dependencies", {}).values():
            requirements += extra
        pins += [r for r in requirements if r.startswith("track-")]
    assert pins
    for pin in pins:
        assert re.fullmatch(
            rf"track-[a-z0-9]+(\[[a-z,]+\])?>={major}\.{minor},<{major}\.{minor + 1}", pin
        ), pin


def test_the_installed_core_reports_its_version() -> None:
    import importlib.metadata

    import track_core

    assert track_core.__version__ == importlib.metadata.version("track-core")
