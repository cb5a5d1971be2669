"""Read-only views of stored runs and sequences, over a backend's RunReader."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from types import TracebackType

import attrs

from track_core.backend import RunReader
from track_core.context import Context, ContextLike
from track_core.errors import ReadOnlyRunError
from track_core.params import Param
from track_core.status import Status
from track_core.values import Point, ValueKind


@attrs.frozen
class SequenceView:
    """A stored sequence; ``points()`` reads it from the backend each time."""

    _reader: RunReader = attrs.field(repr=False)
    name: str
    context: Context
    kind: ValueKind

    @property
    def run_id(self) -> str:
        return self._reader.id

    def points(self) -> Sequence[Point]:
        return self._reader.points(self.name, self.context)

    def steps(self) -> list[int]:
        return [point.step for point in self.points()]

    def values(self) -> list[object]:
        return [point.value for point in self.points()]


def sequence_views(reader: RunReader) -> list[SequenceView]:
    infos = sorted(reader.sequences(), key=lambda info: (info.name, repr(info.context.to_dict())))
    return [SequenceView(reader, info.name, info.context, info.kind) for info in infos]


def find_sequence(reader: RunReader, name: str, context: ContextLike) -> SequenceView:
    wanted = Context.of(context)
    for info in reader.sequences():
        if info.name == name and info.context == wanted:
            return SequenceView(reader, info.name, info.context, info.kind)
    raise KeyError(f"run {reader.id} has no sequence {name!r} in context {wanted.to_dict()}")


class RunView:
    """A stored run opened for reading. Satisfies the Run protocol; writing raises."""

    __slots__ = ("_reader",)

    def __init__(self, reader: RunReader) -> None:
        self._reader = reader

    @property
    def reader(self) -> RunReader:
        return self._reader

    @property
    def id(self) -> str:
        return self._reader.id

    @property
    def experiment(self) -> str | None:
        return self._reader.experiment

    @property
    def name(self) -> str | None:
        return self._reader.name

    @property
    def description(self) -> str | None:
        return self._reader.description

    @property
    def tags(self) -> frozenset[str]:
        return self._reader.tags

    @property
    def status(self) -> Status:
        return self._reader.status

    @property
    def recording(self) -> bool:
        """Always False: a stored run opened for reading."""
        return False

    @property
    def error(self) -> str | None:
        return self._reader.error

    @property
    def archived(self) -> bool:
        return self._reader.archived

    @property
    def params(self) -> Mapping[str, Param]:
        return copy.deepcopy(dict(self._reader.params))

    def __getitem__(self, key: str) -> Param:
        return copy.deepcopy(self._reader.params[key])

    def artifacts(self) -> Sequence[str]:
        return self._reader.artifacts()

    def artifact_bytes(self, name: str) -> bytes:
        return self._reader.artifact_bytes(name)

    def sequences(self) -> list[SequenceView]:
        return sequence_views(self._reader)

    def sequence(self, name: str, context: ContextLike = None) -> SequenceView:
        return find_sequence(self._reader, name, context)

    def _read_only(self, *args: object, **kwargs: object) -> None:
        raise ReadOnlyRunError(
            f"run {self.id} was opened for reading; resume it with "
            f"track_core.start_run(..., run_id={self.id!r}) to write"
        )

    __setitem__ = _read_only
    track = _read_only
    set_name = _read_only
    set_description = _read_only
    add_tag = _read_only
    remove_tag = _read_only
    set_archived = _read_only
    log_artifacts = _read_only
    log_artifact = _read_only

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(
        self, status: Status = Status.FINISHED, error: BaseException | str | None = None
    ) -> None:
        return None

    def __enter__(self) -> RunView:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        return f"RunView(id={self.id!r}, name={self.name!r}, status={self.status.value})"
