"""The ``memory`` backend: runs kept in this process, for tests and framework integrators.

It is registered through the ``track.backends`` entry point like any third-party backend.
``memory`` (or ``memory:default``) is one store per process; ``memory:NAME`` is another, named one.
``MemoryStore.unavailable = True`` makes every write raise ``ConnectionError``, to see what a
training loop does while its backend is down.
"""

from __future__ import annotations

import copy
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from track_core.backend import (
    Capability,
    Point,
    RunInfo,
    RunSpec,
    SequenceInfo,
    TrackedPoint,
)
from track_core.context import Context
from track_core.params import Param
from track_core.status import Status
from track_core.values import Value, ValueKind


@attrs.define
class StoredSequence:
    kind: ValueKind
    points: dict[int, Point] = attrs.Factory(dict)


@attrs.define
class StoredRun:
    """A run as the memory store holds it (what the conformance kit's storage reader reads)."""

    id: str
    experiment: str | None
    name: str | None
    description: str | None
    tags: frozenset[str]
    created_at: float
    ended_at: float | None = None
    status: Status = Status.RUNNING
    error: str | None = None
    archived: bool = False
    params: dict[str, Param] = attrs.Factory(dict)
    sequences: dict[tuple[str, Context], StoredSequence] = attrs.Factory(dict)
    artifacts: dict[str, bytes] = attrs.Factory(dict)
    write_calls: int = 0
    #: The number of points of each ``write_points`` call, in order (what the writer handed).
    batch_sizes: list[int] = attrs.Factory(list)


@attrs.define
class MemoryStore:
    """The runs of one memory location."""

    runs: dict[str, StoredRun] = attrs.Factory(dict)
    lock: threading.RLock = attrs.Factory(threading.RLock)
    unavailable: bool = False

    def check_available(self) -> None:
        if self.unavailable:
            raise ConnectionError("the memory store is marked unavailable")

    def get(self, run_id: str) -> StoredRun:
        with self.lock:
            try:
                return self.runs[run_id]
            except KeyError:
                raise KeyError(f"no run with id {run_id!r} in this memory store") from None


_STORES: dict[str, MemoryStore] = {}
_STORES_LOCK = threading.Lock()


def memory_store(location: str | None = None) -> MemoryStore:
    """The process-wide store of a location (created on first use)."""
    key = location or "default"
    with _STORES_LOCK:
        return _STORES.setdefault(key, MemoryStore())


@attrs.define
class MemoryRunWriter:
    _store: MemoryStore
    _run: StoredRun

    @property
    def id(self) -> str:
        return self._run.id

    def sequences(self) -> Sequence[SequenceInfo]:
        return _sequence_infos(self._run)

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.write_calls += 1
            self._run.batch_sizes.append(len(points))
            for tracked in points:
                key = (tracked.name, tracked.context)
                stored = self._run.sequences.get(key)
                if stored is None:
                    stored = self._run.sequences[key] = StoredSequence(tracked.kind)
                stored.points[tracked.step] = Point(
                    tracked.step, tracked.epoch, tracked.timestamp, tracked.value
                )

    def set_params(self, params: Mapping[str, Param]) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.params.update(copy.deepcopy(dict(params)))

    def set_name(self, name: str) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.name = name

    def set_description(self, description: str) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.description = description

    def set_tags(self, tags: frozenset[str]) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.tags = frozenset(tags)

    def set_archived(self, archived: bool) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.archived = archived

    def log_artifact(self, path: str, name: str) -> None:
        data = Path(path).read_bytes()
        with self._store.lock:
            self._store.check_available()
            self._run.artifacts[name] = data

    def close(self, status: Status, error: str | None, ended_at: float | None = None) -> None:
        with self._store.lock:
            self._store.check_available()
            self._run.status = status
            self._run.error = error
            if status is Status.RUNNING:  # released unfinished (a copy cut short): not ended
                self._run.ended_at = None
            else:
                self._run.ended_at = time.time() if ended_at is None else float(ended_at)


def _sequence_infos(run: StoredRun) -> list[SequenceInfo]:
    return [
        SequenceInfo(name, context, stored.kind, max(stored.points) if stored.points else -1)
        for (name, context), stored in run.sequences.items()
    ]


@attrs.define
class MemoryRunReader:
    _store: MemoryStore
    _run: StoredRun

    @property
    def id(self) -> str:
        return self._run.id

    @property
    def experiment(self) -> str | None:
        return self._run.experiment

    @property
    def name(self) -> str | None:
        return self._run.name

    @property
    def description(self) -> str | None:
        return self._run.description

    @property
    def tags(self) -> frozenset[str]:
        return self._run.tags

    @property
    def status(self) -> Status:
        return self._run.status

    @property
    def error(self) -> str | None:
        return self._run.error

    @property
    def archived(self) -> bool:
        return self._run.archived

    @property
    def created_at(self) -> float | None:
        return self._run.created_at

    @property
    def ended_at(self) -> float | None:
        return self._run.ended_at

    @property
    def params(self) -> Mapping[str, Param]:
        with self._store.lock:
            return copy.deepcopy(self._run.params)

    def sequences(self) -> Sequence[SequenceInfo]:
        with self._store.lock:
            return _sequence_infos(self._run)

    def points(self, name: str, context: Context) -> Sequence[Point]:
        with self._store.lock:
            stored = self._run.sequences.get((name, Context.of(context)))
            if stored is None:
                raise KeyError(
                    f"run {self._run.id} has no sequence {name!r} in context {dict(context)}"
                )
            return [stored.points[step] for step in sorted(stored.points)]

    def artifacts(self) -> Sequence[str]:
        with self._store.lock:
            return sorted(self._run.artifacts)

    def artifact_bytes(self, name: str) -> bytes:
        with self._store.lock:
            return self._run.artifacts[name]


@attrs.define
class MemoryBackend:
    """The reference backend: stores everything in this process; every capability but REMOTE
    and WRITER_PROCESS (RUN_TIMES included: a run keeps the start and end times it is given)."""

    _store: MemoryStore
    _location: str = "default"

    @property
    def name(self) -> str:
        return "memory"

    @property
    def location(self) -> str:
        return f"memory:{self._location}"

    @property
    def store(self) -> MemoryStore:
        return self._store

    @property
    def capabilities(self) -> frozenset[Capability]:
        return frozenset(Capability) - {Capability.REMOTE, Capability.WRITER_PROCESS}

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        return None

    def check_value(self, value: Value) -> None:
        return None

    def create_run(self, spec: RunSpec) -> MemoryRunWriter:
        with self._store.lock:
            self._store.check_available()
            run = StoredRun(
                id=uuid.uuid4().hex,
                experiment=spec.experiment,
                name=spec.name,
                description=spec.description,
                tags=spec.tags,
                created_at=time.time() if spec.created_at is None else float(spec.created_at),
            )
            self._store.runs[run.id] = run
            return MemoryRunWriter(self._store, run)

    def resume_run(self, run_id: str) -> MemoryRunWriter:
        run = self._store.get(run_id)
        with self._store.lock:
            run.status = Status.RUNNING
            run.error = None
            run.ended_at = None
        return MemoryRunWriter(self._store, run)

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]:
        with self._store.lock:
            runs = sorted(self._store.runs.values(), key=lambda run: run.created_at)
            return [
                RunInfo(run.id, run.experiment, run.name, run.status, run.created_at, run.ended_at)
                for run in runs
                if experiment is None or run.experiment == experiment
            ]

    def read_run(self, run_id: str) -> MemoryRunReader:
        return MemoryRunReader(self._store, self._store.get(run_id))

    def close(self) -> None:
        return None


def create_backend(location: str | None = None, **options: Any) -> MemoryBackend:
    """The ``memory`` entry point."""
    if options:
        raise TypeError(f"the memory backend takes no options, got {sorted(options)}")
    key = location or "default"
    return MemoryBackend(memory_store(key), key)
