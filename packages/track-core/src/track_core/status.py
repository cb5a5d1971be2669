"""How a run ended."""

from __future__ import annotations

import enum


class Status(enum.Enum):
    """A run's status. Every run that is not RUNNING ended as FINISHED, FAILED or KILLED."""

    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


def status_on_exit(error: BaseException | None) -> Status:
    """How a run ends when the block that holds it ends: FINISHED without an error, KILLED on
    Ctrl-C (KeyboardInterrupt), FAILED on any other exception."""
    if error is None:
        return Status.FINISHED
    return Status.KILLED if isinstance(error, KeyboardInterrupt) else Status.FAILED
