"""The errors track_aim raises of its own."""

from __future__ import annotations


class AimServerUnavailableError(ConnectionError):
    """The Aim server did not answer (or did not acknowledge a write in time)."""
