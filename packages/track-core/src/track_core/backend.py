"""The backend contract: what a backend author implements (Aim's Repo and its runs).

Users never call these directly. ``track_core.start_run`` validates every value on the caller's
thread, assigns steps and timestamps, and hands a backend's ``RunWriter`` ordered batches from a
background writer. A backend therefore only stores what it is given, and reads it back.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Final, NamedTuple, Protocol, runtime_checkable

import attrs

from track_core.context import Context
from track_core.errors import PermanentWriteError as PermanentWriteError
from track_core.errors import TransientWriteError as TransientWriteError
from track_core.params import Param
from track_core.status import Status
from track_core.values import Point as Point  # re-exported: backends read points back
from track_core.values import Value, ValueKind


class Capability(enum.Enum):
    """Optional abilities. The conformance kit skips the tests of what a backend lacks."""

    IMAGES = "images"
    TEXTS = "texts"
    DISTRIBUTIONS = "distributions"
    ARTIFACTS = "artifacts"
    RESUME = "resume"
    #: ``RunWriter.write_points`` stores a batch in one round trip, so larger batches are cheaper.
    BATCH_WRITES = "batch_writes"
    #: The backend talks to a server; it may go away and come back.
    REMOTE = "remote"
    #: Runs can be archived (hidden from the default views, as Aim's UI does) and unarchived:
    #: ``RunWriter.set_archived``.
    ARCHIVE = "archive"
    #: A backend made from the same backend string in another process writes the storage that
    #: this process reads, so writes can run in a child process (``WriterOptions.process``).
    #: Not the ``memory`` backend: its store lives in one process.
    WRITER_PROCESS = "writer_process"
    #: The backend keeps the start and end times it is given (what ``track copy`` needs to
    #: copy them): a new run starts at ``RunSpec.created_at`` when it is set, the writer is a
    #: ``TimedRunWriter`` (``close(..., ended_at=)`` ends the run at that time) and the reader a
    #: ``TimedRunReader`` (``created_at``, ``ended_at``). A backend without it starts and ends
    #: runs at the time of the calls, and is never given ``ended_at``.
    RUN_TIMES = "run_times"


class TrackedPoint(NamedTuple):
    """One value handed to a backend: a point and the sequence it belongs to.

    A named tuple, not an attrs class like the others: ``write_points`` gets a sequence that
    makes each one as it is read, from the compact tuple ``track()`` queued, in one C call (an
    attrs instance per value costs the writer's GIL more). Keep what you need from it, not the
    point: the next read of the same index makes a new, equal one."""

    name: str
    context: Context
    kind: ValueKind
    step: int
    epoch: int | None
    timestamp: float
    value: Value


@attrs.frozen
class SequenceInfo:
    """A stored sequence: its identity, its kind, and its last step (to resume it)."""

    name: str
    context: Context
    kind: ValueKind
    last_step: int


@attrs.frozen
class RunSpec:
    """What a new run starts with."""

    experiment: str | None = None
    name: str | None = None
    description: str | None = None
    tags: frozenset[str] = frozenset()
    #: When the run started (seconds since the epoch): set by ``track copy`` to the source
    #: run's start. None: now. Only a backend with ``Capability.RUN_TIMES`` reads it.
    created_at: float | None = None


@attrs.frozen
class RunInfo:
    """A run as listed by ``Backend.list_runs``."""

    id: str
    experiment: str | None
    name: str | None
    status: Status
    created_at: float | None = None
    #: When the run ended (seconds since the epoch); None while it runs, or where the backend
    #: does not say.
    ended_at: float | None = None


@runtime_checkable
class RunWriter(Protocol):
    """Writes one run. Every method may be retried with the same arguments after it raised, so
    each must be idempotent: writing the same point (same sequence and step) twice keeps one.

    How the core reads an exception from a RunWriter method:

    - ``PermanentWriteError``: the call can never succeed with these arguments. The core
      isolates the offending item (splitting a batch in halves), stores every other item in
      order, and keeps the refused one in a dead-letter file with a ``RejectedItemWarning``.
    - ``TransientWriteError``, ``ConnectionError``, ``TimeoutError``: the storage is away. The
      items go to the spool and are retried with back-off, for as long as it takes.
    - Anything else: retried the same way while ``sequences()`` fails too (the storage is
      away); once ``sequences()`` answers after the error, the error counts against that batch,
      and after ``WriterOptions.max_attempts`` such failures it is treated as permanent.
    """

    @property
    def id(self) -> str: ...

    def sequences(self) -> Sequence[SequenceInfo]:
        """The sequences the run already holds (empty for a new run; used to resume)."""
        ...

    def write_points(self, points: Sequence[TrackedPoint]) -> None:
        """Store points, in the given order (per sequence, steps are in tracking order)."""
        ...

    def set_params(self, params: Mapping[str, Param]) -> None:
        """Set top-level params; each value replaces what the key held."""
        ...

    def set_name(self, name: str) -> None: ...

    def set_description(self, description: str) -> None: ...

    def set_tags(self, tags: frozenset[str]) -> None:
        """Make the run's tags exactly ``tags``."""
        ...

    def log_artifact(self, path: str, name: str) -> None:
        """Store the local file ``path`` under ``name`` (a relative path such as ``model/x.pt``)."""
        ...

    def set_archived(self, archived: bool) -> None:
        """Archive or unarchive the run (called only when the backend declares ARCHIVE)."""
        ...

    def close(self, status: Status, error: str | None) -> None:
        """Record the end status (and the error of a failed run) and release resources."""
        ...


@runtime_checkable
class TimedRunWriter(RunWriter, Protocol):
    """The writer of a backend with ``Capability.RUN_TIMES``: it can end a run at a given time."""

    def close(self, status: Status, error: str | None, ended_at: float | None = None) -> None:
        """As ``RunWriter.close``; ``ended_at`` (seconds since the epoch) is the end time to
        record, None: now. A run closed as ``RUNNING`` (an unfinished copy) may ignore it."""
        ...


@runtime_checkable
class RunReader(Protocol):
    """Reads one stored run back."""

    @property
    def id(self) -> str: ...

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
    def error(self) -> str | None:
        """The error recorded when the run failed."""
        ...

    @property
    def archived(self) -> bool:
        """Whether the run is archived (always False where the backend lacks ARCHIVE)."""
        ...

    @property
    def params(self) -> Mapping[str, Param]: ...

    def sequences(self) -> Sequence[SequenceInfo]: ...

    def points(self, name: str, context: Context) -> Sequence[Point]:
        """The points of one sequence, in step order."""
        ...

    def artifacts(self) -> Sequence[str]:
        """The names of the stored artifacts."""
        ...

    def artifact_bytes(self, name: str) -> bytes: ...


@runtime_checkable
class TimedRunReader(RunReader, Protocol):
    """The reader of a backend with ``Capability.RUN_TIMES``: the run's start and end times."""

    @property
    def created_at(self) -> float | None:
        """When the run started (seconds since the epoch)."""
        ...

    @property
    def ended_at(self) -> float | None:
        """When the run ended (seconds since the epoch); None while it runs."""
        ...


@runtime_checkable
class Backend(Protocol):
    """Where runs live (Aim's Repo). Found by name through the ``track.backends`` entry points."""

    @property
    def name(self) -> str:
        """The registered name, e.g. ``"aim"``."""
        ...

    @property
    def location(self) -> str:
        """Where the runs are, for messages (never with credentials)."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    def check_sequence(self, name: str, context: Context, kind: ValueKind) -> None:
        """Raise ValueError / TypeError if this backend cannot store that sequence.

        Called on the caller's thread, once per new sequence, before anything is queued."""
        ...

    def check_value(self, value: Value) -> None:
        """Raise if this backend cannot store a non-scalar value (called for each one)."""
        ...

    def create_run(self, spec: RunSpec) -> RunWriter: ...

    def resume_run(self, run_id: str) -> RunWriter:
        """Open an existing run to append to it; raise KeyError if there is none."""
        ...

    def list_runs(self, experiment: str | None = None) -> Sequence[RunInfo]: ...

    def read_run(self, run_id: str) -> RunReader:
        """Raise KeyError if there is no such run."""
        ...

    def close(self) -> None: ...


#: Points per ``write_points`` call for a backend that declares no ``batch_size``: large for
#: backends that batch (``Capability.BATCH_WRITES``), small for the others.
DEFAULT_BATCH_SIZE: Final = {True: 1000, False: 100}


@runtime_checkable
class BatchSizedBackend(Protocol):
    """A backend that says how many points one ``write_points`` call should get (optional).

    The background writer takes what is queued, up to this many points, per call: a backend
    whose cost is mostly per call (one transaction, one request) stores more per second with
    larger batches when the training loop tracks faster than it stores. A declared size is held
    to by the conformance kit (one ``write_points`` call of that many points is stored whole)."""

    @property
    def batch_size(self) -> int: ...


def batch_size_of(backend: Backend) -> int:
    """The most points the core hands one ``write_points`` call of ``backend``."""
    declared = getattr(backend, "batch_size", None)
    if declared is None:
        return DEFAULT_BATCH_SIZE[Capability.BATCH_WRITES in backend.capabilities]
    if isinstance(declared, bool) or not isinstance(declared, int) or declared < 1:
        raise TypeError(
            f"the {backend.name} backend declares batch_size={declared!r}: it must be a "
            "positive int (or absent, for the default)"
        )
    return declared
