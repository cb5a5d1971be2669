"""The memory backend passes the whole conformance kit, read back from its raw store; the kit
fails a backend that gets retries wrong."""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping, Sequence

import attrs
import pytest

from track_core.backend import Capability, Point, RunSpec, SequenceInfo, TrackedPoint
from track_core.context import Context
from track_core.memory import MemoryBackend, MemoryRunWriter, MemoryStore, StoredRun
from track_core.params import Param
from track_core.status import Status
from track_core.testing import BackendConformance, StorageReader
from track_core.testing.faults import Fault, stored_part
from track_core.values import ValueKind


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


@attrs.define
class WatermarkRunWriter(MemoryRunWriter):
    """Takes a batch whose first point it holds already for a retry of a batch it stored whole
    and skips it: right after a lost reply, wrong after a write that stored only part."""

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        first = points[0]
        stored = self._run.sequences.get((first.name, first.context))
        if stored is not None and first.step in stored.points:
            return
        super().write_points(points)


class WatermarkMemoryBackend(MemoryBackend):
    def create_run(self, spec: RunSpec) -> MemoryRunWriter:
        writer = super().create_run(spec)
        return WatermarkRunWriter(self.store, writer._run)


def test_the_kit_catches_a_retry_skipped_after_a_batch_stored_in_part() -> None:
    """A backend that skips a retried batch when it holds the batch's first point passes the
    lost-reply check (the whole batch was stored) but loses values when several requests of a
    batch were in flight and one failed; the kit's part-way check must fail it."""
    backend = WatermarkMemoryBackend(MemoryStore(), f"kit-{uuid.uuid4().hex}")
    reader: StorageReader = lambda run_id: RawMemoryReader(backend.store.runs[run_id])  # noqa: E731
    kit = TestMemoryBackend()
    kit.test_a_batch_failing_for_a_while_is_stored_once(backend, reader, "after")
    with pytest.raises(AssertionError, match=r"lr|subset"):  # the sequence that lost values
        kit.test_a_batch_failing_part_way_is_stored_once_and_in_order(backend, reader)


def test_a_part_way_fault_stores_every_other_sequence_whole_and_the_rest_half() -> None:
    points = [
        TrackedPoint(name, Context(), ValueKind.SCALAR, step, None, 1.0, float(step))
        for step in range(4)
        for name in ("a", "b", "c")
    ]
    taken = stored_part(points)
    assert [(p.name, p.step) for p in taken] == [
        ("a", 0), ("b", 0), ("c", 0), ("a", 1), ("b", 1), ("c", 1), ("a", 2), ("c", 2),
        ("a", 3), ("c", 3),
    ]  # fmt: skip


def test_a_part_way_fault_of_a_call_without_a_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="write_points batch"):
        Fault("set_params", when="partway")
