"""The warnings of track-mlflow (each a ``track_core.TrackWarning``)."""

from __future__ import annotations

from track_core.context import Context
from track_core.errors import TrackWarning, TransientWriteError

__all__ = [
    "EscapedKeyWarning",
    "MlflowServerUnavailableError",
    "ParamCutWarning",
    "SqlSchemaWarning",
    "is_unreachable",
]

#: What MLflow's REST client puts in the message of an MlflowException when the request never
#: got an answer (mlflow/utils/rest_utils.py wraps the requests error in text only).
_NO_ANSWER = (
    "Max retries exceeded",
    "Connection refused",
    "NewConnectionError",
    "RemoteDisconnected",
    "Connection aborted",
    "Read timed out",
    "ConnectTimeout",
)


def is_unreachable(error: BaseException) -> bool:
    """Whether an error from MLflow's client means the tracking server did not answer."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (ConnectionError, TimeoutError)):
            return True
        module = type(seen).__module__ or ""
        if module.startswith(("requests", "urllib3")) and "Error" in type(seen).__name__:
            return True
        if any(mark in str(seen) for mark in _NO_ANSWER):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class MlflowServerUnavailableError(TransientWriteError, ConnectionError):
    """The MLflow tracking server did not answer. At ``start_run`` the run starts offline (its
    values are spooled and written when the server is back) unless the writer was told to fail
    fast; the message names the server and how to start one."""


class EscapedKeyWarning(TrackWarning):
    """A sequence is stored under a metric key that differs from its name and context as written:
    MLflow refuses some characters in keys (``@``, ``#``, ``(``, ``%``, ...), and very long keys.
    Warned once per sequence; ``key`` is what MLflow's UI shows, and track reads the sequence back
    under its own name."""

    def __init__(self, message: str, name: str, context: Context, key: str) -> None:
        super().__init__(message)
        self.name = name
        self.context = context
        self.key = key


class ParamCutWarning(TrackWarning):
    """A param value is longer than MLflow's params hold: MLflow's params show it cut, and the
    whole value is kept in the params artifact. ``key`` is the param's flattened key."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


class SqlSchemaWarning(TrackWarning):
    """An MLflow SQL store is written through MLflow's ``log_batch``, not track's bulk SQL path
    (``track_mlflow._sql``): its schema version (``version``, from its ``alembic_version``
    table) is not one track_mlflow was checked against. Warned once per store and process;
    nothing is lost, writing is only slower."""

    def __init__(self, message: str, version: str | None) -> None:
        super().__init__(message)
        self.version = version
