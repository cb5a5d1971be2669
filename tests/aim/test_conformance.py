"""The track_core conformance kit against a local Aim repo and against a real ``aim server``.

The kit's storage reader (tests/aim/aim_storage.py) reads through Aim's own SDK only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aim_storage import AimStorageReader, open_aim_run

import track_aim
from track_aim.testing import AimServer
from track_core.backend import Backend
from track_core.testing import BackendConformance, StorageReader


class TestLocalRepo(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Backend:
        return track_aim.create_backend(str(tmp_path / "runs"))

    @pytest.fixture
    def storage_reader(self, tmp_path: Path) -> StorageReader:
        return lambda run_id: AimStorageReader(open_aim_run(tmp_path / "runs", run_id))

    @pytest.fixture
    def backend_string(self, tmp_path: Path) -> str:
        return f"aim:{tmp_path / 'runs'}"


class TestLocalRepoWriterProcess(TestLocalRepo):
    """The whole kit again, with every run's Aim calls made by a writer process."""

    writer_process = "on"


@pytest.mark.server
class TestRemoteServer(BackendConformance):
    @pytest.fixture
    def backend(
        self, server: AimServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> Backend:
        # An Aim server stores about 300 points a second (Aim's own client is no faster): give
        # the closing flush of the kit's bigger tests (6,400 points) the time it needs.
        monkeypatch.setenv("TRACK_CLOSE_TIMEOUT", "120")
        # artifacts go to a directory both this client and the readers reach
        return track_aim.create_backend(
            server.url[len("aim:") :], artifacts_uri=(tmp_path / "artifacts").as_uri()
        )

    @pytest.fixture
    def storage_reader(self, server: AimServer) -> StorageReader:
        # read the server's repo on disk with the local Aim SDK: what really landed there
        return lambda run_id: AimStorageReader(open_aim_run(server.repo_dir, run_id))

    @pytest.fixture
    def backend_string(self, server: AimServer, tmp_path: Path) -> str:
        return f"{server.url}?artifacts_uri={(tmp_path / 'artifacts').as_uri()}"


@pytest.mark.server
class TestRemoteServerWriterProcess(TestRemoteServer):
    """The whole kit again against the server, with every run's Aim client in a writer process."""

    writer_process = "on"
