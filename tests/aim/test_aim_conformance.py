"""track-aim passes the conformance kit: locally, and against a real ``aim server``.

The kit's storage reader (tests/aim/aim_storage.py) reads through Aim's own SDK only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aim_storage import AimStorageReader, open_aim_run

from track_aim import AimBackend, create_backend
from track_aim.testing import AimServer
from track_core.testing import BackendConformance, StorageReader


class TestAimLocal(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> AimBackend:
        return create_backend(str(tmp_path / "runs"))

    @pytest.fixture
    def storage_reader(self, tmp_path: Path) -> StorageReader:
        return lambda run_id: AimStorageReader(open_aim_run(tmp_path / "runs", run_id))


@pytest.mark.server
class TestAimServer(BackendConformance):
    @pytest.fixture
    def backend(self, server: AimServer) -> AimBackend:
        return create_backend(server.url.removeprefix("aim:"))

    @pytest.fixture
    def storage_reader(self, server: AimServer) -> StorageReader:
        return lambda run_id: AimStorageReader(open_aim_run(server.repo_dir, run_id))
