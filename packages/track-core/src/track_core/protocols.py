"""The user-facing contracts: a Run holds params and sequences; a Sequence is named values in order.

Framework integrations are written against these (like OpenTelemetry's API). The core implements
them three ways: a tracked run (``start_run``), a read-only view of a stored run
(``Backend.read_run`` through ``open_run``), and a no-op run (tracking off, or not rank 0).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Sequence as SequenceABC
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from track_core.context import Context, ContextLike
from track_core.params import Param
from track_core.status import Status
from track_core.values import Point, ValueKind


@runtime_checkable
class Sequence(Protocol):
    """The values tracked under one ``(run, name, context)``, in step order."""

    @property
    def run_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def context(self) -> Context: ...

    @property
    def kind(self) -> ValueKind: ...

    def points(self) -> SequenceABC[Point]:
        """``Point(step, epoch, timestamp, value)`` in step order."""
        ...


@runtime_checkable
class Run(Protocol):
    """One training run."""

    @property
    def id(self) -> str:
        """Pass it as ``run_id=`` to ``start_run`` to resume the run and append to it."""
        ...

    @property
    def experiment(self) -> str | None: ...

    @property
    def name(self) -> str | None: ...

    @property
    def description(self) -> str | None: ...

    @property
    def tags(self) -> frozenset[str]: ...

    @property
    def status(self) -> Status: ...

    @property
    def recording(self) -> bool:
        """Whether what is tracked now is stored: True for an open run, False for a no-op run
        (tracking off, or not rank 0), a read-only view and a closed run. Integrations ask this
        instead of checking the run's type, so a user's own run wrapper works with them."""
        ...

    @property
    def params(self) -> Mapping[str, Param]:
        """All params, as plain nested data."""
        ...

    def __getitem__(self, key: str) -> Param: ...

    def __setitem__(self, key: str, value: object) -> None:
        """``run["hparams"] = cfg``: any config object, stored as plain nested data."""
        ...

    def track(
        self,
        value: object,
        name: str | None = None,
        step: int | None = None,
        epoch: int | None = None,
        context: ContextLike = None,
        timestamp: float | None = None,
    ) -> None:
        """Append ``value`` to the sequence ``(name, context)``.

        ``step=None`` is the sequence's last step + 1 (0 for a new sequence); steps and epochs
        are ints in ``0..2**63-1``. ``timestamp`` is the value's wall time in seconds since the
        epoch (default: now). A dict of values with no ``name``
        (``run.track({"loss": 0.1, "acc": 0.9}, step=3)``) tracks each key as its own
        sequence, at one step, epoch, context and timestamp, validated as one call.
        """
        ...

    def set_name(self, name: str) -> None: ...

    def set_description(self, description: str) -> None: ...

    def add_tag(self, tag: str) -> None: ...

    def remove_tag(self, tag: str) -> None: ...

    @property
    def archived(self) -> bool: ...

    def set_archived(self, archived: bool = True) -> None:
        """Archive the run (Aim's "archived": hidden from the UI's default views) or unarchive it.
        A TypeError where the backend cannot archive."""
        ...

    def log_artifact(self, path: str, name: str | None = None) -> None:
        """Store a local file with the run, under ``name`` (default: the file's name)."""
        ...

    def log_artifacts(self, directory: str, prefix: str | None = None) -> None:
        """Store every file under ``directory``, keeping the tree (under ``prefix``)."""
        ...

    def sequences(self) -> SequenceABC[Sequence]: ...

    def sequence(self, name: str, context: ContextLike = None) -> Sequence:
        """One sequence; KeyError if the run has none of that name and context."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything tracked so far is stored; False if the timeout ran out."""
        ...

    def close(
        self, status: Status = Status.FINISHED, error: BaseException | str | None = None
    ) -> None:
        """End the run. Idempotent. ``error`` is recorded with a FAILED status."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
