"""The conformance kit's base: the fixtures a backend provides and the helpers every topic uses."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import track_core as track
from track_core.backend import Backend, Capability, RunReader
from track_core.context import Context
from track_core.values import ValueKind

StorageReader = Callable[[str], RunReader]


class ConformanceBase:
    """Fixtures and helpers of every topic. Provide the fixtures ``backend`` and
    ``storage_reader``, and ``backend_string`` where the backend declares
    ``Capability.WRITER_PROCESS``."""

    #: Seconds a point's timestamp may differ from the moment ``track()`` was called.
    timestamp_tolerance: float = 0.002
    #: ``"on"`` runs every test with the backend's writes in a writer process (made from the
    #: ``backend_string`` fixture); ``"off"`` (the default) writes from a thread.
    writer_process: str = "off"
    _backend_string: str | None = None

    # -- fixtures and helpers for subclasses -----------------------------------------------
    @pytest.fixture
    def backend(self) -> Backend:
        raise NotImplementedError("a BackendConformance subclass must provide a 'backend' fixture")

    @pytest.fixture
    def storage_reader(self, backend: Backend) -> StorageReader:
        raise NotImplementedError(
            "a BackendConformance subclass must provide a 'storage_reader' fixture: a callable "
            "run_id -> RunReader that reads the backend's storage directly"
        )

    @pytest.fixture
    def backend_string(self, backend: Backend) -> str | None:
        """The backend string that makes a backend writing the same storage as ``backend``
        (needed by backends that declare WRITER_PROCESS); None where there is none."""
        return None

    @pytest.fixture(autouse=True)
    def _remember_backend_string(self, backend_string: str | None) -> None:
        self._backend_string = backend_string

    @pytest.fixture(autouse=True)
    def _isolated_spool(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
        """Spool files of each test go to its own folder, never the user's cache."""
        folder = tmp_path / "track-spool"
        monkeypatch.setenv("TRACK_SPOOL_DIR", str(folder))
        return folder

    @staticmethod
    def require(backend: Backend, capability: Capability) -> None:
        if capability not in backend.capabilities:
            pytest.skip(f"the {backend.name} backend does not declare {capability.value}")

    def start(self, backend: Backend, **options: Any) -> track.TrackedRun:
        """Start a run as users do: through ``start_run`` (and a writer process when
        ``writer_process`` is ``"on"``)."""
        # A backend error fails the test at once, with its own traceback, instead of being
        # retried until close() gives up.
        if self.writer_process == "off":
            writer = track.WriterOptions(raise_errors=True)
            run = track.start_run(backend, enabled=True, writer=writer, **options)
        else:
            if self._backend_string is None:
                pytest.fail("writer_process = 'on' needs a 'backend_string' fixture")
            with_process = track.WriterOptions(process=self.writer_process, raise_errors=True)
            run = track.start_run(
                self._backend_string, enabled=True, writer=with_process, **options
            )
        assert isinstance(run, track.TrackedRun)
        if self.writer_process != "off":
            assert run.writer_pid != os.getpid(), "the run did not get a writer process"
        return run

    @staticmethod
    def readers(
        backend: Backend, storage_reader: StorageReader, run_id: str
    ) -> Iterator[tuple[str, RunReader]]:
        yield "adapter", backend.read_run(run_id)
        yield "storage", storage_reader(run_id)

    @staticmethod
    def sequence_map(reader: RunReader) -> dict[tuple[str, Context], ValueKind]:
        return {(info.name, Context.of(info.context)): info.kind for info in reader.sequences()}
