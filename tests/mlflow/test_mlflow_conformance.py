"""The conformance kit against MLflow: a local sqlite store and a real ``mlflow server``, each with
the writer in a thread and in a writer process. One fixture block; each class says where."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow_storage import MlflowStorageReader

from track_core.backend import Backend, Capability, RunReader
from track_core.testing import BackendConformance, StorageReader
from track_mlflow import MlflowBackend, create_backend
from track_mlflow.testing import MlflowServer, mlflow_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("mlflow-server")) as running:
        yield running


class MlflowConformance(BackendConformance):
    """The kit's fixtures for MLflow; a subclass provides ``location`` (a backend location)."""

    remote = False

    @pytest.fixture
    def location(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    def backend(self, location: str) -> Iterator[MlflowBackend]:
        backend = create_backend(location)
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

    def test_declares_batch_writes_and_where_it_is(self, backend: Backend) -> None:
        assert Capability.BATCH_WRITES in backend.capabilities
        assert (Capability.REMOTE in backend.capabilities) is self.remote


class TestMlflowSqlite(MlflowConformance):
    @pytest.fixture
    def location(self, tmp_path: Path) -> str:
        return f"sqlite:///{tmp_path / 'mlflow.db'}"


class TestMlflowSqliteWriterProcess(TestMlflowSqlite):
    """The whole kit again, with every run's MLflow calls made by a writer process."""

    writer_process = "on"


class TestMlflowServer(MlflowConformance):
    remote = True

    @pytest.fixture
    def location(self, server: MlflowServer) -> str:
        return server.url


class TestMlflowServerWriterProcess(TestMlflowServer):
    """The whole kit against the server, with every run's MLflow client in a writer process."""

    writer_process = "on"


class TestMlflowSqliteSlashKeys(TestMlflowSqlite):
    """The whole kit on runs with ``key_style=slash`` (``train/loss`` keys): every sequence of
    the kit reads back as it was tracked."""

    @pytest.fixture
    def backend(self, location: str) -> Iterator[MlflowBackend]:
        backend = create_backend(location, key_style="slash")
        yield backend
        backend.close()

    @pytest.fixture
    def backend_string(self, backend: MlflowBackend) -> str:
        return f"mlflow:{backend.tracking_uri}?key_style=slash"
