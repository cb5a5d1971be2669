"""The conformance kit against MLflow: a local sqlite store, and a real ``mlflow server``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_storage import MlflowStorageReader

from track_core.backend import Backend, Capability, RunReader
from track_core.testing import BackendConformance, StorageReader
from track_mlflow import MlflowBackend, create_backend
from track_mlflow.testing import MlflowServer, mlflow_server


class TestMlflowSqlite(BackendConformance):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> Iterator[MlflowBackend]:
        backend = create_backend(f"sqlite:///{tmp_path / 'mlflow.db'}")
        yield backend
        backend.close()

    @pytest.fixture
    def storage_reader(self, backend: MlflowBackend) -> StorageReader:
        def read(run_id: str) -> RunReader:
            return MlflowStorageReader(backend.tracking_uri, run_id)

        return read

    @pytest.fixture
    def backend_string(self, backend: MlflowBackend) -> str:
        return f"mlflow:{backend.tracking_uri}"

    def test_declares_batch_writes_and_is_local(self, backend: Backend) -> None:
        assert Capability.BATCH_WRITES in backend.capabilities
        assert Capability.REMOTE not in backend.capabilities


class TestMlflowSqliteWriterProcess(TestMlflowSqlite):
    """The whole kit again, with every run's MLflow calls made by a writer process."""

    writer_process = "on"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


class TestMlflowServer(BackendConformance):
    @pytest.fixture
    def backend(self, server: MlflowServer) -> Iterator[MlflowBackend]:
        backend = create_backend(server.url)
        yield backend
        backend.close()

    @pytest.fixture
    def storage_reader(self, backend: MlflowBackend) -> StorageReader:
        def read(run_id: str) -> RunReader:
            return MlflowStorageReader(backend.tracking_uri, run_id)

        return read

    @pytest.fixture
    def backend_string(self, backend: MlflowBackend) -> str:
        return f"mlflow:{backend.tracking_uri}"

    def test_declares_remote(self, backend: Backend) -> None:
        assert Capability.REMOTE in backend.capabilities


class TestMlflowServerWriterProcess(TestMlflowServer):
    """The whole kit again against the server, with every run's MLflow client in a writer
    process."""

    writer_process = "on"
