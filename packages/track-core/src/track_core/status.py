"""How a run ended."""

from __future__ import annotations

import enum


class Status(enum.Enum):
    """A run's status. Every run that is not RUNNING ended as FINISHED, FAILED or KILLED."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"
