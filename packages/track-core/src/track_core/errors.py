"""The exceptions track raises. Each is also a builtin exception type users already catch."""

from __future__ import annotations


class TrackError(Exception):
    """Base class of track's own errors."""


class BackendNotFoundError(TrackError, LookupError):
    """No installed backend has that name; the message lists the installed ones.

    ``name`` is the name asked for (None when no backend was named and none could be chosen),
    ``installed`` the names of the installed backends."""

    def __init__(
        self, message: str, *, name: str | None = None, installed: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.name = name
        self.installed = installed


class CapabilityError(TrackError, TypeError):
    """The backend lacks a capability the call needs (images, artifacts, archive, resume...).

    ``backend`` is the backend's name, ``capability`` the missing ``Capability``."""

    def __init__(self, message: str, *, backend: str, capability: object) -> None:
        super().__init__(message)
        self.backend = backend
        self.capability = capability


class RunClosedError(TrackError, RuntimeError):
    """The run was closed: open a new one, or resume this one by id."""


class ReadOnlyRunError(TrackError, RuntimeError):
    """The run was opened for reading."""


class SequenceKindError(TrackError, TypeError):
    """A sequence holds one kind of value (scalars, images, texts or distributions)."""


class WriterProcessError(TrackError, RuntimeError):
    """A writer process could not start, or ended before it answered (its values are kept)."""


class PermanentWriteError(TrackError):
    """Raised by a backend's RunWriter for an item it can never store (a value out of its
    range, a file that is gone): the core stops retrying it, writes every other item in order,
    and keeps the refused one in a dead-letter file. Raise it from the SDK's own error:
    ``raise PermanentWriteError("why") from error``."""


class TransientWriteError(TrackError):
    """Raised by a backend's RunWriter when its storage cannot be reached now (a server down
    or restarting, a lock held): the core keeps the items in its spool and retries them until
    the storage is back, however long that takes. ``ConnectionError`` and ``TimeoutError`` are
    read the same way."""


class TrackWarning(UserWarning):
    """Base class of track's warnings."""


class BackendUnavailableWarning(TrackWarning):
    """A backend write failed; the values are kept (spooled) and retried."""


class BackPressureWarning(TrackWarning):
    """The write buffer is full: ``track()`` waits for the backend to catch up."""


class DataNotWrittenWarning(TrackWarning):
    """A run closed before its backend took everything; what is left is in a spool file.

    ``spool`` is the spool file's path, ``items`` how many items it holds for this run."""

    def __init__(self, message: str, *, spool: object = None, items: int = 0) -> None:
        super().__init__(message)
        self.spool = spool
        self.items = items


class RejectedItemWarning(TrackWarning):
    """A backend refused an item for good (a permanent error, or a batch that kept failing):
    every other item was stored, and the refused one is kept in a dead-letter file.

    ``sequence`` and ``step`` name the refused point (None for an operation such as
    ``log_artifact``), ``operation`` the RunWriter method, ``reason`` the error's text and
    ``dead_letter`` the file that ``python -m track_core replay`` can retry after a fix."""

    def __init__(
        self,
        message: str,
        *,
        operation: str = "",
        reason: str = "",
        dead_letter: object = None,
        sequence: str | None = None,
        context: object = None,
        step: int | None = None,
    ) -> None:
        super().__init__(message)
        self.operation = operation
        self.reason = reason
        self.dead_letter = dead_letter
        self.sequence = sequence
        self.context = context
        self.step = step


class NonFiniteValueWarning(TrackWarning):
    """A NaN or infinite value was tracked (it is stored as it is)."""


class SpoolFormatError(TrackError, ValueError):
    """A file is not a track spool, or its header (which names the backend and the run) is
    damaged, or it was written in a format this track does not read."""


class SpoolWriteWarning(TrackWarning):
    """The spool file could not be written (a full disk, say): the items are kept in memory, in
    order, and written when the backend or the disk is back. Training goes on."""


class SpoolDamagedWarning(TrackWarning):
    """A spool file was damaged: every intact item was written, the rest is reported here.

    ``lost_items`` is how many items could not be read (exactly, where ``exact``; else at least
    that many), ``written`` how many were written. ``lost_steps`` maps ``(name, context)`` to the
    steps of lost points and ``lost_operations`` names lost operations, as far as the damaged
    bytes could still be parsed. ``regions`` holds ``(start, end, reason)`` byte ranges.
    ``path`` is where the damaged file is kept (``X.spool.damaged``), ``original`` its old path."""

    def __init__(
        self,
        message: str,
        *,
        path: object = None,
        original: object = None,
        lost_items: int = 0,
        exact: bool = True,
        written: int = 0,
        lost_steps: object = None,
        lost_operations: tuple[str, ...] = (),
        regions: tuple[tuple[int, int, str], ...] = (),
    ) -> None:
        super().__init__(message)
        self.path = path
        self.original = original
        self.lost_items = lost_items
        self.exact = exact
        self.written = written
        self.lost_steps = lost_steps if lost_steps is not None else {}
        self.lost_operations = lost_operations
        self.regions = regions
