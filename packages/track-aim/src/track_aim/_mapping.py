"""How track's run concepts map onto an Aim run: status, hidden params, reserved names, tags."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from track_core.context import Context
from track_core.status import Status

#: Where Aim's ``log_system_params`` keeps the environment, packages, git info and argv: the
#: one param Aim's UI leaves out of a run's params (the Run Params card, the Params tab, the runs
#: table's columns).
SYSTEM_PARAMS_KEY: Final = "__system_params"
#: The param path of the block holding the core's status and error, ``{"status", "error"}``:
#: under Aim's hidden system params, so that Aim's UI lists a track run's params as it lists
#: those of a raw ``aim.Run``.
STATUS_PATH: Final = (SYSTEM_PARAMS_KEY, "track")
#: Where runs written before track 0.1.0 kept that block (a top-level param, shown by Aim's UI):
#: still read.
LEGACY_STATUS_KEY: Final = "__track__"
#: Params written by track or by Aim itself, not by the user.
HIDDEN_PARAMS: Final = frozenset({LEGACY_STATUS_KEY, SYSTEM_PARAMS_KEY})
#: Sequence names Aim uses for itself (system metrics, terminal logs, log records).
RESERVED_PREFIX: Final = "__"


def run_status(track_status: object, end_time: float | None) -> Status:
    """The core's status of an Aim run from its status block and Aim's ``end_time``."""
    if end_time is None:
        return Status.RUNNING
    if track_status in ("finished", "failed", "killed"):
        return Status(track_status)
    if track_status == "running":  # ended, but not by track: Aim closed it (aim up, aim runs close)
        return Status.KILLED
    return Status.FINISHED  # a run written by Aim alone: Aim has no other end state


def status_of_block(block: object) -> object:
    """The ``status`` in a status block (None if there is no block)."""
    return block.get("status") if isinstance(block, dict) else None


def status_block(param: Callable[[tuple[str, ...]], Any]) -> object:
    """A stored run's status block, given how to read the param at a path: where track writes
    it, else where older runs have it (None if neither)."""
    block = param(STATUS_PATH)
    return block if isinstance(block, dict) else param((LEGACY_STATUS_KEY,))


def status_param(status: str, error: str | None) -> dict[str, Any]:
    """The status block as it is written, at ``run[STATUS_PATH]``."""
    return {"status": status, "error": error}


def tag_names(tags: Any) -> list[str]:
    names = []
    for tag in tags or ():
        names.append(tag if isinstance(tag, str) else getattr(tag, "name", str(tag)))
    return names


def text_or_none(value: object) -> str | None:
    """Aim answers a missing name / experiment with its ``SafeNone``: make it None."""
    return value if isinstance(value, str) else None


#: Aim's own system metrics (``__system__cpu``...): the core's sampler writes these names, so
#: Aim's UI shows them in its System tab.
SYSTEM_PREFIX = "__system__"


def check_sequence(name: str, context: Context) -> None:
    """Refuse what Aim keeps for itself or cannot store, before anything is queued."""
    if name.startswith(RESERVED_PREFIX) and not name.startswith(SYSTEM_PREFIX):
        raise ValueError(
            f"sequence names starting with {RESERVED_PREFIX!r} are reserved by Aim for its "
            f"own sequences (system metrics, logs): rename {name!r}"
        )
    for key, value in context.items():
        if key.startswith(RESERVED_PREFIX):
            raise ValueError(f"context keys starting with '__' are reserved by Aim: {key!r}")
        if (
            isinstance(value, int)
            and not isinstance(value, bool)
            and not (-(2**63) <= value < 2**63)
        ):
            raise ValueError(
                f"Aim stores context integers in 64 bits; {key!r}={value} does not fit"
            )
