"""The exceptions track raises. Each is also a builtin exception type users already catch."""

from __future__ import annotations


class TrackError(Exception):
    """Base class of track's own errors."""


class BackendNotFoundError(TrackError, LookupError):
    """No installed backend has that name; the message lists the installed ones."""


class RunClosedError(TrackError, RuntimeError):
    """The run was closed: open a new one, or resume this one by id."""


class ReadOnlyRunError(TrackError, RuntimeError):
    """The run was opened for reading."""


class SequenceKindError(TrackError, TypeError):
    """A sequence holds one kind of value (scalars, images, texts or distributions)."""


class WriterProcessError(TrackError, RuntimeError):
    """A writer process could not start, or ended before it answered (its values are kept)."""


class TrackWarning(UserWarning):
    """Base class of track's warnings."""


class BackendUnavailableWarning(TrackWarning):
    """A backend write failed; the values are kept (spooled) and retried."""


class BackPressureWarning(TrackWarning):
    """The write buffer is full: ``track()`` waits for the backend to catch up."""


class DataNotWrittenWarning(TrackWarning):
    """A run closed before its backend took everything; what is left is in a spool file."""


class NonFiniteValueWarning(TrackWarning):
    """A NaN or infinite value was tracked (it is stored as it is)."""
