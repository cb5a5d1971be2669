"""The memory backend passes the whole conformance kit, read back from its raw store."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence

import attrs
import pytest

from track_core.backend import Capability, Point, SequenceInfo
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryStore, StoredRun
from track_core.params import Param
from track_core.status import Status
from track_core.testing import BackendConformance, StorageReader


@attrs.frozen
class RawMemoryReader:
    """Reads a StoredRun's fields directly, not through MemoryRunReader."""

    raw: StoredRun

    id = property(lambda self: self.raw.id)
    experiment = property(lambda self: self.raw.experiment)
    name = property(lambda self: self.raw.name)
    description = property(lambda self: self.raw.description)
    tags = property(lambda self: self.raw.tags)
    archived = property(lambda self: self.raw.archived)
    created_at = property(lambda self: self.raw.created_at)
    ended_at = property(lambda self: self.raw.ended_at)

    @property
    def status(self) -> Status:
        return self.raw.status

    @property
    def error(self) -> str | None:
        return self.raw.error

    @property
    def params(self) -> Mapping[str, Param]:
        return copy.deepcopy(self.raw.params)

    def sequences(self) -> Sequence[SequenceInfo]:
        return [
            SequenceInfo(name, context, stored.kind, max(stored.points))
            for (name, context), stored in self.raw.sequences.items()
        ]

    def points(self, name: str, context: Context) -> Sequence[Point]:
        stored = self.raw.sequences[(name, context)]
        return [stored.points[step] for step in sorted(stored.points)]

    def artifacts(self) -> Sequence[str]:
        return list(self.raw.artifacts)

    def artifact_bytes(self, name: str) -> bytes:
        return self.raw.artifacts[name]


class TestMemoryBackend(BackendConformance):
    @pytest.fixture
    def backend(self) -> MemoryBackend:
        location = f"kit-{uuid.uuid4().hex}"
        return MemoryBackend(MemoryStore(), location)

    @pytest.fixture
    def storage_reader(self, backend: MemoryBackend) -> StorageReader:
        return lambda run_id: RawMemoryReader(backend.store.runs[run_id])


class ScalarsOnlyMemoryBackend(MemoryBackend):
    """A backend that declares no optional capability: what a minimal third-party backend is."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset()


class TestScalarsOnlyBackend(BackendConformance):
    """The kit holds a minimal backend to what it declares: absent capabilities get clear errors."""

    @pytest.fixture
    def backend(self) -> MemoryBackend:
        return ScalarsOnlyMemoryBackend(MemoryStore(), f"kit-{uuid.uuid4().hex}")

    @pytest.fixture
    def storage_reader(self, backend: MemoryBackend) -> StorageReader:
        return lambda run_id: RawMemoryReader(backend.store.runs[run_id])
