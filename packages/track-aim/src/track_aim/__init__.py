"""track-aim: the ``aim`` backend of track, on the Aim SDK.

``track_core.start_run("aim")`` tracks to the ``.aim`` repo in the current directory (created
when missing), ``"aim:./runs"`` to ``./runs/.aim``, ``"aim://127.0.0.1:53800"`` to an
``aim server``. Options (in the string as ``?key=value`` or as keyword arguments):
``system_tracking_interval`` (seconds: Aim's own resource tracker; the core's
``start_run(..., system_metrics=True)`` writes the same ``__system__*`` sequences on every backend),
``log_system_params``, ``capture_terminal_logs`` (bools, default off), ``artifacts_uri``,
``timeout`` / ``connect_timeout`` (seconds, remote), ``force_resume``.
"""

from __future__ import annotations

from typing import Any

from track_aim._options import VALID_OPTIONS, AimOptions, parse_options
from track_aim.backend import (
    STATUS_PATH,
    AimBackend,
    AimRunReader,
    AimRunWriter,
    AimServerUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "STATUS_PATH",
    "VALID_OPTIONS",
    "AimBackend",
    "AimOptions",
    "AimRunReader",
    "AimRunWriter",
    "AimServerUnavailableError",
    "create_backend",
]


def create_backend(location: str | None = None, **options: Any) -> AimBackend:
    """The ``aim`` entry point of the ``track.backends`` group."""
    return AimBackend(parse_options(location, options))
