"""A run that does nothing: tracking switched off, or a process that is not rank 0."""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from types import TracebackType

from track_core.context import ContextLike
from track_core.params import Param
from track_core.protocols import Sequence
from track_core.status import Status


class NoOpRun:
    """Satisfies the Run protocol and stores nothing; every call returns at once."""

    __slots__ = ("_status",)

    def __init__(self) -> None:
        self._status = Status.RUNNING

    id = ""
    experiment: str | None = None
    name: str | None = None
    description: str | None = None
    tags: frozenset[str] = frozenset()
    archived = False
    #: Nothing tracked here is stored.
    recording = False

    @property
    def status(self) -> Status:
        return self._status

    @property
    def params(self) -> Mapping[str, Param]:
        return {}

    def __getitem__(self, key: str) -> Param:
        raise KeyError(key)

    def __setitem__(self, key: str, value: object) -> None:
        pass

    def track(
        self,
        value: object,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        context: ContextLike = None,
        timestamp: float | None = None,
    ) -> None:
        pass

    def set_name(self, name: str) -> None:
        pass

    def set_description(self, description: str) -> None:
        pass

    def add_tag(self, tag: str) -> None:
        pass

    def remove_tag(self, tag: str) -> None:
        pass

    def set_archived(self, archived: bool = True) -> None:
        pass

    def log_artifact(self, path: str, name: str | None = None) -> None:
        pass

    def log_artifacts(self, directory: str, prefix: str | None = None) -> None:
        pass

    def sequences(self) -> SequenceABC[Sequence]:
        return []

    def sequence(self, name: str, context: ContextLike = None) -> Sequence:
        raise KeyError((name, context))

    def flush(self, timeout: float | None = None) -> bool:
        return True

    def close(
        self, status: Status = Status.FINISHED, error: BaseException | str | None = None
    ) -> None:
        self._status = status

    def __enter__(self) -> NoOpRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(Status.FINISHED if exc is None else Status.FAILED)
