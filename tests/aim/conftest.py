"""Fixtures for the aim backend tests."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from track_aim.testing import AimServer, aim_server


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AimServer]:
    """One ``aim server`` for the session (it takes several seconds to start)."""
    with aim_server(tmp_path_factory.mktemp("aim-server-repo")) as running:
        yield running


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[AimServer]:
    """A server of one's own, to stop and restart."""
    with aim_server(tmp_path / "server-repo") as running:
        yield running


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "server: starts an aim server (slow)")


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="track-aim-test-") as directory:
        yield Path(directory)
