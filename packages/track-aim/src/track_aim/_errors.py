"""The errors track_aim raises of its own."""

from __future__ import annotations

from track_core.errors import TrackWarning


class AimServerUnavailableError(ConnectionError):
    """The Aim server did not answer (or did not acknowledge a write in time)."""


class AimVersionWarning(TrackWarning):
    """This Aim is a version track_aim's direct batch path does not know: each value goes
    through Aim's own ``Run.track`` path instead (said once per process)."""
