"""The warnings of track-mlflow (each a ``track_core.TrackWarning``)."""

from __future__ import annotations

from track_core.context import Context
from track_core.errors import TrackWarning

__all__ = ["EscapedKeyWarning"]


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
